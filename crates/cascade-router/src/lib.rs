//! The janitor as a Rust router embeds it: one [`Janitor`] built from a
//! plain [`JanitorConfig`], started with the router's worker processor and
//! stopped at its shutdown.
//!
//! From the configuration the janitor builds one loop per engine: a lazily
//! connecting `cascade-engine` client (an engine that is down fails its
//! scans and is tried again each interval; it never holds up the others),
//! its sweep, its event follower, and its telemetry (metrics observer, panic
//! counter and liveness in one [`Telemetry`]). Nothing contacts an engine
//! before the loops run.
//!
//! The loops are tasks of one tokio `JoinSet` that the janitor owns:
//!
//! - a loop that ends without being asked (a bug: a loop only ends when
//!   stopped; or an engine no row of the proven-engine table admits, on
//!   which removal is refused: [`LoopOutcome::Refused`]) is logged at error
//!   at once, and [`Janitor::wait_for_failure`] resolves with it, so the
//!   owner can exit and be restarted;
//! - [`Janitor::stop`] cancels every loop at once (none starts new work while
//!   another is still finishing), awaits them together up to the stop
//!   deadline, aborts the rest, and returns every loop's [`LoopReport`]:
//!   clean, deadline exceeded, panicked or ended early. None is thrown away;
//! - dropping the janitor aborts its loops: a loop never outlives its owner.
//!
//! Panics inside a pass, the observer or the event follower are caught by
//! the loop itself (`cascade-cleanup`): logged, sent to Sentry, counted in
//! `cascade_janitor_panics_total`, and the loop goes on.
//!
//! `examples/embed.rs` is the whole embedding in about 30 lines.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cascade_cleanup::{
    Concurrency, DEFAULT_CALL_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_INTERVAL, DEFAULT_MIN_AGE,
    DEFAULT_MIN_GAP, DEFAULT_STOP_DEADLINE, DanglingImageSweep, DockerImages, EngineEvents,
    EventOptions, EventTrigger, LoopOptions, SweepConfig, panic_message, run_loop,
};
use cascade_engine::{EngineAddress, EngineClient, EngineError};
use cascade_metrics::Telemetry;
use cascade_scope::Scope;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

pub use cascade_cleanup::LoopOutcome;
pub use cascade_engine::{DEFAULT_SOCKET, TlsFiles};

/// One engine to sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The engine's address: `unix:///path`, `tcp://HOST:PORT` or
    /// `http://HOST:PORT`. It names the engine in logs and metrics.
    pub host: String,
    /// The PEM files of a TLS engine (`tcp://` only); `None`: plain.
    pub tls: Option<TlsFiles>,
}

impl EngineConfig {
    /// A unix socket or plain TCP engine.
    pub fn new(host: impl Into<String>) -> EngineConfig {
        EngineConfig {
            host: host.into(),
            tls: None,
        }
    }
}

/// Everything the janitor needs, as plain values. [`JanitorConfig::new`]
/// fills in the defaults the binary documents; change any field after.
#[derive(Debug, Clone)]
pub struct JanitorConfig {
    /// One loop each, in this order.
    pub engines: Vec<EngineConfig>,
    /// Which images may be removed `[ref:scope_invariant]`.
    pub scope: Scope,
    /// Images younger than this are kept.
    pub min_age: Duration,
    /// Removals in flight at once, per engine: `Concurrency::AUTO` (the
    /// default) keeps a window that follows the engine's latency, up to the
    /// maximum of its image store, and pauses when the engine is slow, so
    /// the router's own engine calls keep their latency during a sweep;
    /// `Concurrency::Fixed(n)` keeps exactly `n` in flight.
    pub concurrency: Concurrency,
    /// Deadline of each Docker call.
    pub call_timeout: Duration,
    /// Time between the starts of two scheduled passes.
    pub interval: Duration,
    /// No pass starts sooner than this after the previous one started.
    pub min_gap: Duration,
    /// Early passes on the engine's events; `None`: the interval only.
    pub events: Option<EventOptions>,
    /// How long `stop` waits for in-flight passes before abandoning them.
    pub stop_deadline: Duration,
    /// `/healthz` (the telemetry's health) fails for an engine whose last
    /// pass ended longer ago than this.
    pub stale_after: Duration,
    /// Remove on an engine that no row of the proven-engine table admits
    /// (`cascade_cleanup::PROVEN_ENGINES`), with the most careful strategy
    /// of its implementation. Off (the default): on such an engine a loop's
    /// first pass removes nothing and the loop ends with
    /// [`LoopOutcome::Refused`].
    pub allow_unproven_engine: bool,
}

