//! A sweep report for people (text) and programs (JSON), as `prune` prints
//! it.
//!
//! The JSON document is a contract: its JSON Schema,
//! `docs/report.schema.json`, is generated from these types and checked by
//! a test. It lives in a library, not in the binary, so that a router that
//! runs a one-off sweep in-process (`DanglingImageSweep::run`) can hand out
//! the very document `prune --output json` prints. The progress bar stays in
//! the binary: it is terminal UI.

use std::io::Write;
use std::time::Duration;

use bytesize::ByteSize;
use cascade_cleanup::pace::PaceMode;
use cascade_cleanup::{ReclaimedSource, SweepConfig, SweepReport};
use schemars::JsonSchema;
use serde::Serialize;

/// The `--output json` document of `prune`: the report plus the
/// configuration it ran with. Its JSON Schema is `docs/report.schema.json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "cascade-janitor prune report")]
struct Document<'a> {
    /// The labels every removed image carried (`key=value`), all required.
    scope: Vec<String>,
    /// Images younger than this were kept.
    min_age_seconds: u64,
    #[serde(flatten)]
    report: &'a SweepReport,
}

/// The JSON Schema of the `--output json` document (`docs/report.schema.json`).
pub fn schema() -> String {
    let schema = schemars::schema_for!(Document<'static>);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

fn document<'a>(report: &'a SweepReport, config: &SweepConfig) -> Document<'a> {
    Document {
        scope: config.scope.label_filters(),
        min_age_seconds: config.min_age.as_secs(),
        report,
    }
}

/// The document for one engine (`prune` with a single `--docker-host`).
pub fn json(report: &SweepReport, config: &SweepConfig) -> String {
    serde_json::to_string_pretty(&document(report, config))
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// One engine's part of the several-engine document: the single-engine
/// document plus `docker_host` and `error` (set when the engine could not be
/// reached; then the report fields are absent).
#[derive(Debug, Serialize)]
struct EngineDocument<'a> {
    docker_host: &'a str,
    error: Option<&'a str>,
    #[serde(flatten)]
    document: Option<Document<'a>>,
}

/// What one engine gave `prune`: a report, or why it could not be reached.
#[derive(Debug)]
pub enum EngineOutcome {
    Report(Box<SweepReport>),
    Unreachable(String),
}

