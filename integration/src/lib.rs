//! The real-engine harness behind the safety suite.
//!
//! Every test starts its own nested Docker engine ([`NestedEngine`]) with
//! testcontainers, from the image `cargo xtask dind-image` builds, and works
//! only inside it: fixtures are loaded, committed and swept there. The host
//! engine is only asked to run that one container, and a [`HostGuard`]
//! fails the test if the host's image IDs changed meanwhile.

pub mod bench;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod fixtures;
pub mod proxy;
pub mod soak;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascade_cleanup::{LoopOutcome, SweepReport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use engine::{HostGuard, NestedEngine};

/// Runs `fut` with a Sentry hub whose events are captured, and returns them.
/// Also binds that client to the main hub, so tasks the future spawns (the
/// cleanup loop) report into it too; nextest runs each test in its own
/// process, so nothing else shares it.
pub async fn capture_sentry<F: Future>(
    fut: F,
) -> (F::Output, Vec<sentry::protocol::Event<'static>>) {
    use sentry::SentryFutureExt;
    let transport = sentry::test::TestTransport::new();
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("https://public@sentry.invalid/1".parse().expect("dsn"));
    options.transport = Some(Arc::new(transport.clone()));
    let client = Arc::new(sentry::Client::from(options));
    sentry::Hub::main().bind_client(Some(Arc::clone(&client)));
    let hub = Arc::new(sentry::Hub::new(
        Some(client),
        Arc::new(sentry::Scope::default()),
    ));
    let out = fut.bind_hub(hub).await;
    (out, transport.fetch_and_clear_events())
}

/// The `source` tag of a captured event.
pub fn source<'a>(event: &'a sentry::protocol::Event<'static>) -> Option<&'a str> {
    event.tags.get("source").map(String::as_str)
}

/// How the janitor removes on `engine`: the strategy of the row of the
/// proven-engine table that admits it (`[ref:proven_engines]`), so a test
/// expects what the janitor does there, not what it does on Docker.
pub async fn removal_strategy(
    engine: &NestedEngine,
) -> anyhow::Result<cascade_cleanup::RemovalStrategy> {
    use cascade_cleanup::DockerImages;
    let facts = cascade_engine::EngineConnection::new(engine.docker.clone())
        .engine_facts()
        .await?;
    Ok(cascade_cleanup::Admission::of(&facts.identity, false).strategy())
}

/// The `cascade-janitor` binary that `cargo xtask safety` builds before the
/// suite: `target/<profile>/cascade-janitor`, beside this test's `deps/`.
pub fn janitor_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("cascade-janitor");
    assert!(
        binary.exists(),
        "{} is missing; run `cargo build -p cascade-janitor` (cargo xtask safety does)",
        binary.display()
    );
    binary
}

/// The `cascade-janitor` binary as a command for a test: Sentry off, and
/// killed if the test drops it.
pub fn janitor() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(janitor_binary());
    command.env_remove("SENTRY_DSN").kill_on_drop(true);
    command
}

/// A child's stderr, collected line by line as it comes.
#[derive(Debug)]
pub struct StderrLog {
    lines: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl StderrLog {
    /// Takes `child`'s stderr, which must be piped.
    pub fn collect(child: &mut tokio::process::Child) -> StderrLog {
        use tokio::io::AsyncBufReadExt;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        let sink = Arc::clone(&lines);
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        StderrLog { lines, reader }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn contains(&self, text: &str) -> bool {
        self.lines().iter().any(|l| l.contains(text))
    }

    /// Every line, once the child closed its stderr (it exited).
    pub async fn finish(self) -> Vec<String> {
        let StderrLog { lines, reader } = self;
        let _ = reader.await;
        lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Collects every scheduled pass's report.
#[derive(Debug, Clone, Default)]
pub struct Reports(Arc<Mutex<Vec<SweepReport>>>);

impl Reports {
    pub fn observer(&self) -> cascade_cleanup::ReportObserver {
        let reports = Arc::clone(&self.0);
        Arc::new(move |r: &SweepReport| reports.lock().expect("reports").push(r.clone()))
    }
    pub fn len(&self) -> usize {
        self.0.lock().expect("reports").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn all(&self) -> Vec<SweepReport> {
        self.0.lock().expect("reports").clone()
    }
    pub async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        wait_until(limit, &format!("{n} passes"), || async { self.len() >= n }).await
    }
}

/// Stops a loop a test runs with `cascade_cleanup::run_loop` on a task of
/// its own, as the loop's production owner (`cascade-embed`'s `Janitor`)
/// stops it: cancels its token, awaits the task up to `deadline`, aborts it
/// after that; how it ended.
pub async fn stop_loop(
    cancel: &CancellationToken,
    mut task: JoinHandle<LoopOutcome>,
    deadline: Duration,
) -> LoopOutcome {
    cancel.cancel();
    match tokio::time::timeout(deadline, &mut task).await {
        Ok(joined) => LoopOutcome::of_join(joined),
        Err(_) => {
            task.abort();
            LoopOutcome::of_join(task.await)
        }
    }
}

/// Polls `done` every 100 ms until it is true; fails after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
