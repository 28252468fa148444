//! Engine addresses, as `--docker-host` and `DOCKER_HOST` spell them.

/// The local engine's socket, used when no address is given.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// A parsed engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(String),
    Http(String),
}

/// Why an address names no engine; its text ends with how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}; use unix:///path/to/docker.sock or tcp://HOST:PORT")]
pub struct BadAddress {
    why: &'static str,
}

/// Parses one engine address (`unix:///path`, `tcp://HOST:PORT`,
/// `http://HOST:PORT`).
pub fn parse_host(host: &str) -> Result<Address, BadAddress> {
    let bad = |why| Err(BadAddress { why });
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return bad("the socket path must be absolute");
        }
        return Ok(Address::Unix(path.to_string()));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = host.strip_prefix(scheme) {
            let authority = rest.trim_end_matches('/');
            let valid = authority.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty() && p.parse::<u16>().is_ok() && !authority.contains('/')
            });
            if !valid {
                return bad("expected HOST:PORT after the scheme");
            }
            return Ok(Address::Http(format!("http://{authority}")));
        }
    }
    if host.starts_with('/') {
        return bad("a bare path needs the unix:// scheme");
    }
    bad("unsupported scheme")
}

/// True for an engine reached over a unix socket, i.e. on this host (or
/// one whose socket is mounted here); only such an engine's disk can be
/// this host's.
pub fn is_local(host: &str) -> bool {
    matches!(parse_host(host), Ok(Address::Unix(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_local() {
        assert!(is_local("unix:///var/run/docker.sock"));
        assert!(!is_local("tcp://127.0.0.1:2375"));
        assert!(!is_local("http://127.0.0.1:2375"));
        assert!(!is_local("docker.sock"));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_host("unix:///var/run/docker.sock").ok(),
            Some(Address::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375").ok(),
            Some(Address::Http("http://127.0.0.1:2375".into()))
        );
        for bad in [
            "",
            "docker.sock",
            "/var/run/docker.sock",
            "unix://relative",
            "tcp://",
            "tcp://host",
            "tcp://h:99999",
            "ftp://h:1",
        ] {
            let err = parse_host(bad).expect_err(bad).to_string();
            assert!(
                err.contains("unix:///path/to/docker.sock") && !err.contains('\n'),
                "{err}"
            );
        }
    }
}