/// `prune --output json` with several engines: `{"engines": [...]}`, one
/// entry per `--docker-host`, in order.
pub fn json_engines(engines: &[(String, EngineOutcome)], config: &SweepConfig) -> String {
    #[derive(Serialize)]
    struct Engines<'a> {
        engines: Vec<EngineDocument<'a>>,
    }
    let doc = Engines {
        engines: engines
            .iter()
            .map(|(host, outcome)| match outcome {
                EngineOutcome::Report(report) => EngineDocument {
                    docker_host: host,
                    error: None,
                    document: Some(document(report, config)),
                },
                EngineOutcome::Unreachable(error) => EngineDocument {
                    docker_host: host,
                    error: Some(error),
                    document: None,
                },
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The header of engine number `index`'s section when several engines are
/// reported one after another (a blank line before all but the first).
pub fn engine_header(index: usize, host: &str) -> String {
    let gap = if index == 0 { "" } else { "\n" };
    format!("{gap}== engine {host} ==")
}

fn age(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// The text report of one pass (`prune --output text`).
pub fn text(
    out: &mut impl Write,
    report: &SweepReport,
    config: &SweepConfig,
) -> std::io::Result<()> {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let listed = if report.dry_run {
        &report.would_remove
    } else {
        &report.removed
    };
    writeln!(
        out,
        "scope: dangling images with {} (min age {})",
        config.scope,
        age(config.min_age.as_secs())
    )?;
    if let Some(engine) = &report.engine {
        let removal = match (&engine.proven, &engine.removal) {
            (Some(row), Some(removal)) => format!("proven ({row}), removal by {removal}"),
            (None, Some(removal)) => format!("NOT proven, removal allowed anyway, by {removal}"),
            _ => "NOT proven: removal refused".to_string(),
        };
        writeln!(
            out,
            "engine: {} {} ({} store, {}); {removal}",
            engine.implementation, engine.version, engine.store, engine.driver
        )?;
    }
    if let Some(error) = &report.scan_error {
        writeln!(out, "scan failed: {error}")?;
        return Ok(());
    }
    if let Some(reason) = &report.refused {
        if !report.dry_run {
            writeln!(out, "refused: {reason}; nothing was removed")?;
            return Ok(());
        }
        writeln!(
            out,
            "note: {reason}; a real pass would remove nothing. This is the plan on a proven engine."
        )?;
    }
    for image in listed {
        writeln!(
            out,
            "{verb:<12} {}  {:>10}  age {}",
            short(&image.id),
            ByteSize(image.size_bytes).to_string(),
            age(image.age_seconds)
        )?;
    }
    for skipped in &report.skipped {
        let detail = match &skipped.reason {
            cascade_cleanup::SkipReason::FailedVerification { detail } => format!(" ({detail})"),
            cascade_cleanup::SkipReason::TooYoung => format!(
                " (age {} < {})",
                age(skipped.image.age_seconds),
                age(config.min_age.as_secs())
            ),
            cascade_cleanup::SkipReason::Changed { detail } => format!(" ({detail})"),
            cascade_cleanup::SkipReason::WouldRemoveParent { parent, detail } => {
                format!(
                    " (the engine would also delete its parent {}: {detail})",
                    short(parent)
                )
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<12} {}  {}{detail}",
            "keep",
            short(&skipped.image.id),
            skipped.reason.as_str()
        )?;
    }
    for failed in &report.failed {
        writeln!(
            out,
            "{:<12} {}  {}: {}",
            "failed",
            short(&failed.image.id),
            failed.kind,
            failed.message
        )?;
    }
    let bytes: u64 = listed.iter().map(|i| i.size_bytes).sum();
    let skipped: Vec<String> = report
        .skipped_by_reason()
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let failed: Vec<String> = report
        .failed_by_kind()
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(
        out,
        "summary: listed {}, {verb} {} ({}), kept {}{}, failed {}{} in {:.2}s",
        report.listed,
        listed.len(),
        ByteSize(bytes),
        report.skipped.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" [{}]", skipped.join(", "))
        },
        report.failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" [{}]", failed.join(", "))
        },
        report.duration.as_secs_f64(),
    )?;
    if let Some(pace) = report.removal_pace.filter(|_| !report.dry_run) {
        let mode = match pace.mode {
            PaceMode::Fixed => "fixed",
            PaceMode::Adaptive => "adaptive",
            PaceMode::Bursts => "bursts",
        };
        let pauses = if pace.pauses == 0 {
            String::new()
        } else {
            format!(
                "; {} pauses ({:.2}s) for the engine's other clients",
                pace.pauses,
                pace.paused.as_secs_f64()
            )
        };
        writeln!(
            out,
            "removals in flight: {mode}, at most {}, mean {:.1}{pauses}",
            pace.window_max,
            pace.window_mean.get()
        )?;
    }
    if !report.dry_run && !report.removed.is_empty() {
        let prefix = match report.reclaimed_source {
            ReclaimedSource::Filesystem => "",
            ReclaimedSource::ImageSizes => "at most ",
            ReclaimedSource::ContainerdImageSizes => "about ",
        };
        writeln!(
            out,
            "space reclaimed: {prefix}{} ({})",
            ByteSize(report.reclaimed_bytes),
            report.reclaimed_source.describe()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cascade_cleanup::pace::{PaceMode, RemovalPace, WindowMean};
    use cascade_cleanup::{SweepConfig, SweepReport};

    fn paced_report() -> SweepReport {
        let mut window_mean = WindowMean::default();
        for w in [1, 2, 2, 3] {
            window_mean.add(w);
        }
        SweepReport {
            removal_pace: Some(RemovalPace {
                mode: PaceMode::Adaptive,
                window_max: 3,
                window_mean,
                pauses: 2,
                paused: Duration::from_millis(1500),
            }),
            ..SweepReport::default()
        }
    }

    #[test]
    fn the_removal_pace_is_in_the_json_and_the_text() {
        let config = SweepConfig::default();
        let json: serde_json::Value =
            serde_json::from_str(&super::json(&paced_report(), &config)).expect("json");
        assert_eq!(
            json["removal_pace"],
            serde_json::json!({
                "mode": "adaptive",
                "window_max": 3,
                "window_mean": 2.0,
                "pauses": 2,
                "paused_seconds": 1.5
            })
        );
        let mut text = Vec::new();
        super::text(&mut text, &paced_report(), &config).expect("text");
        let text = String::from_utf8(text).expect("utf8");
        assert!(
            text.contains("removals in flight: adaptive, at most 3, mean 2.0; 2 pauses (1.50s) for the engine's other clients"),
            "{text}"
        );
        let none = SweepReport::default();
        let json: serde_json::Value =
            serde_json::from_str(&super::json(&none, &config)).expect("json");
        assert!(json["removal_pace"].is_null());
    }

    /// `docs/report.schema.json` is generated from the types; this fails when
    /// it is stale. `UPDATE_SCHEMA=1 cargo test -p cascade-report` rewrites it.
    #[test]
    fn the_documented_schema_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json");
        let current = super::schema();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &current).expect("write the schema");
        }
        let documented = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            documented == current,
            "docs/report.schema.json is stale; run UPDATE_SCHEMA=1 cargo test -p cascade-report"
        );
    }
}
