//! The binary's view of `cascade-engine`: the same names, with its errors
//! worded in the binary's flags and turned into exit codes (bad address or
//! TLS files 2, unreachable 1).
//!
//! The library words what to check in its own terms ("the engine
//! address", "the CA of the engine's TLS files"); the binary gives its
//! flags as [`FLAGS`] to every engine and client it makes, and renders
//! every error it prints with them, so its messages name `--docker-host`
//! and `--tls-ca` as they always did.

use std::time::Duration;

use cascade_engine::SettingNames;
pub use cascade_engine::{EngineConnection, EngineError, TlsFiles, is_local};

use crate::Failure;

/// What the binary's messages call the settings an engine error points
/// at: its flags.
pub const FLAGS: SettingNames = SettingNames {
    address: "--docker-host",
    the_address: "--docker-host",
    address_sources: "--docker-host (or DOCKER_HOST)",
    tls_ca: "--tls-ca",
    tls_cert: "--tls-cert",
};

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        let message = error.message(&FLAGS);
        match error {
            EngineError::BadAddress { .. } | EngineError::Tls { .. } => Failure::usage(message),
            EngineError::Unreachable { .. } => Failure::unreachable(message),
        }
    }
}

/// Connects and negotiates the API version (`prune`, `doctor`), over TLS
/// when the engine's transport is TLS.
pub async fn connect(
    host: &str,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<EngineConnection, Failure> {
    Ok(cascade_engine::connect_with(host, tls, timeout)
        .await?
        .with_names(FLAGS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's words mapped back to the flags: the messages the
    /// binary printed before the library spoke its own terms.
    #[test]
    fn engine_errors_name_the_flags() {
        let bad = Failure::from(
            cascade_engine::EngineClient::new("docker.sock", Duration::from_secs(1))
                .expect_err("no scheme"),
        );
        assert_eq!(bad.code, crate::EXIT_USAGE);
        assert_eq!(
            bad.message,
            "invalid --docker-host `docker.sock`: unsupported scheme; use unix:///path/to/docker.sock or tcp://HOST:PORT"
        );
        let unreachable = Failure::from(EngineError::Unreachable {
            host: "tcp://127.0.0.1:9".into(),
            why: "invalid peer certificate: UnknownIssuer".into(),
            handshake_failed: true,
        });
        assert_eq!(unreachable.code, crate::EXIT_FAILURE);
        assert_eq!(
            unreachable.message,
            "cannot reach the Docker engine at tcp://127.0.0.1:9: invalid peer certificate: UnknownIssuer; the TLS handshake failed: check that --tls-ca signed the engine's certificate, that it names this host, and that the engine accepts --tls-cert; is dockerd running, and is --docker-host (or DOCKER_HOST) right?"
        );
    }
}
