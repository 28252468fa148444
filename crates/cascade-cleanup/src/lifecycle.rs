//! The periodic loop and its owned lifecycle: `start` returns a handle,
//! `stop` cancels the timer, lets the in-flight pass reach a safe point and
//! awaits it, bounded by a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::events::{EngineEvents, EventOptions};
use crate::sweep::{DanglingImageSweep, SweepReport};

/// The original loop's period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// How long `stop` waits for an in-flight pass before abandoning it.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Called with every pass's report (metrics, health, tests).
pub type ReportObserver = Arc<dyn Fn(&SweepReport) + Send + Sync>;

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
    /// Called with every pass's report.
    pub observer: Option<ReportObserver>,
    /// Early passes when the engine untags or commits labelled images.
    pub events: Option<EventTrigger>,
}

impl std::fmt::Debug for LoopOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopOptions")
            .field("interval", &self.interval)
            .field("min_gap", &self.min_gap)
            .field("observer", &self.observer.is_some())
            .field("events", &self.events)
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
        }
    }
}

/// How a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The loop was idle or its pass reached a safe point in time.
    Clean,
    /// The pass did not finish within the deadline and was abandoned.
    /// Removals already sent may still complete in the engine; nothing that
    /// was not verified can be removed by abandoning. `[ref:scope_invariant]`
    DeadlineExceeded,
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
    /// Starts a loop that runs `sweep` now, then `interval` after each pass
    /// started, and early when the engine's events ask for it. A pass that
    /// overruns the interval swallows the ticks it missed: passes never
    /// overlap and never run back to back to catch up. No pass starts less
    /// than `min_gap` after the previous one started.
    pub fn start(sweep: Arc<DanglingImageSweep>, options: LoopOptions) -> LoopHandle {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let trigger = Arc::new(Notify::new());
        let follower = options.events.clone().map(|events| {
            tokio::spawn(crate::events::follow(
                events.source,
                sweep.config().scope.label_filters(),
                events.options,
                Arc::clone(&trigger),
                token.child_token(),
            ))
        });
        let task = tokio::spawn(async move {
            let mut due = Instant::now();
            let mut last_start: Option<Instant> = None;
            loop {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
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
                let report = sweep.run(&token).await;
                if let Some(observe) = &options.observer {
                    observe(&report);
                }
                due = started + options.interval;
                if due <= Instant::now() {
                    due = Instant::now() + options.interval;
                }
            }
            if let Some(follower) = follower {
                follower.abort();
                let _ = follower.await;
            }
            tracing::debug!("dangling image cleanup loop ended");
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
            Ok(_) => StopOutcome::Clean,
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
