//! `cascade-janitor`: the thin binary. It takes its `Settings` from
//! `cascade-config`, sets up logging and Sentry, runs the daemon through
//! `cascade-embed` (`run`) or one sweep per engine (`prune`), `doctor`, and
//! prints. Behaviour lives in those crates.

mod daemon;
mod doctor;
mod engine;
mod plugin;
mod progress;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use cascade_cleanup::{DanglingImageSweep, SweepConfig};
use cascade_embed::LoopOutcome;
use cascade_metrics::MetricsAddrError;
use plumbing::CancelOnSignal;
use tokio_util::sync::CancellationToken;

/// jemalloc returns the pages a pass freed to the OS within seconds (its
/// options: `.cargo/config.toml`); glibc's malloc kept them, so the idle
/// daemon held what its last pass used (docs/BENCHMARKS.md, "Memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use cascade_config::{
    CommandSettings, CommonSettings, LoadError, LogFormat, Output, PruneSettings, RunSettings,
    Settings,
};
use cascade_report::EngineOutcome;

pub const EXIT_OK: u8 = 0;
/// The engine could not be reached, removal on it was refused (not proven),
/// or a sweep ended with failures.
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
    let (args, env, log_level) = match plugin::start(std::env::args_os().collect()) {
        plugin::Start::Janitor {
            args,
            env,
            log_level,
        } => (args, env, log_level),
        plugin::Start::Done(code) => return code,
    };
    let settings = match cascade_config::load(args, &env) {
        Ok(settings) => settings,
        Err(LoadError::Clap(e)) => return clap_exit(e),
        Err(LoadError::Config(e)) => {
            eprintln!("cascade-janitor: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if settings.print_config {
        print!("{}", settings.render());
        return ExitCode::from(EXIT_OK);
    }
    // One thread: the janitor's work is waiting on engines, and one thread
    // has no cross-thread wake-ups per response (client CPU per removed
    // image halved) and one malloc arena, which keeps the idle daemon small
    // (docs/BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cascade-janitor: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(dispatch(settings, log_level)) {
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

async fn dispatch(settings: Settings, log_level: &str) -> Result<u8, Failure> {
    let _sentry = setup(&settings.common, log_level)?;
    for name in &settings.ignored_variables {
        tracing::debug!(variable = %name, "ignoring a Kubernetes service link variable");
    }
    match &settings.command {
        CommandSettings::Run(run_settings) => run(&settings.common, run_settings).await,
        CommandSettings::Prune(prune_settings) => prune(&settings.common, prune_settings).await,
        CommandSettings::Doctor => doctor::doctor(&settings.common).await,
    }
}

/// Logging and Sentry. Sentry is on only when `SENTRY_DSN` is set.
/// `log_level` applies when `RUST_LOG` is not set.
fn setup(
    common: &CommonSettings,
    log_level: &str,
) -> Result<Option<sentry::ClientInitGuard>, Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    // A panic a sweep loop caught is already one event with its `source`
    // tag (cascade-cleanup); the panic integration's own event for it would
    // open a separate issue per panic text. Panics elsewhere still reach it.
    options.before_send = Some(Arc::new(|event| {
        keep_event(event, cascade_cleanup::panic_is_guarded())
    }));
    Ok(Some(sentry::init(options)))
}

/// Drops the panic integration's event for a panic a loop guards (`guarded`):
/// the loop sends its own.
fn keep_event(
    event: sentry::protocol::Event<'static>,
    guarded: bool,
) -> Option<sentry::protocol::Event<'static>> {
    let from_panic_hook = event
        .exception
        .values
        .iter()
        .any(|e| e.mechanism.as_ref().is_some_and(|m| m.ty == "panic"));
    (!(from_panic_hook && guarded)).then_some(event)
}

fn sweep_config(common: &CommonSettings, dry_run: bool) -> SweepConfig {
    SweepConfig {
        scope: common.scope.clone(),
        min_age: common.min_age,
        concurrency: common.concurrency,
        call_timeout: common.timeout,
        dry_run,
        measure_reclaimed: true,
        engine_label: String::new(),
        allow_unproven_engine: common.allow_unproven_engine,
    }
}

/// The one line a refusal on an unproven engine is, naming the engine and
/// the flag that overrides it. `[ref:proven_engines]`
fn refusal_line(host: &str, reason: &str) -> String {
    format!(
        "engine {host}: {reason}; nothing was removed. Pass --allow-unproven-engine (CASCADE_JANITOR_ALLOW_UNPROVEN_ENGINE=true) to remove on it anyway; `prune --dry-run` shows the plan"
    )
}

/// Whether a section header is needed: output for one engine is unchanged
/// from the single-engine janitor.
fn several(common: &CommonSettings) -> bool {
    common.engines.len() > 1
}

