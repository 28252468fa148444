//! The Prometheus metric families and how one `SweepReport` moves them.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use cascade_classify::Disposition;
use cascade_cleanup::{PanicSite, SweepReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Every metric name starts with this (`cascade_janitor_sweeps_total`, ...).
pub const METRIC_PREFIX: &str = "cascade_janitor";

/// Upper bounds of the `sweep_duration_seconds` buckets: an empty scan takes
/// ~10 ms, listing 10,000 images ~0.6 s, removing them ~5–10 s, and a pass
/// that keeps hitting `--timeout` can take minutes.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The `kind` of `errors_total` for a pass whose scan (listing images or
/// containers) failed; removal failures use `Disposition::as_str()`.
pub const SCAN_ERROR_KIND: &str = "scan";

/// How one pass ended, the `result` label of `sweeps_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SweepResult {
    /// The scan worked and no removal failed (in use and gone are skips, not failures).
    Success,
    /// The scan worked but at least one removal failed.
    Partial,
    /// Listing images or containers failed; nothing was removed.
    ScanFailed,
    /// The engine is not one the janitor has been proven on; nothing was
    /// removed (`engine_info{proven="false"}` says which it is).
    Refused,
}

impl SweepResult {
    pub const ALL: [SweepResult; 4] = [
        SweepResult::Success,
        SweepResult::Partial,
        SweepResult::ScanFailed,
        SweepResult::Refused,
    ];

