//! The benchmark harness behind `cascade-bench` (`cargo xtask seed`,
//! `bench-compare`, `bench-gentle`), one module per subcommand and one per
//! concern they share:
//!
//! - [`seed`]: the identical image set every contender meets, and the
//!   `seed` subcommand that loads it into a nested engine;
//! - [`compare`]: the side-by-side comparison (`compare`), timing each
//!   [`Contender`](contender::Contender) at several sizes;
//! - [`gentle`]: the gentleness benchmark (`gentle`), the engine's commit
//!   latency while each contender sweeps;
//! - [`contender`]: what is timed, keyed by the `Contender` enum (and a
//!   gentleness phase by `Phase`), and the processes that run it;
//! - [`raw`]: the in-process contenders on a bare HTTP/1.1 connection;
//! - [`probe`]: the gentleness benchmark's `POST /commit` loop;
//! - [`procfs`]: engine CPU and resident memory from `/proc`;
//! - [`stats`]: medians and percentiles;
//! - [`results`]: the typed results each benchmark writes as JSON;
//! - [`render`]: the Markdown tables (with the targets they judge) and the
//!   SVG chart.
//!
//! Everything runs against a nested engine, never the host's.

pub mod compare;
pub mod contender;
pub mod gentle;
pub mod probe;
pub mod procfs;
pub mod raw;
pub mod render;
pub mod results;
pub mod seed;
pub mod stats;

use std::time::SystemTime;

use anyhow::{Result, bail};

use crate::NestedEngine;
use crate::engine::Store;

/// Runs `work`, or stops at Ctrl-C: the caller then still removes its
/// nested engine, and dropping `work` kills the processes it started.
pub async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C); the nested engine is removed"),
    }
}

/// The engine's image store, as the results name it.
pub fn store_name(engine: &NestedEngine) -> &'static str {
    match engine.engine.store {
        Store::Classic => "classic",
        Store::Containerd => "containerd",
        Store::ContainersStorage => "containers-storage",
    }
}

/// Now, UTC, RFC 3339 to the second.
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// CPUs this process may use, for the results' header.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
