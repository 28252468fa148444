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
