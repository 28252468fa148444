//! `cascade-demo`: behind `cargo xtask demo`. Starts a nested engine, loads
//! the demo's zoo, runs the janitor's `doctor`, `prune --dry-run` and
//! `prune` against it, explains each image's fate, and removes the engine.
//! The host engine only runs the nested engine's container; its images are
//! checked unchanged at the end.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use integration::NestedEngine;
use integration::demo;

#[derive(Parser)]
#[command(
    name = "cascade-demo",
    about = "Show what cascade-janitor removes and keeps, on a nested engine"
)]
struct Cli {
    /// The cascade-janitor binary to run (cargo xtask demo builds it)
    #[arg(long)]
    janitor: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !cli.janitor.is_file() {
        bail!(
            "--janitor {}: no such file; build it with `cargo build -p cascade-janitor`",
            cli.janitor.display()
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    println!("== starting a nested Docker engine (the host's images are never touched)");
    let engine = NestedEngine::start().await?;
    let mut stdout = std::io::stdout();
    let result = demo::run(&engine.docker, &engine.host(), &cli.janitor, &mut stdout).await;
    // The engine goes whatever happened; its guard checks the host's images.
    let finished = engine.finish().await;
    let (outcomes, _) = result?;
    finished.context("removing the nested engine")?;
    let surprises = outcomes
        .iter()
        .filter(|o| o.fate != o.image.expected)
        .count();
    if surprises > 0 {
        bail!("{surprises} image(s) did not end as the scope rule says");
    }
    println!("\n== done: the nested engine is removed; the host's images are unchanged");
    Ok(())
}
