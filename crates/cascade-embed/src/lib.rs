//! The janitor as a Rust process embeds it: one [`Janitor`] built from a
//! checked [`JanitorConfig`], started with the host's other work (the
//! cascade router starts it with its worker processor) and stopped at its
//! shutdown. An embedder depends on this crate alone: every type its API
//! uses is re-exported here.
//!
//! [`JanitorConfig::builder`] takes the engines ([`EngineAddress`]es, with
//! [`TlsFiles`] for a TLS engine) and refuses, at
//! [`build`](JanitorConfigBuilder::build), what the binary's command line
//! refuses: intervals and gaps under a second, plain TCP to an engine off
//! this host unless allowed, credentials in an address, and the rest (see
//! [`ConfigError`]). The binary builds its daemon's configuration through
//! the same builder, so the two cannot disagree.
//!
//! From the configuration the janitor builds one loop per engine: a lazily
//! connecting `cascade-engine` client (an engine that is down fails its
//! scans and is tried again each interval; it never holds up the others),
//! its sweep, its event follower, and its telemetry (metrics observer, panic
//! counter and liveness in one [`Telemetry`]). Nothing contacts an engine
//! before the loops run.
//!
//! The loops are tasks of one tokio `JoinSet` that the janitor owns, each
//! running `cascade-cleanup`'s `run_loop`:
//!
//! - a loop that ends without being asked (a bug: a loop only ends when
//!   stopped; or an engine no row of the proven-engine table admits, on
//!   which removal is refused: [`LoopOutcome::Refused`]) is logged at error
//!   at once, and [`Janitor::wait_for_failure`] resolves with it, so the
//!   owner can exit and be restarted;
//! - [`Janitor::stop`] cancels every loop at once (none starts new work while
//!   another is still finishing), awaits them together up to the stop
//!   deadline, aborts the rest, and returns every loop's [`LoopReport`]:
//!   clean, deadline exceeded, panicked, ended early or refused. None is
//!   thrown away;
//! - dropping the janitor aborts its loops: a loop never outlives its owner.
//!
//! Panics inside a pass, the observer or the event follower are caught by
//! the loop itself (`cascade-cleanup`): logged, sent to Sentry, counted in
//! `cascade_janitor_panics_total`, and the loop goes on.
//!
//! `examples/embed.rs` is the whole embedding in about 30 lines.

#![deny(missing_docs)]

mod config;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cascade_cleanup::{
    DanglingImageSweep, EventTrigger, LoopOptions, SweepConfig, panic_message, run_loop,
};
use cascade_engine::{EngineClient, EngineError};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::task::{Id, JoinSet};

pub use crate::config::{
    ConfigError, DEFAULT_STALE_INTERVALS, EngineConfig, JanitorConfig, JanitorConfigBuilder,
};
pub use cascade_cleanup::{
    Concurrency, DEFAULT_CALL_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_EVENT_DEBOUNCE,
    DEFAULT_EVENT_IDLE_LIMIT, DEFAULT_INTERVAL, DEFAULT_MIN_AGE, DEFAULT_MIN_GAP,
    DEFAULT_STOP_DEADLINE, DockerImages, EngineEvents, EventOptions, LoopOutcome, MAX_DURATION,
    MIN_GAP, MIN_INTERVAL, PanicObserver, PanicSite, ReportObserver, SweepReport,
};
pub use cascade_engine::{BadAddress, ClientCert, DEFAULT_SOCKET, EngineAddress, TlsFiles};
pub use cascade_metrics::{
    AliveProbe, Clock, EngineHealth, HealthReport, MetricsAddrError, Telemetry, bind_metrics_addr,
    serve,
};
pub use cascade_scope::{DEFAULT_LABEL, Label, LabelError, Scope, ScopeError};
pub use tokio_util::sync::CancellationToken;