    pub fn of(report: &SweepReport) -> SweepResult {
        if report.scan_error.is_some() {
            SweepResult::ScanFailed
        } else if report.refused.is_some() && !report.dry_run {
            SweepResult::Refused
        } else if report.has_failures() {
            SweepResult::Partial
        } else {
            SweepResult::Success
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SweepResult::Success => "success",
            SweepResult::Partial => "partial",
            SweepResult::ScanFailed => "scan_failed",
            SweepResult::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabels {
    engine: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    engine: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    engine: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    engine: String,
    kind: &'static str,
}

/// Which engine answers an engine address, as the last pass identified it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    engine: String,
    implementation: String,
    version: String,
    store: String,
    driver: String,
    proven: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PanicLabels {
    engine: String,
    r#where: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The registry and its families. Families are handles (`Arc` inside), so the
/// registry is never written after `new` and rendering needs no lock.
#[derive(Debug)]
pub(crate) struct SweepMetrics {
    registry: Registry,
    sweeps: Family<ResultLabels, Counter>,
    removed: Family<EngineLabels, Counter>,
    reclaimed: Family<EngineLabels, Counter>,
    skipped: Family<ReasonLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    duration: Family<EngineLabels, Histogram, fn() -> Histogram>,
    last_success: Family<EngineLabels, Gauge<f64, AtomicU64>>,
    in_scope: Family<EngineLabels, Gauge>,
    removal_window: Family<EngineLabels, Gauge<f64, AtomicU64>>,
    panics: Family<PanicLabels, Counter>,
    engine_info: Family<InfoLabels, Gauge>,
    /// The `engine_info` series of each engine, to drop when it changes.
    info_of: std::sync::Mutex<std::collections::HashMap<String, InfoLabels>>,
}

impl SweepMetrics {
    pub(crate) fn new() -> SweepMetrics {
        let mut registry = Registry::with_prefix(METRIC_PREFIX);
        let sweeps = Family::<ResultLabels, Counter>::default();
        let removed = Family::<EngineLabels, Counter>::default();
        let reclaimed = Family::<EngineLabels, Counter>::default();
        let skipped = Family::<ReasonLabels, Counter>::default();
        let errors = Family::<KindLabels, Counter>::default();
        let duration: Family<EngineLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let last_success = Family::<EngineLabels, Gauge<f64, AtomicU64>>::default();
        let in_scope = Family::<EngineLabels, Gauge>::default();
        let removal_window = Family::<EngineLabels, Gauge<f64, AtomicU64>>::default();
        let panics = Family::<PanicLabels, Counter>::default();
        let engine_info = Family::<InfoLabels, Gauge>::default();
        // prometheus-client appends the unit and `_total` itself:
        // "sweeps" → cascade_janitor_sweeps_total.
        registry.register(
            "sweeps",
            "Completed sweep passes by result: success (no removal failed), partial (some removals failed), scan_failed (listing images or containers failed, nothing removed), refused (the engine is not one the janitor has been proven on, nothing removed)",
            sweeps.clone(),
        );
        registry.register("images_removed", "Dangling images removed", removed.clone());
        registry.register_with_unit(
            "reclaimed",
            "Sum of the engine's Size of the removed images; layers shared with other images count in each, so this is an upper bound on the space freed",
            Unit::Bytes,
            reclaimed.clone(),
        );
        registry.register(
            "images_skipped",
            "Listed images kept, by reason (too_young, in_use, gone, cancelled, failed_verification: outside the scope despite the engine's filter, changed: tagged again between the listing and its removal, would_remove_parent: the engine would also delete a parent that is not removable)",
            skipped.clone(),
        );
        registry.register(
            "errors",
            "Failures by kind: transient or unexpected for a failed removal, scan for a pass whose listing failed",
            errors.clone(),
        );
        registry.register_with_unit(
            "sweep_duration",
            "Wall time of one sweep pass",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time at which the last successful pass (result success) ended; absent until the first one",
            Unit::Seconds,
            last_success.clone(),
        );
        registry.register(
            "images_in_scope",
            "Images the engine listed for the scope's filters at the last successful scan",
            in_scope.clone(),
        );
        registry.register(
            "removal_window",
            "Removals kept in flight at once, averaged over the last pass that removed anything: the adaptive window (--concurrency auto) falls when the engine's latency rises, so the engine's other clients keep theirs; a fixed --concurrency N reads N",
            removal_window.clone(),
        );
        registry.register(
            "engine_info",
            "1 for the engine each address answered with at its last identified pass: implementation (docker, podman), version, store (classic, containerd, containers-storage), driver, and proven (whether a row of the proven-engine table admits it; a false one is refused for removal)",
            engine_info.clone(),
        );
        registry.register(
            "panics",
            "Panics a loop caught and survived, by where: sweep (a pass), observer (the report observer), events (the event follower); each is also a Sentry event",
            panics.clone(),
        );
        SweepMetrics {
            registry,
            sweeps,
            removed,
            reclaimed,
            skipped,
            errors,
            duration,
            last_success,
            in_scope,
            removal_window,
            panics,
            engine_info,
            info_of: std::sync::Mutex::default(),
        }
    }

    /// Creates the series of `engine` at zero, so a rate over the first pass
    /// is right and a dashboard shows 0 rather than "no data". Skip reasons
    /// appear with their first image: the set of reasons may grow.
    pub(crate) fn register_engine(&self, engine: &str) {
        let labels = EngineLabels {
            engine: engine.to_owned(),
        };
        // `get_or_create` returns a read guard; creating is all we want here.
        for result in SweepResult::ALL {
            let _ = self.sweeps.get_or_create(&ResultLabels {
                engine: engine.to_owned(),
                result: result.as_str(),
            });
        }
        let kinds = Disposition::ALL
            .into_iter()
            .filter(|d| d.is_failure())
            .map(Disposition::as_str)
            .chain([SCAN_ERROR_KIND]);
        for kind in kinds {
            let _ = self.errors.get_or_create(&KindLabels {
                engine: engine.to_owned(),
                kind,
            });
        }
        for site in PanicSite::ALL {
            let _ = self.panics.get_or_create(&PanicLabels {
                engine: engine.to_owned(),
                r#where: site.as_str(),
            });
        }
        let _ = self.removed.get_or_create(&labels);
        let _ = self.reclaimed.get_or_create(&labels);
        let _ = self.duration.get_or_create(&labels);
    }

    /// Adds one pass of `engine`, which ended at wall time `ended`.
    pub(crate) fn record(&self, engine: &str, report: &SweepReport, ended: SystemTime) {
        let labels = EngineLabels {
            engine: engine.to_owned(),
        };
        let result = SweepResult::of(report);
        self.sweeps
            .get_or_create(&ResultLabels {
                engine: engine.to_owned(),
                result: result.as_str(),
            })
            .inc();
        self.duration
            .get_or_create(&labels)
            .observe(report.duration.as_secs_f64());
        if let Some(identity) = &report.engine {
            let info = InfoLabels {
                engine: engine.to_owned(),
                implementation: identity.implementation.clone(),
                version: identity.version.clone(),
                store: identity.store.clone(),
                driver: identity.driver.clone(),
                proven: if identity.proven.is_some() {
                    "true"
                } else {
                    "false"
                },
            };
            let mut info_of = self.info_of.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(before) = info_of.insert(engine.to_owned(), info.clone())
                && before != info
            {
                self.engine_info.remove(&before);
            }
            self.engine_info.get_or_create(&info).set(1);
        }
        if report.refused.is_some() && !report.dry_run {
            return;
        }
        if report.scan_error.is_some() {
            // `listed` is 0 then, which says nothing about the engine: keep
            // the last scan's figure.
            self.errors
                .get_or_create(&KindLabels {
                    engine: engine.to_owned(),
                    kind: SCAN_ERROR_KIND,
                })
                .inc();
            return;
        }
        self.in_scope
            .get_or_create(&labels)
            .set(i64::try_from(report.listed).unwrap_or(i64::MAX));
        self.removed
            .get_or_create(&labels)
            .inc_by(report.removed.len() as u64);
        self.reclaimed
            .get_or_create(&labels)
            .inc_by(report.reclaimed_bytes);
        if let Some(pace) = &report.removal_pace {
            self.removal_window
                .get_or_create(&labels)
                .set(pace.window_mean.get());
        }
        for (reason, count) in report.skipped_by_reason() {
            self.skipped
                .get_or_create(&ReasonLabels {
                    engine: engine.to_owned(),
                    reason,
                })
                .inc_by(count as u64);
        }
        for (kind, count) in report.failed_by_kind() {
            self.errors
                .get_or_create(&KindLabels {
                    engine: engine.to_owned(),
                    kind: kind.as_str(),
                })
                .inc_by(count as u64);
        }
        if result == SweepResult::Success {
            let unix = ended
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_success.get_or_create(&labels).set(unix);
        }
    }

    /// Counts one panic a loop of `engine` caught at `site`.
    pub(crate) fn record_panic(&self, engine: &str, site: PanicSite) {
        self.panics
            .get_or_create(&PanicLabels {
                engine: engine.to_owned(),
                r#where: site.as_str(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every family.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in
        // the encoder, and a partial page is still better than a panic.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}
