//! `cascade-janitor`: the thin binary. It parses configuration, sets up
//! logging and Sentry, and wires `cascade-scope`, `cascade-cleanup` and
//! `cascade-router` together. Behaviour lives in those crates.

mod cli;
mod engine;
mod report;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use cascade_cleanup::{DanglingImageCleanup, DanglingImageSweep, DockerImages, SweepConfig};
use cascade_router::{JanitorLoop, JanitorProcessor};
use cascade_scope::Scope;
use clap::Parser;
use plumbing::CancelOnSignal;

use crate::cli::{Cli, Command, Common, LogFormat, Output};

pub const EXIT_OK: u8 = 0;
/// The engine could not be reached, or a sweep ended with failures.
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;

/// An error at the binary's edge: one line for the operator and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: String) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message,
        }
    }
    pub fn unreachable(message: String) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cascade-janitor: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("cascade-janitor: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Help and version go to stdout with exit 0; every usage error is one line
/// on stderr with exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::from(EXIT_OK)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!(
                "cascade-janitor: a command is required: run, prune or doctor; see `cascade-janitor --help`"
            );
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            // clap's first paragraph (the error and, for an invalid value,
            // the possible values), folded into one line.
            let rendered = e.render().to_string();
            let paragraph: Vec<&str> = rendered
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = paragraph.join(" ");
            let line = line.trim_start_matches("error: ");
            eprintln!("cascade-janitor: {line}; see `cascade-janitor --help`");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run(args) => {
            let _sentry = setup(&args.common)?;
            run(&args).await
        }
        Command::Prune(args) => {
            let _sentry = setup(&args.common)?;
            prune(&args).await
        }
        Command::Doctor(args) => {
            let _sentry = setup(&args.common)?;
            doctor(&args.common).await
        }
    }
}

/// Logging and Sentry. Sentry is on only when `SENTRY_DSN` is set.
fn setup(common: &Common) -> Result<Option<sentry::ClientInitGuard>, Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match common.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    drop(installed); // already installed only happens in tests
    let dsn = match std::env::var("SENTRY_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => return Ok(None),
    };
    let dsn: sentry::types::Dsn = dsn.trim().parse().map_err(|e| {
        Failure::usage(format!(
            "SENTRY_DSN is not a valid DSN ({e}); fix it or unset it to run without Sentry"
        ))
    })?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = sentry::release_name!();
    Ok(Some(sentry::init(options)))
}

fn sweep_config(common: &Common, dry_run: bool) -> Result<SweepConfig, Failure> {
    let scope = Scope::new(common.labels.iter().cloned())
        .map_err(|e| Failure::usage(format!("--label: {e}")))?;
    Ok(SweepConfig {
        scope,
        min_age: common.min_age,
        concurrency: common.concurrency,
        call_timeout: common.timeout,
        dry_run,
        measure_free_space_at: None,
    })
}

async fn connect(common: &Common) -> Result<bollard::Docker, Failure> {
    let host = engine::resolve_host(common.docker_host.as_deref());
    engine::connect(&host, common.timeout).await
}

async fn prune(args: &cli::PruneArgs) -> Result<u8, Failure> {
    let config = sweep_config(&args.common, args.dry_run)?;
    let docker = connect(&args.common).await?;
    let sweep = DanglingImageSweep::new(Arc::new(docker), config);
    let report = sweep.run(&plumbing::never()).await;
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        Output::Json => {
            use std::io::Write;
            writeln!(stdout, "{}", report::json(&report, sweep.config()))
        }
        Output::Text => report::text(&mut stdout, &report, sweep.config()),
    };
    if let Err(e) = written {
        return Err(Failure {
            code: EXIT_FAILURE,
            message: format!("cannot write the report: {e}"),
        });
    }
    Ok(if report.has_failures() {
        EXIT_FAILURE
    } else {
        EXIT_OK
    })
}

