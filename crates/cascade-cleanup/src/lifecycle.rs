//! The periodic loop and its owned lifecycle: `start` returns a handle,
//! `stop` cancels the timer, lets the in-flight pass reach a safe point and
//! awaits it, bounded by a deadline.
//!
//! A panic in a pass, in the observer or in the event follower is caught
//! where it happens: logged at error, sent to Sentry
//! (`source=dangling_image_cleanup_panic`), handed to the loop's
//! [`PanicObserver`] (metrics), and the loop goes on with its next pass. One
//! bad image or one buggy observer must not leave an engine unswept behind a
//! process that looks alive.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::events::{EngineEvents, EventOptions};
use crate::sweep::{DanglingImageSweep, SweepReport};

/// The original loop's period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// How long `stop` waits for an in-flight pass before abandoning it.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Called with every pass's report (metrics, health, tests).
pub type ReportObserver = Arc<dyn Fn(&SweepReport) + Send + Sync>;

/// Where in a loop a panic was caught: the `where` of the panic metric and
/// of the Sentry event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PanicSite {
    /// A sweep pass.
    Sweep,
    /// The loop's [`ReportObserver`].
    Observer,
    /// The engine event follower.
    Events,
}

impl PanicSite {
    pub const ALL: [PanicSite; 3] = [PanicSite::Sweep, PanicSite::Observer, PanicSite::Events];

    pub fn as_str(self) -> &'static str {
        match self {
            PanicSite::Sweep => "sweep",
            PanicSite::Observer => "observer",
            PanicSite::Events => "events",
        }
    }
}

/// Told of every panic the loop caught and survived, after it was logged and
/// sent to Sentry (metrics count them). It runs on the loop's task and is
/// not guarded: it must not panic itself.
pub type PanicObserver = Arc<dyn Fn(PanicSite) + Send + Sync>;

/// Default floor between two passes, whatever asks for them.
pub const DEFAULT_MIN_GAP: Duration = Duration::from_secs(60);

/// Early sweeps from the engine's events.
#[derive(Clone)]
pub struct EventTrigger {
    pub source: Arc<dyn EngineEvents>,
    pub options: EventOptions,
}

impl std::fmt::Debug for EventTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTrigger")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// When a loop sweeps, and who hears about it.
#[derive(Clone)]
pub struct LoopOptions {
    /// Time between the starts of two scheduled passes.
    pub interval: Duration,
    /// No pass starts sooner than this after the previous one started.
    pub min_gap: Duration,
    /// Called with every pass's report; a panic in it is caught.
    pub observer: Option<ReportObserver>,
    /// Early passes when the engine untags or commits labelled images.
    pub events: Option<EventTrigger>,
    /// Told of every panic caught in the loop.
    pub on_panic: Option<PanicObserver>,
}

impl std::fmt::Debug for LoopOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopOptions")
            .field("interval", &self.interval)
            .field("min_gap", &self.min_gap)
            .field("observer", &self.observer.is_some())
            .field("events", &self.events)
            .field("on_panic", &self.on_panic.is_some())
            .finish()
    }
}

impl LoopOptions {
    /// Every `interval`, no events, no observer.
    pub fn every(interval: Duration) -> LoopOptions {
        LoopOptions {
            interval,
            min_gap: DEFAULT_MIN_GAP.min(interval),
            observer: None,
            events: None,
            on_panic: None,
        }
    }
}

/// How a loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The loop was idle or its pass reached a safe point in time.
    Clean,
    /// The pass did not finish within the deadline and was abandoned.
    /// Removals already sent may still complete in the engine; nothing that
    /// was not verified can be removed by abandoning. `[ref:scope_invariant]`
    DeadlineExceeded,
    /// The loop's task itself panicked (with this message), outside the
    /// pass and observer, which are guarded: a bug in the loop, not a bad
    /// pass.
    Panicked(String),
}