/// One sweep of each engine in turn. One engine: exactly the single-engine
/// report (and an unreachable engine is a one-line error, exit 1). Several:
/// one section (text) or entry (JSON) per engine; an unreachable engine is
/// reported in its place and the others are still swept; exit 1 if any
/// engine failed.
async fn prune(common: &CommonSettings, settings: &PruneSettings) -> Result<u8, Failure> {
    let config = sweep_config(common, settings.dry_run);
    let mut outcomes = Vec::new();
    let mut failed = false;
    for (i, (host, tls)) in common
        .engines
        .iter()
        .map(|e| (&e.host, e.transport.tls()))
        .enumerate()
    {
        let docker = match engine::connect(host, tls, common.timeout).await {
            Ok(docker) => docker,
            Err(failure) if several(common) && failure.code == EXIT_FAILURE => {
                eprintln!("cascade-janitor: {}", failure.message);
                if settings.output == Output::Text {
                    println!("{}", cascade_report::engine_header(i, host));
                    println!("unreachable: {}", failure.message);
                }
                failed = true;
                outcomes.push((host.clone(), EngineOutcome::Unreachable(failure.message)));
                continue;
            }
            Err(failure) => return Err(failure),
        };
        let engine_label = if several(common) {
            host.clone()
        } else {
            String::new()
        };
        let sweep = DanglingImageSweep::new(
            Arc::new(docker),
            SweepConfig {
                engine_label,
                // A remote engine's disk is never this host's.
                measure_reclaimed: engine::is_local(host),
                ..config.clone()
            },
        );
        let progress = progress::for_prune(if settings.output == Output::Json {
            // A JSON consumer reads stdout; progress would only be noise.
            cascade_config::Progress::None
        } else {
            settings.progress
        });
        let report = sweep
            .run_with_progress(&plumbing::never(), progress.as_ref())
            .await;
        failed |= report.has_failures();
        if let Some(reason) = report.refused.as_deref().filter(|_| !report.dry_run) {
            eprintln!("cascade-janitor: {}", refusal_line(host, reason));
        }
        if settings.output == Output::Text {
            let mut stdout = std::io::stdout().lock();
            if several(common) {
                writeln!(stdout, "{}", cascade_report::engine_header(i, host))
                    .map_err(write_failure)?;
            }
            cascade_report::text(&mut stdout, &report, &config).map_err(write_failure)?;
        }
        outcomes.push((host.clone(), EngineOutcome::Report(Box::new(report))));
    }
    if settings.output == Output::Json {
        let document = match outcomes.as_slice() {
            [(_, EngineOutcome::Report(report))] if !several(common) => {
                cascade_report::json(report, &config)
            }
            _ => cascade_report::json_engines(&outcomes, &config),
        };
        writeln!(std::io::stdout().lock(), "{document}").map_err(write_failure)?;
    }
    Ok(if failed { EXIT_FAILURE } else { EXIT_OK })
}

fn write_failure(e: std::io::Error) -> Failure {
    Failure {
        code: EXIT_FAILURE,
        message: format!("cannot write the report: {e}"),
    }
}

/// A `--metrics-addr` that cannot be bound, as one line naming the flag
/// (the library names only the address): exit 2.
fn metrics_addr_failure(error: MetricsAddrError) -> Failure {
    match error {
        MetricsAddrError::Bind { addr, source } => Failure::usage(format!(
            "--metrics-addr {addr}: cannot bind: {source}; choose a free port and an address of this host, e.g. 127.0.0.1:9464"
        )),
    }
}

/// The daemon: `cascade-embed`'s `Janitor` (one loop per engine) and the
/// metrics server when asked for. Nothing here contacts an engine before the
/// loops run, so no engine can keep `run` from starting or make it exit.
///
/// Shutdown (SIGTERM or SIGINT): the loops stop (no new removal starts; a
/// removal already sent is answered, up to `--stop-deadline`), the metrics
/// server stops, Sentry is flushed for up to 3 s, exit 0. A second signal
/// exits at once with 1: the shutdown was cut short. A loop that ends by
/// itself (a bug) exits 1 at once, so the service manager restarts the
/// janitor instead of leaving an engine unswept behind a live process.
async fn run(common: &CommonSettings, settings: &RunSettings) -> Result<u8, Failure> {
    // Bind before anything starts: a taken port is a configuration error.
    let listener = match settings.metrics_addr {
        Some(addr) => Some(
            cascade_metrics::bind_metrics_addr(addr)
                .await
                .map_err(metrics_addr_failure)?,
        ),
        None => None,
    };
    let mut signals = CancelOnSignal::install().map_err(|e| Failure {
        code: EXIT_FAILURE,
        message: format!("cannot install signal handlers: {e}"),
    })?;
    tokio::select! {
        line = starting_line(common) => tracing::info!("{line}"),
        signal = signals.first() => {
            tracing::info!(signal, "signal before the first sweep; exiting");
            return Ok(EXIT_OK);
        }
    }
    if let Some(addr) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
        // The port actually bound: `--metrics-addr 127.0.0.1:0` picks one.
        tracing::info!(%addr, "serving /metrics and /healthz on http://{addr}");
    }
    let mut janitor = daemon::janitor(common, settings)?;
    janitor.start();
    let server_stop = CancellationToken::new();
    let server = listener.map(|listener| {
        tokio::spawn(cascade_metrics::serve(
            listener,
            Arc::clone(janitor.telemetry()),
            server_stop.clone(),
        ))
    });
    let signal = tokio::select! {
        signal = signals.first() => signal,
        failed = janitor.wait_for_failure() => {
            janitor.stop().await;
            if let LoopOutcome::Refused(reason) = &failed.outcome {
                return Err(Failure::unreachable(refusal_line(failed.name.as_str(), reason)));
            }
            tracing::error!(name = %failed.name, outcome = ?failed.outcome, "a sweep loop ended unexpectedly; exiting");
            return Ok(EXIT_FAILURE);
        }
    };
    tracing::info!(
        signal,
        "shutting down; send the signal again to exit at once"
    );
    let shutdown = async {
        for report in janitor.stop().await {
            if report.outcome != LoopOutcome::Clean {
                tracing::warn!(name = %report.name, outcome = ?report.outcome, "a sweep loop did not stop cleanly");
            }
        }
        server_stop.cancel();
        if let Some(server) = server
            && tokio::time::timeout(settings.stop_deadline, server)
                .await
                .is_err()
        {
            tracing::warn!("the metrics server did not stop in time");
        }
    };
    tokio::select! {
        _ = shutdown => {}
        second = signals.first() => {
            tracing::warn!(signal = second, "second signal; exiting at once");
            return Ok(EXIT_FAILURE);
        }
    }
    if let Some(client) = sentry::Hub::current().client() {
        client.flush(Some(std::time::Duration::from_secs(3)));
    }
    Ok(EXIT_OK)
}