/// What an embedder needs to sweep through its own engine client
/// ([`Janitor::with_clients`]): the traits a client implements, every type
/// their methods use, and `cascade-engine`'s own client.
pub mod clients {
    pub use async_trait::async_trait;
    pub use cascade_classify::Disposition;
    pub use cascade_cleanup::{
        DockerError, DockerImages, EngineEvent, EngineEvents, EngineFacts, EngineIdentity,
        ImageStore, Implementation, ListedImage, Release, RemovalAnswer,
    };
    pub use cascade_engine::{EngineClient, EngineError, SettingNames};
    pub use futures_util::stream::BoxStream;
}

/// What one engine's loop talks to. [`Janitor::new`] uses `cascade-engine`'s
/// `EngineClient` for both; tests and embedders with their own client use
/// [`Janitor::with_clients`].
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineClients {
    /// Lists, inspects, tags and removes images.
    pub images: Arc<dyn DockerImages>,
    /// The engine's event stream, for early passes.
    pub events: Arc<dyn EngineEvents>,
}

impl EngineClients {
    /// Separate clients for images and events.
    pub fn new(images: Arc<dyn DockerImages>, events: Arc<dyn EngineEvents>) -> EngineClients {
        EngineClients { images, events }
    }

    /// One client for both.
    pub fn of<C: DockerImages + EngineEvents>(client: Arc<C>) -> EngineClients {
        EngineClients {
            images: Arc::clone(&client) as Arc<dyn DockerImages>,
            events: client,
        }
    }
}

impl std::fmt::Debug for EngineClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClients").finish_non_exhaustive()
    }
}

/// Which loop a report is about: an engine's, or a job added with
/// [`Janitor::with_loop`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoopName {
    /// The loop that sweeps this engine.
    Engine(EngineAddress),
    /// Another periodic job, by the name it was added with.
    Job(String),
}

impl LoopName {
    /// The engine's address as written, or the job's name.
    pub fn as_str(&self) -> &str {
        match self {
            LoopName::Engine(address) => address.as_str(),
            LoopName::Job(name) => name,
        }
    }

    /// The engine, for an engine loop.
    pub fn engine(&self) -> Option<&EngineAddress> {
        match self {
            LoopName::Engine(address) => Some(address),
            LoopName::Job(_) => None,
        }
    }
}

impl std::fmt::Display for LoopName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One loop's name and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopReport {
    /// Which loop.
    pub name: LoopName,
    /// How it ended.
    pub outcome: LoopOutcome,
}

/// A loop's body: runs until the token is cancelled, or says why it
/// ended on its own.
type LoopBody = Arc<dyn Fn(CancellationToken) -> BoxFuture<'static, LoopOutcome> + Send + Sync>;

struct LoopSpec {
    name: LoopName,
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
    /// One loop per engine, each with a lazily connecting `cascade-engine`
    /// client. Contacts no engine; reads each engine's TLS files, and fails
    /// only when one cannot be used ([`ConfigError::Tls`]): everything else
    /// was checked when the configuration was built.
    pub fn new(config: JanitorConfig) -> Result<Janitor, ConfigError> {
        let timeout = config.call_timeout();
        Janitor::build(config, |index, engine| {
            let client = EngineClient::with_tls(engine.address(), engine.tls(), timeout).map_err(
                |error| ConfigError::Tls {
                    index,
                    address: engine.address().clone(),
                    why: match error {
                        EngineError::Tls { why, .. } => why,
                        other => other.to_string(),
                    },
                },
            )?;
            Ok(EngineClients::of(Arc::new(client)))
        })
    }

    /// Like [`Janitor::new`], with the clients `connect` makes for each
    /// engine (tests, or an embedder with its own client: see [`clients`]).
    pub fn with_clients<E>(
        config: JanitorConfig,
        mut connect: impl FnMut(&EngineConfig) -> Result<EngineClients, E>,
    ) -> Result<Janitor, E> {
        Janitor::build(config, |_, engine| connect(engine))
    }