impl JanitorConfig {
    /// The defaults: the `cascade.managed=true` scope, a pass every 30
    /// minutes and on events, images older than an hour.
    pub fn new<H: Into<String>>(hosts: impl IntoIterator<Item = H>) -> JanitorConfig {
        JanitorConfig {
            engines: hosts.into_iter().map(EngineConfig::new).collect(),
            scope: Scope::default(),
            min_age: DEFAULT_MIN_AGE,
            concurrency: DEFAULT_CONCURRENCY,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            min_gap: DEFAULT_MIN_GAP,
            events: Some(EventOptions::default()),
            stop_deadline: DEFAULT_STOP_DEADLINE,
            stale_after: DEFAULT_INTERVAL * 3,
            allow_unproven_engine: false,
        }
    }
}

/// What one engine's loop talks to. [`Janitor::new`] uses `cascade-engine`'s
/// [`EngineClient`] for both; tests and embedders with their own client use
/// [`Janitor::with_clients`].
#[derive(Clone)]
pub struct EngineClients {
    pub images: Arc<dyn DockerImages>,
    pub events: Arc<dyn EngineEvents>,
}

impl std::fmt::Debug for EngineClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClients").finish_non_exhaustive()
    }
}

/// One loop's name (the engine's address for an engine loop) and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopReport {
    pub name: String,
    pub outcome: LoopOutcome,
}

/// A loop's body: runs until the token is cancelled, or says why it
/// ended on its own.
type LoopBody = Arc<dyn Fn(CancellationToken) -> BoxFuture<'static, LoopOutcome> + Send + Sync>;

struct LoopSpec {
    name: String,
    body: LoopBody,
    /// Read by the telemetry's liveness probe; true while the task runs.
    alive: Arc<AtomicBool>,
}

struct Running {
    cancel: CancellationToken,
    /// Each task says how it ended (a panic in it is caught and logged).
    tasks: JoinSet<LoopOutcome>,
    /// Task id → index in `loops`.
    index: Vec<(Id, usize)>,
    /// Loops that ended before `stop`, kept for its result.
    ended: Vec<(usize, LoopOutcome)>,
}

/// Every engine's loop, started and stopped as one unit.
pub struct Janitor {
    loops: Vec<LoopSpec>,
    telemetry: Arc<Telemetry>,
    stop_deadline: Duration,
    running: Option<Running>,
}