/// The first line `run` logs: the janitor's version and, for each engine,
/// which engine answers there and whether removal is allowed on it
/// (`[ref:proven_engines]`). Engines are asked together, each for at most
/// `STARTUP_PROBE` (or `--timeout` if shorter): an engine that does not
/// answer yet is said so, and its loop keeps trying as always.
async fn starting_line(common: &CommonSettings) -> String {
    const STARTUP_PROBE: std::time::Duration = std::time::Duration::from_secs(5);
    let limit = common.timeout.min(STARTUP_PROBE);
    let probes = common.engines.iter().map(|e| async move {
        let facts = async {
            let engine = engine::connect(&e.host, e.transport.tls(), limit)
                .await
                .map_err(|f| f.message)?;
            tokio::time::timeout(limit, engine.facts())
                .await
                .map_err(|_| format!("no answer within {}", humantime::format_duration(limit)))?
                .map_err(|e| e.message)
        };
        let said = match facts.await {
            Ok(facts) => {
                let admission =
                    cascade_cleanup::Admission::of(&facts.identity, common.allow_unproven_engine);
                let verdict = match &admission {
                    cascade_cleanup::Admission::Proven(row) => {
                        format!("proven ({})", row.describe())
                    }
                    cascade_cleanup::Admission::Allowed(_) => {
                        "NOT proven, removal allowed by --allow-unproven-engine".to_string()
                    }
                    cascade_cleanup::Admission::Refused(_) => {
                        "NOT proven: removal will be refused".to_string()
                    }
                };
                format!("{}, {verdict}", facts.identity.describe())
            }
            Err(why) => format!("not reachable yet ({why}); tried again every interval"),
        };
        format!("engine {}: {said}", e.host)
    });
    let engines = futures_util::future::join_all(probes).await;
    format!(
        "cascade-janitor {} starting; {}",
        env!("CARGO_PKG_VERSION"),
        engines.join("; ")
    )
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

#[cfg(test)]
mod tests {
    use sentry::protocol::{Event, Exception, Mechanism};

    use super::keep_event;

    fn panic_event() -> Event<'static> {
        Event {
            exception: vec![Exception {
                ty: "panic".into(),
                mechanism: Some(Mechanism {
                    ty: "panic".into(),
                    ..Mechanism::default()
                }),
                ..Exception::default()
            }]
            .into(),
            ..Event::default()
        }
    }

    /// The library's bind error names only the address; the binary's line
    /// names its flag, as it always did.
    #[tokio::test]
    async fn a_metrics_address_that_cannot_be_bound_names_the_flag() {
        let held = cascade_metrics::bind_metrics_addr("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("a free port");
        let addr = held.local_addr().expect("bound");
        let error = cascade_metrics::bind_metrics_addr(addr)
            .await
            .expect_err("in use");
        let source = match &error {
            cascade_metrics::MetricsAddrError::Bind { source, .. } => source.to_string(),
        };
        let failure = super::metrics_addr_failure(error);
        assert_eq!(failure.code, super::EXIT_USAGE);
        assert_eq!(
            failure.message,
            format!(
                "--metrics-addr {addr}: cannot bind: {source}; choose a free port and an address of this host, e.g. 127.0.0.1:9464"
            )
        );
    }

    #[test]
    fn only_the_hooks_event_for_a_guarded_panic_is_dropped() {
        assert!(
            keep_event(panic_event(), true).is_none(),
            "the loop reports it"
        );
        assert!(
            keep_event(panic_event(), false).is_some(),
            "a crash elsewhere"
        );
        let tagged = Event {
            message: Some("dangling image cleanup caught a panic".into()),
            ..Event::default()
        };
        assert!(keep_event(tagged, true).is_some(), "the loop's own event");
    }
}