impl StopOutcome {
    /// The outcome of an awaited loop task.
    pub fn of_join(joined: Result<(), tokio::task::JoinError>) -> StopOutcome {
        match joined {
            Ok(()) => StopOutcome::Clean,
            Err(e) if e.is_panic() => StopOutcome::Panicked(panic_message(&*e.into_panic())),
            // Only an abort cancels a loop task, and only after its deadline.
            Err(_) => StopOutcome::DeadlineExceeded,
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a format).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// A caught panic: logged at error, one Sentry event, then the owner's
/// observer.
fn caught(
    engine: &str,
    site: PanicSite,
    payload: &(dyn Any + Send),
    on_panic: Option<&PanicObserver>,
) {
    let message = panic_message(payload);
    tracing::error!(
        engine,
        r#where = site.as_str(),
        panic = %message,
        "dangling image cleanup caught a panic; the loop goes on with its next pass"
    );
    crate::sentry_report::panicked(engine, site, &message);
    if let Some(on_panic) = on_panic {
        on_panic(site);
    }
}

thread_local! {
    /// How many guarded polls (a pass, the follower) or observer calls are
    /// on this thread's stack right now.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True inside a pass, an observer call or the event follower of a loop,
/// where a panic is caught and reported by the loop itself. For a process
/// panic hook (Sentry's panic integration): such a panic already has its own
/// Sentry event (`source=dangling_image_cleanup_panic`), so the hook's
/// would be a duplicate in an issue of its own.
pub fn panic_is_guarded() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Marks this thread guarded until dropped; dropped during unwinding too,
/// after the panic hook has run.
struct GuardedScope;

impl GuardedScope {
    fn enter() -> GuardedScope {
        GUARDED.with(|g| g.set(g.get() + 1));
        GuardedScope
    }
}

impl Drop for GuardedScope {
    fn drop(&mut self) {
        GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
    }
}

/// `future` with every poll guarded, and its panic caught.
async fn guarded<T>(
    future: impl std::future::Future<Output = T>,
) -> Result<T, Box<dyn Any + Send>> {
    let mut future = std::pin::pin!(future);
    let polled = std::future::poll_fn(move |cx| {
        let _scope = GuardedScope::enter();
        future.as_mut().poll(cx)
    });
    AssertUnwindSafe(polled).catch_unwind().await
}

/// Why [`run_loop`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopEnd {
    /// Its token was cancelled: the owner asked it to stop.
    Cancelled,
    /// The engine is not one the janitor has been proven on, and removal on
    /// it is not allowed: the pass removed nothing, and the loop ends so
    /// that its owner learns it at once (the reason, one line).
    /// `[ref:proven_engines]`
    Refused(String),
}

/// The loop as a future, for an owner that supervises its own tasks (such
/// as `cascade-router`'s `JoinSet`): it runs `sweep` now, then `interval`
/// after each pass started, and early when the engine's events ask for it,
/// until `cancel` fires. A pass that overruns the interval swallows the
/// ticks it missed: passes never overlap and never run back to back to catch
/// up. No pass starts less than `min_gap` after the previous one started.
/// A pass refused on an unproven engine ends the loop, after the observer
/// saw its report.
///
/// Dropping the future (an abort after the stop deadline) ends the event
/// follower too.
pub async fn run_loop(
    sweep: Arc<DanglingImageSweep>,
    options: LoopOptions,
    cancel: CancellationToken,
) -> LoopEnd {
    let engine = sweep.config().engine.clone();
    let trigger = Arc::new(Notify::new());
    let _follower = options.events.clone().map(|events| {
        let own_sweep = Arc::clone(&sweep);
        AbortOnDropHandle::new(tokio::spawn(follow_guarded(
            events,
            sweep.config().scope.label_filters(),
            Arc::clone(&trigger),
            cancel.child_token(),
            engine.clone(),
            options.on_panic.clone(),
            Arc::new(move |event| own_sweep.caused(event)),
        )))
    });
    let mut due = Instant::now();
    let mut last_start: Option<Instant> = None;
    let end = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break LoopEnd::Cancelled,
            _ = tokio::time::sleep_until(due) => {}
            _ = trigger.notified() => {
                let floor = last_start.map(|s| s + options.min_gap);
                if let Some(floor) = floor.filter(|f| *f > Instant::now()) {
                    tracing::debug!("early sweep requested; waiting for the minimum gap");
                    due = due.min(floor);
                    continue;
                }
                tracing::debug!("early sweep requested by engine events");
            }
        }
        let started = Instant::now();
        last_start = Some(started);
        // The pass runs on this task (so abandoning it at the deadline
        // aborts it), guarded so a panic ends the pass, not the loop.
        match guarded(sweep.run(&cancel)).await {
            Ok(report) => {
                if let Some(observe) = &options.observer
                    && let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        let _scope = GuardedScope::enter();
                        observe(&report)
                    }))
                {
                    caught(
                        &engine,
                        PanicSite::Observer,
                        &*panic,
                        options.on_panic.as_ref(),
                    );
                }
                if let Some(reason) = report.refused.filter(|_| !report.dry_run) {
                    break LoopEnd::Refused(reason);
                }
            }
            Err(panic) => caught(
                &engine,
                PanicSite::Sweep,
                &*panic,
                options.on_panic.as_ref(),
            ),
        }
        due = started + options.interval;
        if due <= Instant::now() {
            due = Instant::now() + options.interval;
        }
    };
    tracing::debug!(?end, "dangling image cleanup loop ended");
    end
}

