//! `cascade-soak`: the soak behind `cargo xtask soak`. This binary only
//! parses arguments and prints; the soak is `integration::soak`.
//!
//! Exit codes: 0 the soak passed; 1 it failed (a loss, memory or fd
//! growth past the bound, the daemon died outside a fault, no recovery
//! after a fault), with one line per problem; 2 bad arguments (clap).

use anyhow::Result;
use clap::Parser;
use integration::soak::{self, SoakArgs};

#[derive(Parser)]
#[command(
    name = "cascade-soak",
    about = "The daemon under churn and faults on a nested engine, with an auditor"
)]
struct Cli {
    #[command(flatten)]
    args: SoakArgs,
}

fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let figures = runtime.block_on(integration::bench::interruptible(soak::run(&cli.args)))?;
    if let Some(path) = &cli.args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)?;
    }
    for line in &figures.churn.first_errors {
        eprintln!("soak: churn error (first of its kind): {line}");
    }
    for ms in &figures.audit.window_losses {
        eprintln!("soak: window loss {ms} ms after the tag call began");
    }
    for ms in &figures.audit.engine_window {
        eprintln!("soak: engine window {ms} ms after the create call began");
    }
    println!("{}", figures.line());
    let problems = figures.problems();
    for problem in &problems {
        eprintln!("soak: FAIL: {problem}");
    }
    Ok(if problems.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
