//! Sweep reports as Prometheus metrics, and a health verdict, over HTTP.
//!
//! The daemon (`cascade-janitor run --metrics-addr ADDR`) sweeps one or more
//! engines in loops that nobody watches. This crate turns the
//! [`SweepReport`] of every pass into metrics an operator can alert on, and
//! answers `/healthz` for a supervisor that restarts a stuck process.
//!
//! - [`Telemetry`] holds the metric families and the health state. Register
//!   each engine loop with [`Telemetry::engine`]; it returns the
//!   [`ReportObserver`] to put in that loop's `LoopOptions::observer`.
//! - [`serve`] answers `GET /metrics` (OpenMetrics text, rendered by
//!   `prometheus-client`) and `GET /healthz` (200 or 503 with a JSON body)
//!   until its cancellation token fires.
//! - [`bind_metrics_addr`] turns the address (parsed by its owner: the
//!   binary's `cascade-config` parses `--metrics-addr`) into a listener, with
//!   a one-line error that names the address and the fix.
//!
//! Every series carries an `engine` label (the Docker host URL), because one
//! process may sweep several engines. Metric names (all prefixed
//! `cascade_janitor_`): `sweeps_total{result}`, `images_removed_total`,
//! `reclaimed_bytes_total`, `images_skipped_total{reason}`,
//! `errors_total{kind}`, `sweep_duration_seconds` (histogram),
//! `last_success_timestamp_seconds`, `images_in_scope`, `removal_window`,
//! `panics_total{where}`.
//!
//! This crate only observes: it never talks to Docker and never decides what
//! is removed.
//!
//! # Wiring
//!
//! `cascade-embed`'s `Janitor` does this for every engine; by hand, for one
//! `cascade_cleanup::run_loop`, the liveness probe can be a flag the loop's
//! task holds up while it runs:
//!
//! ```ignore
//! let telemetry = Telemetry::new(interval * stale_intervals);
//! let observer = telemetry.engine(docker_host_url, Arc::new(move || alive.load(SeqCst)));
//! let options = LoopOptions {
//!     observer: Some(observer),
//!     on_panic: Some(telemetry.panics(docker_host_url)),
//!     ..LoopOptions::every(interval)
//! };
//! let task = tokio::spawn(run_loop(sweep, options, cancel.clone()));
//! let listener = bind_metrics_addr(metrics_addr).await?;
//! let server = tokio::spawn(serve(listener, Arc::clone(&telemetry), shutdown.clone()));
//! ```

mod health;
mod metrics;
mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascade_cleanup::{PanicObserver, ReportObserver, SweepReport};

pub use health::{AliveProbe, Clock, EngineHealth, HealthReport, SystemClock};
pub use metrics::{DURATION_BUCKETS, METRIC_PREFIX, SCAN_ERROR_KIND, SweepResult};
pub use server::{MetricsAddrError, OPENMETRICS_CONTENT_TYPE, bind_metrics_addr, router, serve};

use health::{EngineEntry, PassTimes};
use metrics::SweepMetrics;

/// Metrics and health of every engine loop in this process.
#[derive(Debug)]
pub struct Telemetry {
    metrics: SweepMetrics,
    engines: Mutex<Vec<Arc<EngineEntry>>>,
    stale_after: Duration,
    clock: Arc<dyn Clock>,
}

impl Telemetry {
    /// `stale_after` is how long an engine may go without a completed pass
    /// before `/healthz` fails: a few intervals (the binary: interval ×
    /// `--stale-intervals`; `cascade-embed`: `JanitorConfig::stale_after`).
    pub fn new(stale_after: Duration) -> Arc<Telemetry> {
        Telemetry::with_clock(stale_after, Arc::new(SystemClock))
    }

    /// Like [`Telemetry::new`], reading time from `clock` (tests).
    pub fn with_clock(stale_after: Duration, clock: Arc<dyn Clock>) -> Arc<Telemetry> {
        Arc::new(Telemetry {
            metrics: SweepMetrics::new(),
            engines: Mutex::new(Vec::new()),
            stale_after,
            clock,
        })
    }

    /// Registers the loop that sweeps `engine` (the Docker host URL; it
    /// becomes the `engine` label) and returns the observer to pass to that
    /// loop. `alive` is asked on every `/healthz` whether the loop still runs.
    ///
    /// Registering the same name twice keeps both entries for health (each
    /// loop must be alive) and adds both loops' passes to the same series.
    pub fn engine(
        self: &Arc<Self>,
        engine: impl Into<String>,
        alive: AliveProbe,
    ) -> ReportObserver {
        let engine = engine.into();
        self.metrics.register_engine(&engine);
        let entry = Arc::new(EngineEntry {
            engine_label: engine,
            alive,
            registered: self.clock.now(),
            passes: Mutex::new(PassTimes::default()),
        });
        self.engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&entry));
        let telemetry = Arc::clone(self);
        Arc::new(move |report: &SweepReport| telemetry.observe(&entry, report))
    }

    /// The panic observer of the loop that sweeps `engine` (registered with
    /// [`Telemetry::engine`]): counts `panics_total{engine, where}`.
    pub fn panics(self: &Arc<Self>, engine: impl Into<String>) -> PanicObserver {
        let engine = engine.into();
        let telemetry = Arc::clone(self);
        Arc::new(move |site| telemetry.metrics.record_panic(&engine, site))
    }

    /// Runs on the loop's task after every pass: cheap, never panics.
    fn observe(&self, entry: &EngineEntry, report: &SweepReport) {
        self.metrics
            .record(&entry.engine_label, report, self.clock.wall());
        entry.record_pass(
            self.clock.now(),
            SweepResult::of(report) == SweepResult::Success,
        );
    }

    /// The `/metrics` page (OpenMetrics text, ending in `# EOF`).
    pub fn render(&self) -> String {
        self.metrics.render()
    }

    /// The `/healthz` verdict. With no engine registered it is unhealthy: a
    /// process that sweeps nothing is not doing its job.
    pub fn health(&self) -> HealthReport {
        // Copy the list out so a probe never runs under our lock.
        let entries: Vec<Arc<EngineEntry>> = self
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = self.clock.now();
        let engines: Vec<EngineHealth> = entries
            .iter()
            .map(|e| e.check(now, self.stale_after))
            .collect();
        HealthReport {
            healthy: !engines.is_empty() && engines.iter().all(|e| e.healthy),
            stale_after_seconds: self.stale_after.as_secs(),
            engines,
        }
    }

    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }
}

#[cfg(test)]
mod tests;
