//! The binary's view of `cascade-engine`: the same names, with its errors
//! turned into exit codes (bad address or TLS files 2, unreachable 1).

use std::time::Duration;

pub use cascade_engine::{Engine, EngineError, TlsFiles, is_local};

use crate::Failure;

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        match error {
            EngineError::BadAddress { .. } | EngineError::Tls { .. } => {
                Failure::usage(error.to_string())
            }
            EngineError::Unreachable { .. } => Failure::unreachable(error.to_string()),
        }
    }
}

/// Connects and negotiates the API version (`prune`, `doctor`), over TLS
/// when the engine's transport is TLS.
pub async fn connect(
    host: &str,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<Engine, Failure> {
    Ok(cascade_engine::connect_with(host, tls, timeout).await?)
}