async fn run(args: &cli::RunArgs) -> Result<u8, Failure> {
    let config = sweep_config(&args.common, false)?;
    let docker = connect(&args.common).await?;
    let cleanup = DanglingImageCleanup::new(
        DanglingImageSweep::new(Arc::new(docker), config),
        args.interval,
        args.stop_deadline,
    );
    let processor = JanitorProcessor::new().with_loop(Arc::new(cleanup) as Arc<dyn JanitorLoop>);
    let mut signals = CancelOnSignal::install().map_err(|e| Failure {
        code: EXIT_FAILURE,
        message: format!("cannot install signal handlers: {e}"),
    })?;
    processor.start().await;
    let signal = signals.first().await;
    tracing::info!(
        signal,
        "shutting down; send the signal again to exit at once"
    );
    tokio::select! {
        _ = processor.stop() => {}
        second = signals.first() => {
            tracing::warn!(signal = second, "second signal; exiting at once");
            return Ok(EXIT_OK);
        }
    }
    if let Some(client) = sentry::Hub::current().client() {
        client.flush(Some(std::time::Duration::from_secs(3)));
    }
    Ok(EXIT_OK)
}

async fn doctor(common: &Common) -> Result<u8, Failure> {
    let config = sweep_config(common, true)?;
    let host = engine::resolve_host(common.docker_host.as_deref());
    let docker = engine::connect(&host, common.timeout).await?;
    let mut problems = 0;
    match docker.version().await {
        Ok(v) => println!(
            "engine: {host} (Docker {}, API {})",
            v.version.as_deref().unwrap_or("?"),
            v.api_version.as_deref().unwrap_or("?")
        ),
        Err(e) => {
            println!("engine: {host}: version query failed: {e}");
            problems += 1;
        }
    }
    if let Ok(info) = docker.info().await {
        println!(
            "storage: driver {}, root dir {}",
            info.driver.as_deref().unwrap_or("?"),
            info.docker_root_dir.as_deref().unwrap_or("?")
        );
    }
    println!(
        "scope: dangling images with {} (min age {})",
        config.scope,
        humantime::format_duration(config.min_age)
    );
    let count = |filters: HashMap<String, Vec<String>>| {
        let docker = docker.clone();
        async move {
            DockerImages::list_images(&docker, &filters)
                .await
                .map(|v| v.len())
        }
    };
    let labelled = count(HashMap::from([(
        "label".to_string(),
        config.scope.label_filters(),
    )]))
    .await;
    let dangling = count(HashMap::from([(
        "dangling".to_string(),
        vec!["true".to_string()],
    )]))
    .await;
    let sweep = DanglingImageSweep::new(Arc::new(docker.clone()), config);
    let plan = sweep.run(&plumbing::never()).await;
    match (labelled, dangling, &plan.scan_error) {
        (Ok(labelled), Ok(dangling), None) => {
            println!("images carrying the labels: {labelled}");
            println!("  of which dangling (in scope): {}", plan.listed);
            println!("  reclaimable now: {}", plan.would_remove.len());
            // The engine's listing minus what our own check rejected is what
            // is really in scope. `[ref:scope_invariant]`
            let rejected = plan
                .skipped_by_reason()
                .get("failed_verification")
                .copied()
                .unwrap_or(0);
            let in_scope = plan.listed - rejected;
            println!(
                "dangling images out of scope, never touched: {}",
                dangling.saturating_sub(in_scope)
            );
            if labelled == 0 {
                println!(
                    "warning: no image carries {}; the janitor will remove nothing. \
                     Add `LABEL {}` to the Dockerfiles (or --change to docker commit) of the images it should manage.",
                    sweep.config().scope,
                    sweep
                        .config()
                        .scope
                        .labels()
                        .iter()
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        (labelled, dangling, scan) => {
            problems += 1;
            let error = labelled
                .err()
                .map(|e| e.message)
                .or(dangling.err().map(|e| e.message))
                .or(scan.clone())
                .unwrap_or_default();
            println!("problem: listing images failed: {error}");
        }
    }
    Ok(if problems == 0 { EXIT_OK } else { EXIT_FAILURE })
}

/// Small pieces of async plumbing the binary needs.
mod plumbing {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    /// A token that never fires, for one-shot sweeps.
    pub fn never() -> tokio_util::sync::CancellationToken {
        tokio_util::sync::CancellationToken::new()
    }

    /// SIGTERM and SIGINT, installed before the loops start so no signal is
    /// lost between start-up and waiting.
    pub struct CancelOnSignal {
        term: Signal,
        int: Signal,
    }

    impl CancelOnSignal {
        pub fn install() -> std::io::Result<CancelOnSignal> {
            Ok(CancelOnSignal {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }

        /// The name of the next signal received.
        pub async fn first(&mut self) -> &'static str {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
    }
}
