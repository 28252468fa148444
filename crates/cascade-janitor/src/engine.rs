//! The binary's view of `cascade-engine`: the same names, with its errors
//! turned into exit codes (bad address 2, unreachable 1) and its address
//! errors into the plain reasons the configuration reports.

use std::time::Duration;

pub use cascade_engine::{Address, DEFAULT_SOCKET, Engine, EngineClient, EngineError, is_local};

use crate::Failure;

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        match error {
            EngineError::BadAddress { .. } => Failure::usage(error.to_string()),
            EngineError::Unreachable { .. } => Failure::unreachable(error.to_string()),
        }
    }
}

/// Parses one `--docker-host` value; the error says why and how to write it.
pub fn parse_host(host: &str) -> Result<Address, String> {
    cascade_engine::parse_host(host).map_err(|e| e.to_string())
}

/// Connects and negotiates the API version (`prune`, `doctor`).
pub async fn connect(host: &str, timeout: Duration) -> Result<Engine, Failure> {
    Ok(cascade_engine::connect(host, timeout).await?)
}
