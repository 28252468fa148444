//! Engine addresses: `unix:///path`, `tcp://HOST:PORT`, `http://HOST:PORT`.
//!
//! [`EngineAddress`] is an address checked once and kept as it was written
//! (it names the engine in logs, metrics and `/healthz`); the checks every
//! owner of an address needs are here, so the command line and an embedder
//! apply the same ones: [`has_credentials`] and [`redact`] (an address never
//! carries credentials, and a message never quotes them), and
//! [`EngineAddress::is_loopback`] (plain TCP is only safe on this host).

use std::net::IpAddr;

/// The local engine's socket, used when no address is given.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where an engine listens, as the transport needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A unix socket's absolute path.
    Unix(String),
    /// `http://HOST:PORT`, whichever scheme (`tcp://`, `http://`) was written.
    Http(String),
}

/// Why a text names no engine. Its message ends with how to write one, and
/// never quotes credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct BadAddress {
    why: Why,
    /// The address as given, credentials replaced ([`redact`]).
    address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    NotAbsolute,
    NoHostPort,
    BarePath,
    Scheme,
    Credentials,
}

impl BadAddress {
    fn new(why: Why, host: &str) -> BadAddress {
        BadAddress {
            why,
            address: redact(host),
        }
    }

    fn describe(&self) -> String {
        let why = match self.why {
            Why::NotAbsolute => "the socket path must be absolute",
            Why::NoHostPort => "expected HOST:PORT after the scheme",
            Why::BarePath => "a bare path needs the unix:// scheme",
            Why::Scheme => "unsupported scheme",
            Why::Credentials => {
                return "credentials in an engine address are refused (it appears in logs, metrics and /healthz); use TLS client certificates".to_string();
            }
        };
        format!("{why}; use unix:///path/to/docker.sock or tcp://HOST:PORT")
    }

    /// The address as given, with any credentials replaced: safe to print.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True when the address was refused for carrying credentials.
    pub fn is_credentials(&self) -> bool {
        self.why == Why::Credentials
    }
}

/// Parses one engine address (`unix:///path`, `tcp://HOST:PORT`,
/// `http://HOST:PORT`). An address with credentials is refused.
pub fn parse_host(host: &str) -> Result<Address, BadAddress> {
    let bad = |why| Err(BadAddress::new(why, host));
    if has_credentials(host) {
        return bad(Why::Credentials);
    }
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return bad(Why::NotAbsolute);
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
                return bad(Why::NoHostPort);
            }
            return Ok(Address::Http(format!("http://{authority}")));
        }
    }
    if host.starts_with('/') {
        return bad(Why::BarePath);
    }
    bad(Why::Scheme)
}

/// An engine's address, checked: it names an engine ([`parse_host`]) and
/// carries no credentials. It displays as it was written, which is how logs,
/// metrics labels and `/healthz` name the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineAddress {
    text: String,
    target: Address,
}

impl EngineAddress {
    /// Checks `text`; the error says why and how to write an address, and
    /// never quotes credentials.
    pub fn parse(text: &str) -> Result<EngineAddress, BadAddress> {
        Ok(EngineAddress {
            target: parse_host(text)?,
            text: text.to_string(),
        })
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the engine listens.
    pub fn target(&self) -> &Address {
        &self.target
    }

    /// True when `other` reaches the same engine, however spelt (`tcp://`
    /// or `http://`, a trailing `/`).
    pub fn same_engine(&self, other: &EngineAddress) -> bool {
        self.target == other.target
    }

    /// True for a unix socket: on this host (or one whose socket is mounted
    /// here); only such an engine's disk can be this host's.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Address::Unix(_))
    }

    /// True for a TCP engine on this host's loopback (127.0.0.0/8, `::1`,
    /// `localhost`): the only place plain TCP does not cross a network.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.target)
    }
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for EngineAddress {
    type Err = BadAddress;

    fn from_str(text: &str) -> Result<EngineAddress, BadAddress> {
        EngineAddress::parse(text)
    }
}

