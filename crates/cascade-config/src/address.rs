//! Engine addresses, as far as configuration needs them.
//!
//! Parsing and the checks are `cascade-engine`'s (one parser, one
//! credentials check, one loopback check for every address the janitor
//! reads, whether from this command line or an embedder's
//! `JanitorConfig`); this module words their results for the command line.

pub use cascade_engine::{
    Address, DEFAULT_SOCKET, EngineAddress, has_credentials, is_loopback, redact,
};

/// Parses one `--docker-host` value; the error says why and how to write it.
pub fn parse_host(host: &str) -> Result<Address, String> {
    cascade_engine::parse_host(host).map_err(|e| e.to_string())
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