    fn build<E>(
        config: JanitorConfig,
        mut connect: impl FnMut(usize, &EngineConfig) -> Result<EngineClients, E>,
    ) -> Result<Janitor, E> {
        let telemetry = Telemetry::new(config.stale_after());
        let mut janitor = Janitor {
            loops: Vec::new(),
            telemetry: Arc::clone(&telemetry),
            stop_deadline: config.stop_deadline(),
            running: None,
        };
        for (index, engine) in config.engines().iter().enumerate() {
            let clients = connect(index, engine)?;
            janitor.push_engine_loop(&config, engine.address(), clients);
        }
        Ok(janitor)
    }

    /// One engine's loop: its sweep, observed by the telemetry, whose
    /// liveness probe reads a flag the loop's task holds up while it runs
    /// (no reference cycle between the loop and its observer).
    fn push_engine_loop(
        &mut self,
        config: &JanitorConfig,
        address: &EngineAddress,
        clients: EngineClients,
    ) {
        let host = address.as_str();
        let sweep = Arc::new(DanglingImageSweep::new(
            clients.images,
            SweepConfig {
                scope: config.scope().clone(),
                min_age: config.min_age(),
                concurrency: config.concurrency(),
                call_timeout: config.call_timeout(),
                dry_run: false,
                // Free space around the removals only means something when
                // nothing else writes meanwhile: not true of a daemon whose
                // early passes follow the router's commits. It reports the
                // removed images' sizes (an upper bound).
                measure_reclaimed: false,
                engine_label: host.to_string(),
                allow_unproven_engine: config.allow_unproven_engine(),
            },
        ));
        let alive = Arc::new(AtomicBool::new(false));
        let probe = Arc::clone(&alive);
        let options = LoopOptions {
            interval: config.interval(),
            min_gap: config.min_gap(),
            observer: Some(
                self.telemetry
                    .engine(host, Arc::new(move || probe.load(Ordering::SeqCst))),
            ),
            events: config.events().map(|options| EventTrigger {
                source: clients.events,
                options,
            }),
            on_panic: Some(self.telemetry.panics(host)),
        };
        tracing::info!(
            engine = %host,
            interval = %humantime::format_duration(config.interval()),
            events = config.events().is_some(),
            scope = %config.scope(),
            "sweeping this engine"
        );
        self.loops.push(LoopSpec {
            name: LoopName::Engine(address.clone()),
            body: Arc::new(move |cancel| {
                run_loop(Arc::clone(&sweep), options.clone(), cancel).boxed()
            }),
            alive,
        });
    }

    /// Adds another periodic job (snapshot eviction, orphan containers):
    /// `body` runs until its token is cancelled, supervised like the engine
    /// loops. Its name ([`LoopName::Job`]) appears in logs and in `stop`'s
    /// reports; a body that returns before its token was cancelled ended
    /// early ([`LoopOutcome::EndedEarly`]).
    pub fn with_loop<F, Fut>(mut self, name: impl Into<String>, body: F) -> Janitor
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.loops.push(LoopSpec {
            name: LoopName::Job(name.into()),
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

    /// Metrics and health of every engine loop: serve it with [`serve`]
    /// (on a listener from [`bind_metrics_addr`]), or render it into the
    /// router's own /metrics.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The loops' names, in start order.
    pub fn loop_names(&self) -> Vec<&LoopName> {
        self.loops.iter().map(|l| &l.name).collect()
    }

    /// True between [`Janitor::start`] and [`Janitor::stop`].
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
                        tracing::error!(name = %name, panic = %message, "janitor loop panicked and ended");
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
                    name = %name,
                    %reason,
                    "removal refused on this engine; nothing was removed. Set `allow_unproven_engine` (JanitorConfigBuilder) to remove on it anyway"
                ),
                _ => tracing::error!(
                    name = %name,
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
            tracing::info!(name = %report.name, outcome = ?report.outcome, "janitor loop stopped");
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
