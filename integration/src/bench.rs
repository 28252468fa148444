//! The benchmark harness behind `cascade-bench` (`cargo xtask seed`,
//! `bench-compare`, `bench-gentle`), one module per concern:
//!
//! - [`seed`]: the identical image set every contender meets, and the
//!   `seed` subcommand that loads it into a nested engine;
//! - [`raw`]: the in-process contenders on a bare HTTP/1.1 connection;
//! - [`probe`]: the gentleness benchmark's `POST /commit` loop;
//! - [`procfs`]: engine CPU and resident memory from `/proc`;
//! - [`stats`]: medians and percentiles.
//!
//! Everything runs against a nested engine, never the host's.

pub mod probe;
pub mod procfs;
pub mod raw;
pub mod seed;
pub mod stats;

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, for file names and records.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
