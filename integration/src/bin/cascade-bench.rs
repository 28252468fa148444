//! `cascade-bench`: seeding, the side-by-side comparison and the
//! gentleness benchmark behind `cargo xtask seed`, `cargo xtask
//! bench-compare` and `cargo xtask bench-gentle`.
//!
//! Everything runs against a nested engine: `seed` starts one unless it is
//! given `--docker-host`, and refuses the host engine's own socket. This
//! binary only parses arguments; each subcommand is a module of
//! `integration::bench`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use integration::bench::{compare, gentle, seed};

#[derive(Parser)]
#[command(
    name = "cascade-bench",
    about = "Seeding and benchmarks against a nested engine"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Redraw the SVG from a compare.json that `compare` wrote
    Chart {
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        svg: PathBuf,
    },
    /// Load N labelled dangling images and M unlabelled ones into a nested engine
    Seed(seed::SeedArgs),
    /// Time the contenders side by side on one nested engine
    Compare(compare::CompareArgs),
    /// Commit latency on the engine while each contender sweeps
    Gentle(gentle::GentleArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.task {
        Task::Chart { json, svg } => compare::redraw_chart(&json, &svg),
        Task::Seed(args) => runtime.block_on(seed::run(args)),
        Task::Compare(args) => runtime.block_on(compare::run(args)),
        Task::Gentle(args) => runtime.block_on(gentle::run(args)),
    }
}