impl AsRef<str> for EngineAddress {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// True for an engine reached over a unix socket, i.e. on this host (or
/// one whose socket is mounted here); only such an engine's disk can be
/// this host's.
pub fn is_local(host: &str) -> bool {
    matches!(parse_host(host), Ok(Address::Unix(_)))
}

/// Whether `host` may carry credentials (`tcp://user:pass@host:2376`). Any
/// `@` outside a unix socket path counts, whatever else is wrong with the
/// value: every other error message quotes the value, and must not.
pub fn has_credentials(host: &str) -> bool {
    !host.starts_with("unix://") && host.contains('@')
}

/// `host` with everything up to its last `@` replaced, for messages.
pub fn redact(host: &str) -> String {
    if !has_credentials(host) {
        return host.to_string();
    }
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), host),
    };
    match rest.rsplit_once('@') {
        Some((_, tail)) => format!("{scheme}<credentials>@{tail}"),
        None => host.to_string(),
    }
}

/// A TCP engine on this host's loopback: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(address: &Address) -> bool {
    let Address::Http(url) = address else {
        return false;
    };
    let authority = url.trim_start_matches("http://");
    let Some((host, _port)) = authority.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
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
            let err = parse_host(bad).expect_err(bad);
            assert!(!err.is_credentials());
            let err = err.to_string();
            assert!(
                err.contains("unix:///path/to/docker.sock") && !err.contains('\n'),
                "{err}"
            );
        }
    }

    #[test]
    fn an_engine_address_keeps_its_spelling_and_knows_its_engine() {
        let tcp = EngineAddress::parse("tcp://127.0.0.1:2375").expect("tcp");
        let http: EngineAddress = "http://127.0.0.1:2375/".parse().expect("http");
        assert_eq!(tcp.to_string(), "tcp://127.0.0.1:2375");
        assert_eq!(http.as_str(), "http://127.0.0.1:2375/");
        assert_ne!(tcp, http, "two spellings");
        assert!(tcp.same_engine(&http), "one engine");
        assert!(tcp.is_loopback() && !tcp.is_local());
        let unix = EngineAddress::parse(DEFAULT_SOCKET).expect("unix");
        assert!(unix.is_local() && !unix.is_loopback());
        let remote = EngineAddress::parse("tcp://10.0.0.5:2376").expect("remote");
        assert!(!remote.is_loopback());
    }

    #[test]
    fn credentials_are_refused_and_never_quoted() {
        for host in [
            "tcp://user:pass@host:2376",
            "tcp://user@host",
            "http://u:p@10.0.0.1:2375/",
            "tcp://u:p/ss@h:1",
            "user:secret@h:1",
        ] {
            assert!(has_credentials(host), "{host}");
            let shown = redact(host);
            assert!(
                !shown.contains("user")
                    && !shown.contains("pass")
                    && !shown.contains("secret")
                    && !shown.contains("ss@"),
                "{host} shown as {shown}"
            );
            let err = EngineAddress::parse(host).expect_err(host);
            assert!(err.is_credentials(), "{host}");
            assert_eq!(err.address(), shown);
            let text = err.to_string();
            assert!(text.contains("credentials"), "{text}");
            assert!(
                !text.contains("user") && !text.contains("pass") && !text.contains("secret"),
                "{text}"
            );
        }
        assert_eq!(
            redact("tcp://user:pass@host:2376"),
            "tcp://<credentials>@host:2376"
        );
        assert!(!has_credentials("unix:///run/user@1000/docker.sock"));
        assert!(EngineAddress::parse("unix:///run/user@1000/docker.sock").is_ok());
        assert!(!has_credentials("tcp://host:2376"));
    }

    #[test]
    fn loopback_is_127_8_and_1_and_localhost() {
        let lo = |h: &str| EngineAddress::parse(h).expect(h).is_loopback();
        for host in [
            "tcp://127.0.0.1:2375",
            "tcp://127.8.9.10:2375",
            "tcp://[::1]:2375",
            "tcp://localhost:2375",
            "http://LOCALHOST:2375",
            "tcp://[::ffff:127.0.0.1]:2375",
        ] {
            assert!(lo(host), "{host}");
        }
        for host in [
            "tcp://10.0.0.5:2375",
            "tcp://128.0.0.1:2375",
            "tcp://[::2]:2375",
            "tcp://docker.example:2375",
            "tcp://localhost.example:2375",
            "tcp://0.0.0.0:2375",
            "unix:///var/run/docker.sock",
        ] {
            assert!(!lo(host), "{host}");
        }
    }
}
