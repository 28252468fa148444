//! The periodic loop and its owned lifecycle: `start` returns a handle,
//! `stop` cancels the timer, lets the in-flight pass reach a safe point and
//! awaits it, bounded by a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::sweep::{DanglingImageSweep, SweepReport};

/// The original loop's period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// How long `stop` waits for an in-flight pass before abandoning it.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Called with every pass's report (metrics, health, tests).
pub type ReportObserver = Arc<dyn Fn(&SweepReport) + Send + Sync>;

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
    /// Starts a loop that runs `sweep` now and then every `interval`. A pass
    /// that overruns the interval swallows the ticks it missed: passes never
    /// overlap and never run back to back to catch up.
    pub fn start(
        sweep: Arc<DanglingImageSweep>,
        interval: Duration,
        observer: Option<ReportObserver>,
    ) -> LoopHandle {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now(), interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    _ = ticker.tick() => {
                        let report = sweep.run(&token).await;
                        if let Some(observe) = &observer {
                            observe(&report);
                        }
                    }
                }
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
}

/// The dangling-image cleanup as a service with the original's contract:
/// `start` twice warns and keeps one timer, `stop` when not started is a
/// no-op, start/stop cycles work.
pub struct DanglingImageCleanup {
    sweep: Arc<DanglingImageSweep>,
    interval: Duration,
    stop_deadline: Duration,
    observer: Option<ReportObserver>,
    running: Mutex<Option<LoopHandle>>,
}

impl std::fmt::Debug for DanglingImageCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DanglingImageCleanup")
            .field("interval", &self.interval)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl DanglingImageCleanup {
    pub fn new(sweep: DanglingImageSweep, interval: Duration, stop_deadline: Duration) -> Self {
        DanglingImageCleanup {
            sweep: Arc::new(sweep),
            interval,
            stop_deadline,
            observer: None,
            running: Mutex::new(None),
        }
    }

    /// Calls `observer` with the report of every scheduled pass.
    pub fn with_observer(mut self, observer: ReportObserver) -> Self {
        self.observer = Some(observer);
        self
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
            self.interval,
            self.observer.clone(),
        ));
        tracing::info!(
            interval = %humantime::format_duration(self.interval),
            scope = %self.sweep.config().scope,
            "dangling image cleanup started"
        );
        true
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
