//! `metrics.rs`: every family, from the reports the observer is given.

use std::time::Duration;

use super::*;

#[test]
fn a_registered_engine_starts_at_zero() {
    let (t, _) = telemetry(HOUR);
    let _observe = t.engine(E1, always_alive());
    let text = t.render();
    for result in ["success", "partial", "scan_failed", "refused"] {
        let labels = [("engine", E1), ("result", result)];
        assert_eq!(v(&text, "cascade_janitor_sweeps_total", &labels), 0.0);
    }
    for kind in ["transient", "unexpected", "scan"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(v(&text, "cascade_janitor_errors_total", &labels), 0.0);
    }
    // Quiet dispositions are skips, never errors.
    for kind in ["in_use", "gone"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(value(&text, "cascade_janitor_errors_total", &labels), None);
    }
    let e = [("engine", E1)];
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 0.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 0.0);
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        0.0
    );
    // No success yet: no made-up 1970 timestamp, no made-up scope size.
    assert_eq!(
        value(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        None
    );
    assert_eq!(value(&text, "cascade_janitor_images_in_scope", &e), None);
}

#[test]
fn a_successful_pass_sets_every_family() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    clock.advance(Duration::from_secs(30));
    observe(&success_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| v1(&text, "cascade_janitor_sweeps_total", ("result", r));
    assert_eq!(sweeps("success"), 1.0);
    assert_eq!(sweeps("partial"), 0.0);
    assert_eq!(sweeps("scan_failed"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 2.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 350.0);
    let skipped = |r| v1(&text, "cascade_janitor_images_skipped_total", ("reason", r));
    assert_eq!(skipped("too_young"), 2.0);
    assert_eq!(skipped("in_use"), 1.0);
    assert_eq!(skipped("gone"), 1.0);
    assert_eq!(skipped("failed_verification"), 1.0);
    assert_eq!(
        value(
            &text,
            "cascade_janitor_images_skipped_total",
            &[("engine", E1), ("reason", "cancelled")]
        ),
        None
    );
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 7.0);
    assert_eq!(v(&text, "cascade_janitor_removal_window", &e), 4.0);
    assert_eq!(
        v(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        (WALL_BASE + 30) as f64
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        1.0
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_sum", &e),
        1.5
    );
    let bucket = |le| {
        v1(
            &text,
            "cascade_janitor_sweep_duration_seconds_bucket",
            ("le", le),
        )
    };
    assert_eq!(bucket("1.0"), 0.0);
    assert_eq!(bucket("2.5"), 1.0);
    assert_eq!(bucket("600.0"), 1.0);
    assert_eq!(bucket("+Inf"), 1.0);
    for kind in ["transient", "unexpected", "scan"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(v(&text, "cascade_janitor_errors_total", &labels), 0.0);
    }
}

#[test]
fn a_partial_pass_counts_errors_by_kind_and_is_not_a_success() {
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&partial_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| v1(&text, "cascade_janitor_sweeps_total", ("result", r));
    assert_eq!(sweeps("success"), 0.0);
    assert_eq!(sweeps("partial"), 1.0);
    let errors = |k| v1(&text, "cascade_janitor_errors_total", ("kind", k));
    assert_eq!(errors("transient"), 2.0);
    assert_eq!(errors("unexpected"), 1.0);
    assert_eq!(errors("scan"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 1.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 10.0);
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 4.0);
    assert_eq!(
        value(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        None
    );
    let bucket = |le| {
        v1(
            &text,
            "cascade_janitor_sweep_duration_seconds_bucket",
            ("le", le),
        )
    };
    assert_eq!(bucket("30.0"), 0.0);
    assert_eq!(bucket("60.0"), 1.0);
}

#[test]
fn a_failed_scan_counts_as_a_scan_error_and_keeps_the_last_scope_size() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(Duration::from_secs(600));
    observe(&scan_failed_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| v1(&text, "cascade_janitor_sweeps_total", ("result", r));
    assert_eq!(sweeps("success"), 1.0);
    assert_eq!(sweeps("scan_failed"), 1.0);
    let errors = |k| v1(&text, "cascade_janitor_errors_total", ("kind", k));
    assert_eq!(errors("scan"), 1.0);
    assert_eq!(errors("transient"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 7.0);
    // The success's time, not the failed pass's.
    assert_eq!(
        v(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        WALL_BASE as f64
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        2.0
    );
}

#[test]
fn passes_accumulate_and_engines_stay_apart() {
    let (t, clock) = telemetry(HOUR);
    let one = t.engine(E1, always_alive());
    let two = t.engine(E2, always_alive());
    one(&success_report());
    clock.advance(Duration::from_secs(60));
    one(&success_report());
    two(&partial_report());
    let text = t.render();
    let removed = |e| {
        v(
            &text,
            "cascade_janitor_images_removed_total",
            &[("engine", e)],
        )
    };
    assert_eq!(removed(E1), 4.0);
    assert_eq!(removed(E2), 1.0);
    let reclaimed = |e| {
        v(
            &text,
            "cascade_janitor_reclaimed_bytes_total",
            &[("engine", e)],
        )
    };
    assert_eq!(reclaimed(E1), 700.0);
    assert_eq!(reclaimed(E2), 10.0);
    let too_young = v(
        &text,
        "cascade_janitor_images_skipped_total",
        &[("engine", E1), ("reason", "too_young")],
    );
    assert_eq!(too_young, 4.0);
    assert_eq!(
        v(
            &text,
            "cascade_janitor_last_success_timestamp_seconds",
            &[("engine", E1)]
        ),
        (WALL_BASE + 60) as f64
    );
    assert_eq!(
        value(
            &text,
            "cascade_janitor_last_success_timestamp_seconds",
            &[("engine", E2)]
        ),
        None
    );
    let errors = |e| {
        v(
            &text,
            "cascade_janitor_errors_total",
            &[("engine", e), ("kind", "transient")],
        )
    };
    assert_eq!(errors(E1), 0.0);
    assert_eq!(errors(E2), 2.0);
}

#[test]
fn every_family_has_help_and_type() {
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    let text = t.render();
    let families = [
        ("sweeps", "counter"),
        ("images_removed", "counter"),
        ("reclaimed_bytes", "counter"),
        ("images_skipped", "counter"),
        ("errors", "counter"),
        ("sweep_duration_seconds", "histogram"),
        ("last_success_timestamp_seconds", "gauge"),
        ("images_in_scope", "gauge"),
        ("removal_window", "gauge"),
    ];
    for (family, kind) in families {
        let name = format!("cascade_janitor_{family}");
        assert!(
            text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
            "no TYPE line for {name}:\n{text}"
        );
        let help = format!("# HELP {name} ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len() + 10),
            "no HELP text for {name}:\n{text}"
        );
    }
    // Every sample belongs to one of these families and carries `engine`.
    for s in samples(&text) {
        assert!(s.name.starts_with("cascade_janitor_"), "{}", s.name);
        assert_eq!(s.labels.get("engine").map(String::as_str), Some(E1));
    }
    assert_eq!(text.lines().last(), Some("# EOF"));
}

#[test]
fn the_removal_window_is_the_last_removing_pass_mean() {
    use cascade_cleanup::pace::{PaceMode, RemovalPace, WindowMean};
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    let e = [("engine", E1)];
    observe(&SweepReport {
        removal_pace: None,
        ..success_report()
    });
    assert_eq!(
        value(&t.render(), "cascade_janitor_removal_window", &e),
        None,
        "absent until a pass started a removal"
    );
    let mut window_mean = WindowMean::default();
    for w in [1, 2, 3, 3] {
        window_mean.add(w);
    }
    observe(&SweepReport {
        removal_pace: Some(RemovalPace {
            mode: PaceMode::Adaptive,
            window_max: 3,
            window_mean,
            pauses: 0,
            paused: Duration::ZERO,
        }),
        ..success_report()
    });
    assert_eq!(v(&t.render(), "cascade_janitor_removal_window", &e), 2.25);
    // A pass that removed nothing says nothing about the window: kept.
    observe(&SweepReport::default());
    assert_eq!(v(&t.render(), "cascade_janitor_removal_window", &e), 2.25);
}

fn summary(version: &str, proven: bool) -> cascade_cleanup::EngineSummary {
    cascade_cleanup::EngineSummary {
        implementation: "podman".into(),
        version: version.into(),
        api_version: Some("1.41".into()),
        store: "containers-storage".into(),
        driver: "vfs".into(),
        proven: proven.then(|| "Podman 5.4 to 5.8, containers-storage store".into()),
        removal: proven.then(|| "removal_name".into()),
    }
}

#[test]
fn engine_info_names_the_engine_and_follows_an_upgrade() {
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&SweepReport {
        engine: Some(summary("5.4.2", true)),
        ..SweepReport::default()
    });
    let info = |text: &str, version: &str, proven: &str| {
        value(
            text,
            "cascade_janitor_engine_info",
            &[
                ("engine", E1),
                ("implementation", "podman"),
                ("version", version),
                ("store", "containers-storage"),
                ("driver", "vfs"),
                ("proven", proven),
            ],
        )
    };
    let text = t.render();
    assert_eq!(info(&text, "5.4.2", "true"), Some(1.0));
    // The engine was upgraded to a release no row admits: refused.
    observe(&SweepReport {
        engine: Some(summary("6.1.1", false)),
        refused: Some("Podman 6.1.1 ... is not an engine the janitor has been proven on".into()),
        ..SweepReport::default()
    });
    let text = t.render();
    assert_eq!(info(&text, "5.4.2", "true"), None, "the old series is gone");
    assert_eq!(info(&text, "6.1.1", "false"), Some(1.0));
    let sweeps = |r| v1(&text, "cascade_janitor_sweeps_total", ("result", r));
    assert_eq!((sweeps("success"), sweeps("refused")), (1.0, 1.0));
    assert_eq!(
        value(&text, "cascade_janitor_images_in_scope", &[("engine", E1)]),
        Some(0.0),
        "the refused pass listed nothing and set nothing"
    );
}