impl std::fmt::Debug for Janitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.loops.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("Janitor")
            .field("loops", &names)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl Janitor {
    /// One loop per engine, each with a lazily connecting [`EngineClient`].
    /// Fails only on a malformed address or unusable TLS files; contacts no
    /// engine.
    pub fn new(config: JanitorConfig) -> Result<Janitor, EngineError> {
        let timeout = config.call_timeout;
        Janitor::with_clients(config, |engine| {
            let address =
                EngineAddress::parse(&engine.host).map_err(|why| EngineError::BadAddress {
                    host: why.address().to_string(),
                    why,
                })?;
            let client = Arc::new(EngineClient::with_tls(
                &address,
                engine.tls.as_ref(),
                timeout,
            )?);
            Ok(EngineClients {
                images: Arc::clone(&client) as Arc<dyn DockerImages>,
                events: client,
            })
        })
    }

    /// Like [`Janitor::new`], with the clients `connect` makes for each engine.
    pub fn with_clients<E>(
        config: JanitorConfig,
        mut connect: impl FnMut(&EngineConfig) -> Result<EngineClients, E>,
    ) -> Result<Janitor, E> {
        let telemetry = Telemetry::new(config.stale_after);
        let mut janitor = Janitor {
            loops: Vec::new(),
            telemetry: Arc::clone(&telemetry),
            stop_deadline: config.stop_deadline,
            running: None,
        };
        for engine in &config.engines {
            let clients = connect(engine)?;
            janitor.push_engine_loop(&config, &engine.host, clients);
        }
        Ok(janitor)
    }

    /// One engine's loop: its sweep, observed by the telemetry, whose
    /// liveness probe reads a flag the loop's task holds up while it runs
    /// (no reference cycle between the loop and its observer).
    fn push_engine_loop(&mut self, config: &JanitorConfig, host: &str, clients: EngineClients) {
        let sweep = Arc::new(DanglingImageSweep::new(
            clients.images,
            SweepConfig {
                scope: config.scope.clone(),
                min_age: config.min_age,
                concurrency: config.concurrency,
                call_timeout: config.call_timeout,
                dry_run: false,
                // Free space around the removals only means something when
                // nothing else writes meanwhile: not true of a daemon whose
                // early passes follow the router's commits. It reports the
                // removed images' sizes (an upper bound).
                measure_reclaimed: false,
                engine: host.to_string(),
                allow_unproven_engine: config.allow_unproven_engine,
            },
        ));
        let alive = Arc::new(AtomicBool::new(false));
        let probe = Arc::clone(&alive);
        let options = LoopOptions {
            interval: config.interval,
            min_gap: config.min_gap,
            observer: Some(
                self.telemetry
                    .engine(host, Arc::new(move || probe.load(Ordering::SeqCst))),
            ),
            events: config.events.map(|options| EventTrigger {
                source: clients.events,
                options,
            }),
            on_panic: Some(self.telemetry.panics(host)),
        };
        tracing::info!(
            engine = %host,
            interval = %humantime::format_duration(config.interval),
            events = config.events.is_some(),
            scope = %config.scope,
            "sweeping this engine"
        );
        self.loops.push(LoopSpec {
            name: host.to_string(),
            body: Arc::new(move |cancel| {
                run_loop(Arc::clone(&sweep), options.clone(), cancel).boxed()
            }),
            alive,
        });
    }

    /// Adds another periodic job (snapshot eviction, orphan containers):
    /// `body` runs until its token is cancelled, supervised like the engine
    /// loops. Its name appears in logs and in `stop`'s reports.
    pub fn with_loop<F, Fut>(mut self, name: impl Into<String>, body: F) -> Janitor
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.loops.push(LoopSpec {
            name: name.into(),
            body: Arc::new(move |cancel: CancellationToken| {
                body(cancel.clone())
                    .map(move |()| {
                        if cancel.is_cancelled() {
                            LoopOutcome::Clean
                        } else {
                            LoopOutcome::EndedEarly
                        }
                    })
                    .boxed()
            }),
            alive: Arc::new(AtomicBool::new(false)),
        });
        self
    }

    /// Metrics and health of every engine loop: serve it with
    /// `cascade_metrics::serve`, or render it into the router's own /metrics.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The loops' names, in start order.
    pub fn loop_names(&self) -> Vec<&str> {
        self.loops.iter().map(|l| l.name.as_str()).collect()
    }

    pub fn is_started(&self) -> bool {
        self.running.is_some()
    }

    /// Starts every loop on the current tokio runtime (call it from within
    /// one), in order. Returns false (and warns) when already started: never
    /// a second set of timers.
    pub fn start(&mut self) -> bool {
        if self.running.is_some() {
            tracing::warn!("janitor already started; not starting its loops again");
            return false;
        }
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut index = Vec::new();
        for (i, spec) in self.loops.iter().enumerate() {
            let body = (spec.body)(cancel.child_token());
            let name = spec.name.clone();
            spec.alive.store(true, Ordering::SeqCst);
            // Moved into the task, so the flag falls when the task ends,
            // whichever way: return, panic, or an abort before its first poll.
            let alive = AliveGuard(Arc::clone(&spec.alive));
            let handle = tasks.spawn(async move {
                let _alive = alive;
                match AssertUnwindSafe(body).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        let message = panic_message(&*panic);
                        tracing::error!(name, panic = %message, "janitor loop panicked and ended");
                        LoopOutcome::Panicked(message)
                    }
                }
            });
            index.push((handle.id(), i));
        }
        self.running = Some(Running {
            cancel,
            tasks,
            index,
            ended: Vec::new(),
        });
        true
    }

    /// Resolves when a loop ends without being asked (logged at error), with
    /// its report; pending while every loop runs, or when not started.
    /// Cancel-safe: use it in a `select!` beside the shutdown signal.
    pub async fn wait_for_failure(&mut self) -> LoopReport {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            let Some(joined) = running.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (id, outcome) = outcome(joined);
            let Some(i) = running.slot(id) else { continue };
            let name = self.loops[i].name.clone();
            match &outcome {
                LoopOutcome::Refused(reason) => tracing::error!(
                    name,
                    %reason,
                    "removal refused on this engine; nothing was removed. Set `allow_unproven_engine` in JanitorConfig to remove on it anyway"
                ),
                _ => tracing::error!(
                    name,
                    ?outcome,
                    "a janitor loop ended without being asked to"
                ),
            }
            running.ended.push((i, outcome.clone()));
            return LoopReport { name, outcome };
        }
    }

    /// Stops every loop and returns each one's report, in start order: all
    /// are cancelled at once, then awaited together up to the stop deadline
    /// (so shutdown takes as long as the slowest loop, not the sum); the rest
    /// are aborted and reported as `DeadlineExceeded`. A loop that had ended
    /// before keeps its outcome. Empty when not started; the janitor can be
    /// started again.
    pub async fn stop(&mut self) -> Vec<LoopReport> {
        let Some(mut running) = self.running.take() else {
            return Vec::new();
        };
        running.cancel.cancel();
        let deadline = tokio::time::Instant::now() + self.stop_deadline;
        let mut outcomes = std::mem::take(&mut running.ended);
        let mut abandoned = false;
        loop {
            let next = if abandoned {
                running.tasks.join_next_with_id().await
            } else {
                match tokio::time::timeout_at(deadline, running.tasks.join_next_with_id()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!(
                            deadline = %humantime::format_duration(self.stop_deadline),
                            "janitor loops did not stop in time; abandoning them"
                        );
                        running.tasks.abort_all();
                        abandoned = true;
                        continue;
                    }
                }
            };
            let Some(joined) = next else { break };
            let (id, outcome) = outcome(joined);
            if let Some(i) = running.slot(id) {
                outcomes.push((i, outcome));
            }
        }
        outcomes.sort_by_key(|(i, _)| *i);
        let reports: Vec<LoopReport> = outcomes
            .into_iter()
            .map(|(i, outcome)| LoopReport {
                name: self.loops[i].name.clone(),
                outcome,
            })
            .collect();
        for report in &reports {
            tracing::info!(name = report.name, outcome = ?report.outcome, "janitor loop stopped");
        }
        reports
    }
}

/// How a joined loop task ended. Only `stop` aborts a task, after the
/// deadline: `DeadlineExceeded`.
fn outcome(joined: Result<(Id, LoopOutcome), tokio::task::JoinError>) -> (Id, LoopOutcome) {
    match joined {
        Ok((id, outcome)) => (id, outcome),
        Err(e) => (e.id(), LoopOutcome::of_join(Err(e))),
    }
}

impl Running {
    fn slot(&self, id: Id) -> Option<usize> {
        self.index.iter().find(|(t, _)| *t == id).map(|(_, i)| *i)
    }
}

struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
