//! Liveness of every registered loop, as `/healthz` reports it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Says whether an engine's loop task is still running; `cascade-embed`
/// passes a flag the loop's task holds up while it runs.
pub type AliveProbe = Arc<dyn Fn() -> bool + Send + Sync>;

/// Where the telemetry reads the time. Injected so tests move time by hand
/// instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time, for ages ("seconds since the last pass"); a wall-clock
    /// jump must not make a loop look stuck.
    fn now(&self) -> Instant;
    /// Wall time, for the `last_success_timestamp_seconds` gauge.
    fn wall(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// `/healthz`'s verdict and the JSON body it answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Every engine is healthy, and there is at least one.
    pub healthy: bool,
    pub stale_after_seconds: u64,
    /// In registration order.
    pub engines: Vec<EngineHealth>,
}

/// One registered engine loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineHealth {
    pub engine: String,
    pub healthy: bool,
    /// What the loop's liveness probe said.
    pub alive: bool,
    /// Whole seconds since the last pass ended, whatever its result; `null`
    /// before the first pass.
    pub seconds_since_last_pass: Option<u64>,
    /// Whole seconds since the last pass with result `success` ended.
    pub seconds_since_last_success: Option<u64>,
    /// Why it is unhealthy, for the operator reading the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassTimes {
    pub(crate) last_pass: Option<Instant>,
    pub(crate) last_success: Option<Instant>,
}

/// What the telemetry keeps per registered loop.
pub(crate) struct EngineEntry {
    /// The engine's address as logs, spans, metrics and Sentry name it (the
    /// `engine` label, and `engine` in `/healthz`).
    pub(crate) engine_label: String,
    pub(crate) alive: AliveProbe,
    pub(crate) registered: Instant,
    pub(crate) passes: Mutex<PassTimes>,
}

impl std::fmt::Debug for EngineEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineEntry")
            .field("engine_label", &self.engine_label)
            .field("registered", &self.registered)
            .field("passes", &self.passes)
            .finish_non_exhaustive()
    }
}

impl EngineEntry {
    pub(crate) fn record_pass(&self, at: Instant, success: bool) {
        let mut passes = self.passes.lock().unwrap_or_else(|p| p.into_inner());
        passes.last_pass = Some(at);
        if success {
            passes.last_success = Some(at);
        }
    }

    /// Healthy = the loop is alive and its last pass (before the first one:
    /// its registration) ended no longer than `stale_after` ago. Any result
    /// counts: a pass that failed still proves the loop is not stuck, and an
    /// unreachable engine is not something a restart would fix.
    pub(crate) fn check(&self, now: Instant, stale_after: Duration) -> EngineHealth {
        let passes = *self.passes.lock().unwrap_or_else(|p| p.into_inner());
        let alive = (self.alive)();
        let since = |t: Instant| now.saturating_duration_since(t);
        let since_pass = passes.last_pass.map(since);
        let since_success = passes.last_success.map(since);
        let problem = if !alive {
            Some("the sweep loop is not running".to_owned())
        } else {
            match since_pass {
                Some(age) if age > stale_after => Some(format!(
                    "no pass ended for {} s (limit {} s)",
                    age.as_secs(),
                    stale_after.as_secs()
                )),
                Some(_) => None,
                None => {
                    let age = since(self.registered);
                    (age > stale_after).then(|| {
                        format!(
                            "no pass ended since registration {} s ago (limit {} s)",
                            age.as_secs(),
                            stale_after.as_secs()
                        )
                    })
                }
            }
        };
        EngineHealth {
            engine: self.engine_label.clone(),
            healthy: problem.is_none(),
            alive,
            seconds_since_last_pass: since_pass.map(|d| d.as_secs()),
            seconds_since_last_success: since_success.map(|d| d.as_secs()),
            problem,
        }
    }
}
