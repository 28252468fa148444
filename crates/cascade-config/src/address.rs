//! Engine addresses, as far as configuration needs them.
//!
//! Parsing is `cascade-engine`'s (one parser for every address the janitor
//! reads); this module adds the checks that are configuration's:
//! credentials in the URL and loopback.

use std::net::IpAddr;

pub use cascade_engine::{Address, DEFAULT_SOCKET};

/// Parses one `--docker-host` value; the error says why and how to write it.
pub fn parse_host(host: &str) -> Result<Address, String> {
    cascade_engine::parse_host(host).map_err(|e| e.to_string())
}

/// Whether `host` may carry credentials (`tcp://user:pass@host:2376`). Any
/// `@` outside a unix socket path counts, whatever else is wrong with the
/// value: every other error message quotes the value, and must not.
pub fn has_credentials(host: &str) -> bool {
    !host.starts_with("unix://") && host.contains('@')
}

/// `host` with everything up to its last `@` replaced, for messages.
pub fn redact(host: &str) -> String {
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
    fn credentials_are_found_and_redacted() {
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
        }
        assert_eq!(
            redact("tcp://user:pass@host:2376"),
            "tcp://<credentials>@host:2376"
        );
        assert!(!has_credentials("unix:///run/user@1000/docker.sock"));
        assert!(!has_credentials("tcp://host:2376"));
    }

    #[test]
    fn loopback_is_127_8_and_1_and_localhost() {
        let lo = |h: &str| is_loopback(&parse_host(h).expect(h));
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
