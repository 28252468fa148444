//! Every engine endpoint the janitor calls, in one table. `[tag:engine_endpoints]`
//!
//! [`ENDPOINTS`] is the janitor's whole use of the engine's API: every
//! request any command sends (`prune`, `run`, `doctor`, an embedding
//! router's janitor) is one of its rows, and every row is sent by some
//! command. The real-engine suite records what the binary sends and checks
//! both directions (`integration/tests/socket_proxy.rs`), and the socket
//! proxy's allow-list (`deploy/socket-proxy/haproxy.cfg`) and the README's
//! list are generated from it (`cargo xtask socket-proxy`), so none of them
//! can drift from what the code does. A new call needs a new row, and then
//! a new proxy configuration for every operator who runs one.
//!
//! Paths are as the engine routes them, after an optional API version
//! prefix (`/v1.41`): the client sends its negotiation's `GET /version`
//! unversioned and everything else versioned. `{name}` is an image ID or
//! reference as bollard puts it in the path, unencoded: one or more
//! `/`-separated segments of [`NAME_CHARACTERS`], none of them `.` or `..`
//! (the removal name `localhost/cascade-janitor-removing:<tag>` has a
//! `/`). A row's query is free, except where it names the exact query the
//! janitor sends ([`Endpoint::query`]): the removal's
//! `force=false&noprune=true`, which a proxy then requires.

/// One endpoint the janitor calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path after the optional version prefix; `{name}` is an image ID
    /// or reference (see the module doc).
    pub path: &'static str,
    /// The exact query string the janitor always sends, where a proxy
    /// should refuse any other; `None`: the query varies (filters, tags).
    pub query: Option<&'static str>,
    /// Why the janitor calls it, and which command does.
    pub why: &'static str,
}

/// The placeholder for an image ID or reference in [`Endpoint::path`].
pub const NAME: &str = "{name}";

/// The characters an image ID or reference is made of (Docker's reference
/// grammar, and `sha256:` IDs, Podman's bare hex ones, `moby-dangling@`
/// names), besides the `/` between its segments.
pub const NAME_CHARACTERS: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-";

/// The query of every removal: see `EngineConnection::remove_image`.
pub const REMOVAL_QUERY: &str = "force=false&noprune=true";

/// Every endpoint the janitor calls `[tag:engine_endpoints]`.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/version",
        query: None,
        why: "negotiates the API version, and tells which engine and release answers (every command)",
    },
    Endpoint {
        method: "GET",
        path: "/info",
        query: None,
        why: "the image store and data root, and the engine's clock for image ages (every command)",
    },
    Endpoint {
        method: "GET",
        path: "/images/json",
        query: None,
        why: "lists the labelled dangling images, the images carrying a removal name, and every image where removal prunes parents (prune, run, doctor)",
    },
    Endpoint {
        method: "GET",
        path: "/images/{name}/json",
        query: None,
        why: "inspects an image: a parent a plan explains, an image a container mounts (prune --dry-run, doctor, any sweep with image mounts)",
    },
    Endpoint {
        method: "GET",
        path: "/containers/json",
        query: None,
        why: "lists every container (all=true): the images in use, which are never removed (prune, run, doctor)",
    },
    Endpoint {
        method: "POST",
        path: "/images/{name}/tag",
        query: None,
        why: "gives an image its removal name before deleting it, on the classic store and Podman (prune, run)",
    },
    Endpoint {
        method: "DELETE",
        path: "/images/{name}",
        // Never an image a container uses (force), never its untagged
        // parents (noprune): `[ref:scope_invariant]`.
        query: Some(REMOVAL_QUERY),
        why: "removes one image by its removal name or moby-dangling@ name, never forced, never its parents (prune, run)",
    },
    Endpoint {
        method: "GET",
        path: "/events",
        query: None,
        why: "follows tag and commit events for early sweeps (run, unless --no-events)",
    },
];

/// The row `method` and `path` (no query) fall under, with or without a
/// version prefix; `None` for anything else, including a path with an
/// empty, `.` or `..` segment or a character outside an image name's.
pub fn endpoint_of(method: &str, path: &str) -> Option<&'static Endpoint> {
    let path = unversioned(path);
    if path
        .split('/')
        .skip(1)
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return None;
    }
    ENDPOINTS
        .iter()
        .find(|e| e.method == method && path_matches(e.path, path))
}