/// The event follower, restarted after a panic (with the stream's backoff,
/// so a follower that panics at once does not spin) until `cancel` fires.
async fn follow_guarded(
    events: EventTrigger,
    labels: Vec<String>,
    trigger: Arc<Notify>,
    cancel: CancellationToken,
    engine: String,
    on_panic: Option<PanicObserver>,
    own: crate::events::OwnEvents,
) {
    let mut backoff = events.options.min_backoff;
    loop {
        let follow = crate::events::follow(
            Arc::clone(&events.source),
            labels.clone(),
            events.options,
            Arc::clone(&trigger),
            cancel.clone(),
            Arc::clone(&own),
        );
        match guarded(follow).await {
            // `follow` returns only when cancelled.
            Ok(()) => return,
            Err(panic) => caught(&engine, PanicSite::Events, &*panic, on_panic.as_ref()),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(events.options.max_backoff);
    }
}

/// A running loop. Dropping it without `stop` cancels the loop too (the task
/// notices the dropped token guard), so a loop never outlives its owner.
#[derive(Debug)]
pub struct LoopHandle {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    _guard: tokio_util::sync::DropGuard,
}

impl LoopHandle {
    /// Spawns [`run_loop`] on its own task.
    pub fn start(sweep: Arc<DanglingImageSweep>, options: LoopOptions) -> LoopHandle {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            if let LoopEnd::Refused(reason) = run_loop(sweep, options, token).await {
                tracing::error!(%reason, "dangling image cleanup loop ended: removal refused");
            }
        });
        LoopHandle {
            _guard: cancel.clone().drop_guard(),
            cancel,
            task,
        }
    }

    /// Cancels the timer, waits up to `deadline` for an in-flight pass to
    /// reach a safe point, then abandons it.
    pub async fn stop(mut self, deadline: Duration) -> StopOutcome {
        self.cancel.cancel();
        match tokio::time::timeout(deadline, &mut self.task).await {
            Ok(joined) => {
                let outcome = StopOutcome::of_join(joined);
                if let StopOutcome::Panicked(message) = &outcome {
                    tracing::error!(panic = %message, "dangling image cleanup loop had panicked");
                }
                outcome
            }
            Err(_) => {
                tracing::warn!(
                    deadline = %humantime::format_duration(deadline),
                    "dangling image cleanup pass did not stop in time; abandoning it"
                );
                self.task.abort();
                let _ = (&mut self.task).await;
                StopOutcome::DeadlineExceeded
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the loop to start nothing new (no pass, no removal); `stop`
    /// then waits for it.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// The dangling-image cleanup as a service with the original's contract:
/// `start` twice warns and keeps one timer, `stop` when not started is a
/// no-op, start/stop cycles work.
pub struct DanglingImageCleanup {
    sweep: Arc<DanglingImageSweep>,
    options: LoopOptions,
    stop_deadline: Duration,
    running: Mutex<Option<LoopHandle>>,
}

impl std::fmt::Debug for DanglingImageCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DanglingImageCleanup")
            .field("options", &self.options)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl DanglingImageCleanup {
    pub fn new(sweep: DanglingImageSweep, interval: Duration, stop_deadline: Duration) -> Self {
        DanglingImageCleanup {
            sweep: Arc::new(sweep),
            options: LoopOptions::every(interval),
            stop_deadline,
            running: Mutex::new(None),
        }
    }

    /// Calls `observer` with the report of every scheduled pass.
    pub fn with_observer(mut self, observer: ReportObserver) -> Self {
        self.options.observer = Some(observer);
        self
    }

    /// Tells `on_panic` of every panic the loop caught and survived.
    pub fn with_panic_observer(mut self, on_panic: PanicObserver) -> Self {
        self.options.on_panic = Some(on_panic);
        self
    }

    /// No pass starts sooner than `min_gap` after the previous one started
    /// (default: one minute, or the interval if shorter).
    pub fn with_min_gap(mut self, min_gap: Duration) -> Self {
        self.options.min_gap = min_gap;
        self
    }

    /// Also sweeps shortly after the engine untags or commits a labelled
    /// image, following `source`'s event stream while the loop runs.
    pub fn with_events(mut self, source: Arc<dyn EngineEvents>, options: EventOptions) -> Self {
        self.options.events = Some(EventTrigger { source, options });
        self
    }

    pub fn sweep(&self) -> &DanglingImageSweep {
        &self.sweep
    }

    /// Starts the loop; returns false (and warns) when it already runs.
    /// Must be called within a tokio runtime.
    pub fn start(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::warn!("dangling image cleanup already started; not starting a second timer");
            return false;
        }
        *running = Some(LoopHandle::start(
            Arc::clone(&self.sweep),
            self.options.clone(),
        ));
        tracing::info!(
            interval = %humantime::format_duration(self.options.interval),
            min_gap = %humantime::format_duration(self.options.min_gap),
            events = self.options.events.is_some(),
            scope = %self.sweep.config().scope,
            "dangling image cleanup started"
        );
        true
    }

    /// Asks a running loop to start nothing new, without waiting for it.
    pub fn cancel(&self) {
        if let Some(handle) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            handle.cancel();
        }
    }

    /// Stops the loop; `None` when it was not running.
    pub async fn stop(&self) -> Option<StopOutcome> {
        let handle = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let handle = handle?;
        let outcome = handle.stop(self.stop_deadline).await;
        tracing::info!(?outcome, "dangling image cleanup stopped");
        Some(outcome)
    }

    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// One pass now, outside the schedule; waits for an in-flight pass first.
    pub async fn run_now(&self) -> SweepReport {
        self.sweep.run(&CancellationToken::new()).await
    }
}
