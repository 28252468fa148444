//! The binary's view of `cascade-engine`: the same names, with its errors
//! turned into exit codes (bad address 2, unreachable 1).

use std::time::Duration;

pub use cascade_engine::{Engine, EngineError, is_local};

use crate::Failure;

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        match error {
            EngineError::BadAddress { .. } => Failure::usage(error.to_string()),
            EngineError::Unreachable { .. } => Failure::unreachable(error.to_string()),
        }
    }
}

/// Connects and negotiates the API version (`prune`, `doctor`).
pub async fn connect(host: &str, timeout: Duration) -> Result<Engine, Failure> {
    Ok(cascade_engine::connect(host, timeout).await?)
}