/// `path` without a leading `/v<major>.<minor>`.
fn unversioned(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let numbers = version
        .split_once('.')
        .is_some_and(|(major, minor)| is_number(major) && is_number(minor));
    if numbers { &rest[end..] } else { path }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `path` is `pattern`, its `{name}` standing for an image name.
fn path_matches(pattern: &str, path: &str) -> bool {
    let Some((before, after)) = pattern.split_once(NAME) else {
        return pattern == path;
    };
    let name = path
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after));
    name.is_some_and(is_name)
}

/// An image ID or reference as a path carries it: segments of
/// [`NAME_CHARACTERS`], none empty.
fn is_name(name: &str) -> bool {
    name.split('/')
        .all(|segment| !segment.is_empty() && segment.chars().all(|c| NAME_CHARACTERS.contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
        endpoint_of(method, path).map(|e| (e.method, e.path))
    }

    #[test]
    fn every_call_the_janitor_makes_falls_under_its_row() {
        let id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for (method, path, expected) in [
            ("GET", "/version".to_string(), "/version"),
            ("GET", "/v1.41/version".into(), "/version"),
            ("GET", "/v1.51/info".into(), "/info"),
            ("GET", "/v1.44/images/json".into(), "/images/json"),
            (
                "GET",
                format!("/v1.41/images/{id}/json"),
                "/images/{name}/json",
            ),
            (
                "GET",
                "/v1.51/images/snap:1/json".into(),
                "/images/{name}/json",
            ),
            (
                "GET",
                "/v1.41/images/0123abcd/json".into(),
                "/images/{name}/json",
            ),
            ("GET", "/v1.41/containers/json".into(), "/containers/json"),
            (
                "POST",
                format!("/v1.41/images/{id}/tag"),
                "/images/{name}/tag",
            ),
            (
                "DELETE",
                "/v1.41/images/localhost/cascade-janitor-removing:0123abcd".into(),
                "/images/{name}",
            ),
            (
                "DELETE",
                format!("/v1.51/images/moby-dangling@{id}"),
                "/images/{name}",
            ),
            ("GET", "/v1.45/events".into(), "/events"),
        ] {
            assert_eq!(
                row(method, &path),
                Some((method, expected)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn anything_else_falls_under_no_row() {
        for (method, path) in [
            ("POST", "/v1.41/containers/create"),
            ("POST", "/images/create"),
            ("POST", "/v1.41/build"),
            ("DELETE", "/v1.41/containers/x"),
            ("GET", "/v1.41/containers/x/archive"),
            ("GET", "/v1.41/containers/x/json"),
            ("POST", "/v1.41/images/load"),
            ("POST", "/v1.41/images/prune"),
            ("POST", "/v1.41/images/x/push"),
            ("GET", "/v1.41/images/x/get"),
            ("HEAD", "/_ping"),
            ("GET", "/_ping"),
            ("PUT", "/v1.41/images/json"),
            ("DELETE", "/v1.41/images/json/x/../../containers/x"),
            ("POST", "/v1.41/images/../containers/create"),
            ("POST", "/v1.41/images/x/../../containers/create/tag"),
            ("GET", "/v1.41/images/./json"),
            ("GET", "/v1.41/images//json"),
            ("DELETE", "/v1.41/images/"),
            ("DELETE", "/v1.41/images/x%2F..%2Fy"),
            ("GET", "/v1.41/version/"),
            ("GET", "/vx.41/version"),
            ("GET", "/v1.41/v1.41/version"),
            ("GET", "/libpod/images/json"),
            ("GET", "/v4.3.1/libpod/images/json"),
            ("GET", ""),
        ] {
            assert_eq!(row(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn every_row_is_a_method_and_a_routable_path() {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            assert!(
                ["GET", "POST", "DELETE"].contains(&e.method),
                "{e:?}: a method the janitor uses"
            );
            assert!(e.path.starts_with('/') && !e.path.ends_with('/'), "{e:?}");
            assert!(e.path.matches(NAME).count() <= 1, "{e:?}: one name at most");
            assert!(
                !e.why.is_empty() && !e.why.contains('|'),
                "{e:?}: a table cell"
            );
            let example = e.path.replace(NAME, "x");
            assert_eq!(
                endpoint_of(e.method, &example),
                Some(e),
                "{example} falls under its own row, not an earlier one"
            );
            assert!(!ENDPOINTS[..i].contains(e), "{e:?} is in the table once");
        }
    }
}
