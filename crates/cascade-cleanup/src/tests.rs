use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascade_scope::{Label, Scope};
use sentry::protocol::{Event, Level};
use tokio_util::sync::CancellationToken;

use crate::fake::{FakeDocker, image, ours};
use crate::*;

fn config(min_age: Duration) -> SweepConfig {
    SweepConfig {
        min_age,
        ..SweepConfig::default()
    }
}

fn sweep(fake: &Arc<FakeDocker>, config: SweepConfig) -> DanglingImageSweep {
    DanglingImageSweep::new(Arc::clone(fake) as Arc<dyn DockerImages>, config)
}

/// Runs `f` on a paused current-thread runtime inside a Sentry test hub and
/// returns its output with every event captured.
fn with_sentry<F: Future>(f: impl FnOnce() -> F) -> (F::Output, Vec<Event<'static>>) {
    let mut out = None;
    let events = sentry::test::with_captured_events(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        out = Some(rt.block_on(f()));
    });
    (out.expect("ran"), events)
}

/// Captures every log line written while `f` runs on this thread.
fn with_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
    (out, text)
}

fn ids(images: &[ImageRef]) -> Vec<String> {
    let mut v: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    v.sort();
    v
}

#[test]
fn lists_with_exactly_the_original_filters() {
    let fake = Arc::new(FakeDocker::default());
    let (report, events) = with_sentry(|| async {
        sweep(&fake, SweepConfig::default())
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(
        report,
        SweepReport {
            duration: report.duration,
            ..SweepReport::default()
        }
    );
    assert!(events.is_empty());
    let expected = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec!["cascade.managed=true".to_string()],
        ),
    ]);
    assert_eq!(fake.edit(|s| s.filters_seen.clone()), vec![expected]);
}

#[test]
fn verifies_every_candidate_even_when_the_engine_ignores_the_filter() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:ours"),
        image("sha256:mysql", &[], &["mysql:8.0"], 3600),
        image("sha256:unlabelled", &[], &["<none>:<none>"], 3600),
        image("sha256:false", &[("cascade.managed", "false")], &[], 3600),
        image("sha256:casing", &[("Cascade.Managed", "true")], &[], 3600),
        image(
            "sha256:tagged",
            &[("cascade.managed", "true")],
            &["cascade-snapshot-p-w:latest"],
            3600,
        ),
    ]));
    let (report, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(fake.removed(), vec!["sha256:ours"]);
    assert_eq!(ids(&report.removed), vec!["sha256:ours"]);
    assert_eq!(report.listed, 6);
    assert_eq!(
        report.skipped_by_reason().get("failed_verification"),
        Some(&5)
    );
    assert_eq!(
        fake.edit(|s| s.remove_calls),
        1,
        "nothing out of scope is even attempted"
    );
    assert!(events.is_empty());
}

#[test]
fn multiple_labels_are_anded() {
    let scope = Scope::new(
        ["cascade.managed=true", "project=alpha"].map(|l| l.parse::<Label>().expect("label")),
    )
    .expect("scope");
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:only-one"),
        image(
            "sha256:both",
            &[("cascade.managed", "true"), ("project", "alpha")],
            &[],
            3600,
        ),
    ]));
    let (report, _) = with_sentry(|| async {
        sweep(
            &fake,
            SweepConfig {
                scope,
                min_age: Duration::ZERO,
                ..SweepConfig::default()
            },
        )
        .run(&CancellationToken::new())
        .await
    });
    assert_eq!(fake.removed(), vec!["sha256:both"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        fake.edit(|s| s.filters_seen[0]["label"].clone()),
        vec!["cascade.managed=true", "project=alpha"]
    );
}

#[test]
fn images_younger_than_the_minimum_age_are_kept() {
    let images = vec![
        image("sha256:young", &[("cascade.managed", "true")], &[], 30),
        image("sha256:future", &[("cascade.managed", "true")], &[], -3600),
        ours("sha256:old"),
    ];
    let fake = Arc::new(FakeDocker::with_images(images.clone()));
    let (report, _) = with_sentry(|| async {
        sweep(&fake, config(Duration::from_secs(600)))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(fake.removed(), vec!["sha256:old"]);
    assert_eq!(report.skipped_by_reason().get("too_young"), Some(&2));

    let fake = Arc::new(FakeDocker::with_images(images));
    let (report, _) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(report.removed.len(), 3, "0s keeps nothing for age");
}

#[test]
fn in_use_and_gone_are_skipped_quietly_other_errors_are_reported_and_the_loop_continues() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..6).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| {
        s.used.insert("sha256:0".into()); // seen in the container list: not even tried
        s.remove_errors.insert(
            "sha256:1".into(),
            DockerError::status(409, "has dependent child images"),
        );
        s.remove_errors
            .insert("sha256:2".into(), DockerError::status(404, "No such image"));
        s.remove_errors
            .insert("sha256:3".into(), DockerError::status(500, "driver failed"));
    });
    let ((report, events), logs) = with_logs(|| {
        with_sentry(|| async {
            sweep(&fake, config(Duration::ZERO))
                .run(&CancellationToken::new())
                .await
        })
    });
    assert_eq!(fake.removed(), vec!["sha256:4", "sha256:5"]);
    assert_eq!(fake.edit(|s| s.remove_calls), 5);
    let by_reason = report.skipped_by_reason();
    assert_eq!(by_reason.get("in_use"), Some(&2));
    assert_eq!(by_reason.get("gone"), Some(&1));
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].image.id, "sha256:3");
    assert_eq!(
        report.failed[0].kind,
        cascade_classify::Disposition::Unexpected
    );
    assert!(report.has_failures());
    assert_eq!(events.len(), 1, "only the 500 is reported: {events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::Warning);
    assert_eq!(
        event.tags.get("source").map(String::as_str),
        Some("dangling_image_remove")
    );
    assert_eq!(
        event.extra.get("imageId"),
        Some(&serde_json::Value::from("sha256:3"))
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("sha256:3")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("DEBUG") && l.contains("sha256:1")),
        "{logs}"
    );
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") && (l.contains("sha256:1") || l.contains("sha256:2"))),
        "{logs}"
    );
}

#[test]
fn a_failed_scan_is_reported_once_and_removes_nothing() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_error = Some(DockerError::status(500, "boom")));
    let ((report, events), logs) = with_logs(|| {
        with_sentry(|| async {
            sweep(&fake, config(Duration::ZERO))
                .run(&CancellationToken::new())
                .await
        })
    });
    assert_eq!(report.scan_error.as_deref(), Some("boom"));
    assert!(report.has_failures());
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, Level::Error);
    assert_eq!(
        events[0].tags.get("source").map(String::as_str),
        Some("dangling_image_cleanup_scan")
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("scan failed")),
        "{logs}"
    );
}

/// The whole Sentry event, as the router's alerts and dashboards read it.
fn sentry_view(event: &Event<'static>) -> serde_json::Value {
    let mut tags: Vec<(&str, &str)> = event
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tags.sort();
    let mut extra: Vec<(&str, &serde_json::Value)> =
        event.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    extra.sort_by_key(|(k, _)| *k);
    serde_json::json!({
        "level": event.level.to_string(),
        "message": event.message,
        "tags": tags,
        "extra": extra,
        "fingerprint": event.fingerprint.iter().map(|f| f.as_ref()).collect::<Vec<&str>>(),
    })
}

#[test]
fn a_removal_failure_is_one_fixed_message_grouped_by_source_and_disposition() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| {
        for id in ["sha256:a", "sha256:b"] {
            s.remove_errors.insert(
                id.into(),
                DockerError::status(500, format!("driver failed on {id}")),
            );
        }
    });
    let (_, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    let mut views: Vec<serde_json::Value> = events.iter().map(sentry_view).collect();
    views.sort_by_key(|v| v["extra"][1][1].to_string());
    let expected = |id: &str| {
        serde_json::json!({
            "level": "warning",
            "message": "dangling image removal failed",
            "tags": [["disposition", "unexpected"], ["source", "dangling_image_remove"]],
            "extra": [["error", format!("driver failed on {id}")], ["imageId", id]],
            "fingerprint": ["dangling_image_remove", "unexpected"],
        })
    };
    assert_eq!(views, vec![expected("sha256:a"), expected("sha256:b")]);
}

#[test]
fn a_scan_failure_is_one_fixed_message_grouped_by_source_and_disposition() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_error = Some(DockerError::status(503, "engine is busy")));
    let (_, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    let views: Vec<serde_json::Value> = events.iter().map(sentry_view).collect();
    assert_eq!(
        views,
        vec![serde_json::json!({
            "level": "error",
            "message": "dangling image cleanup scan failed",
            "tags": [["disposition", "transient"], ["source", "dangling_image_cleanup_scan"]],
            "extra": [["error", "engine is busy"]],
            "fingerprint": ["dangling_image_cleanup_scan", "transient"],
        })]
    );
}

#[test]
fn every_call_has_a_deadline() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_delay = Duration::from_secs(3600));
    let cfg = SweepConfig {
        call_timeout: Duration::from_secs(5),
        ..config(Duration::ZERO)
    };
    let (report, events) = with_sentry(|| async {
        let started = tokio::time::Instant::now();
        let report = sweep(&fake, cfg.clone())
            .run(&CancellationToken::new())
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        report
    });
    assert!(
        report
            .scan_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{report:?}"
    );
    assert_eq!(
        events[0].tags.get("disposition").map(String::as_str),
        Some("transient")
    );

    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| s.remove_hangs = true);
    let (report, events) = with_sentry(|| async {
        sweep(
            &fake,
            SweepConfig {
                call_timeout: Duration::from_secs(5),
                ..config(Duration::ZERO)
            },
        )
        .run(&CancellationToken::new())
        .await
    });
    assert_eq!(report.failed.len(), 2);
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.kind == cascade_classify::Disposition::Transient)
    );
    assert_eq!(events.len(), 2);
}

#[test]
fn removal_concurrency_is_bounded_and_used() {
    for limit in [1usize, 4] {
        let fake = Arc::new(FakeDocker::with_images(
            (0..20).map(|i| ours(&format!("sha256:{i:02}"))).collect(),
        ));
        fake.edit(|s| s.remove_delay = Duration::from_millis(10));
        let cfg = SweepConfig {
            concurrency: NonZeroUsize::new(limit).expect("nz"),
            ..config(Duration::ZERO)
        };
        let (report, _) =
            with_sentry(|| async { sweep(&fake, cfg).run(&CancellationToken::new()).await });
        assert_eq!(report.removed.len(), 20);
        assert_eq!(fake.edit(|s| s.max_removes_in_flight), limit);
    }
}

#[test]
fn dry_run_removes_nothing_and_explains() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:old"),
        image("sha256:young", &[("cascade.managed", "true")], &[], 10),
        image("sha256:other", &[("cascade.managed", "no")], &[], 3600),
    ]));
    let cfg = SweepConfig {
        dry_run: true,
        min_age: Duration::from_secs(60),
        ..SweepConfig::default()
    };
    let (report, _) =
        with_sentry(|| async { sweep(&fake, cfg).run(&CancellationToken::new()).await });
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
    assert!(report.removed.is_empty());
    assert_eq!(ids(&report.would_remove), vec!["sha256:old"]);
    let reasons: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.image.id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("sha256:young", "too_young"),
            ("sha256:other", "failed_verification")
        ]
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["skipped"][0]["reason"], "too_young");
    assert_eq!(json["would_remove"][0]["id"], "sha256:old");
}

#[test]
fn summary_is_logged_only_when_something_was_removed() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    let ((report, _), logs) = with_logs(|| {
        with_sentry(|| async {
            sweep(&fake, config(Duration::ZERO))
                .run(&CancellationToken::new())
                .await
        })
    });
    assert_eq!(report.reclaimed_bytes, 2000);
    let summary: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("removed 2 images"))
        .collect();
    assert_eq!(summary.len(), 1, "{logs}");
    assert!(summary[0].contains("reclaimed 2000 bytes"), "{logs}");

    let ((_, _), logs) = with_logs(|| {
        with_sentry(|| async {
            sweep(&fake, config(Duration::ZERO))
                .run(&CancellationToken::new())
                .await
        })
    });
    assert!(
        !logs.contains("INFO"),
        "an empty pass logs no summary: {logs}"
    );
}

#[test]
fn cancelling_stops_new_removals_but_finishes_sent_ones() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..10).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| s.remove_delay = Duration::from_secs(1));
    let cfg = SweepConfig {
        concurrency: NonZeroUsize::new(2).expect("nz"),
        ..config(Duration::ZERO)
    };
    let (report, _) = with_sentry(|| async {
        let sweep = Arc::new(sweep(&fake, cfg));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (sweep, cancel) = (Arc::clone(&sweep), cancel.clone());
            async move { sweep.run(&cancel).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await; // two rounds of two started
        cancel.cancel();
        task.await.expect("task")
    });
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert_eq!(report.skipped_by_reason().get("cancelled"), Some(&6));
    assert_eq!(fake.removed().len(), 4);
}

// ---- the loop lifecycle, on paused time ----

fn service(fake: &Arc<FakeDocker>, interval: Duration) -> DanglingImageCleanup {
    DanglingImageCleanup::new(
        sweep(fake, config(Duration::ZERO)),
        interval,
        Duration::from_secs(30),
    )
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn loop_runs_at_start_and_every_interval() {
    let fake = Arc::new(FakeDocker::default());
    with_sentry(|| async {
        let svc = service(&fake, 30 * MIN);
        assert!(svc.start());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fake.lists(), 1, "first pass at start");
        tokio::time::sleep(30 * MIN).await;
        assert_eq!(fake.lists(), 2);
        tokio::time::sleep(60 * MIN).await;
        assert_eq!(fake.lists(), 4);
        assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
        tokio::time::sleep(120 * MIN).await;
        assert_eq!(fake.lists(), 4, "no pass after stop");
    });
}

#[test]
fn start_twice_warns_and_keeps_one_timer() {
    let fake = Arc::new(FakeDocker::default());
    let (_, logs) = with_logs(|| {
        with_sentry(|| async {
            let svc = service(&fake, 30 * MIN);
            assert!(svc.start());
            assert!(!svc.start(), "second start refused");
            tokio::time::sleep(61 * MIN).await;
            assert_eq!(fake.lists(), 3, "one timer: passes at 0, 30 and 60 minutes");
            svc.stop().await;
        })
    });
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("already started")),
        "{logs}"
    );
}

#[test]
fn stop_when_not_started_is_a_no_op_and_cycles_work() {
    let fake = Arc::new(FakeDocker::default());
    with_sentry(|| async {
        let svc = service(&fake, 30 * MIN);
        assert_eq!(svc.stop().await, None);
        assert_eq!(svc.stop().await, None);
        for cycle in 1..=3 {
            assert!(svc.start(), "cycle {cycle}");
            assert!(svc.is_running());
            tokio::time::sleep(MIN).await;
            assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
            assert!(!svc.is_running());
            assert_eq!(fake.lists(), cycle);
        }
    });
}

#[test]
fn passes_never_overlap_and_missed_ticks_are_skipped() {
    let fake = Arc::new(FakeDocker::default());
    fake.edit(|s| s.list_delay = 45 * MIN); // each pass overruns a 30 minute interval
    with_sentry(|| async {
        let cfg = SweepConfig {
            call_timeout: 24 * 60 * MIN,
            ..config(Duration::ZERO)
        };
        let svc = Arc::new(DanglingImageCleanup::new(
            sweep(&fake, cfg),
            30 * MIN,
            Duration::from_secs(30),
        ));
        svc.start();
        let manual = tokio::spawn({
            let svc = Arc::clone(&svc);
            async move { svc.run_now().await }
        });
        tokio::time::sleep(180 * MIN).await;
        manual.await.expect("run_now");
        svc.stop().await;
    });
    let (max, lists) = fake.edit(|s| (s.max_lists_in_flight, s.filters_seen.len()));
    assert_eq!(max, 1, "never two passes at once");
    // Passes start at 0, 45 (run_now waited), 90, 150: the loop waits for the next
    // whole tick after an overrun instead of catching up.
    assert!((3..=5).contains(&lists), "{lists} passes in three hours");
}

#[test]
fn stop_during_a_pass_waits_for_a_safe_point() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..10).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| s.remove_delay = Duration::from_secs(2));
    with_sentry(|| async {
        let cfg = SweepConfig {
            concurrency: NonZeroUsize::new(1).expect("nz"),
            ..config(Duration::ZERO)
        };
        let svc = DanglingImageCleanup::new(sweep(&fake, cfg), 30 * MIN, Duration::from_secs(30));
        svc.start();
        tokio::time::sleep(Duration::from_secs(3)).await; // second removal in flight
        let started = tokio::time::Instant::now();
        assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "waited for the removal in flight only"
        );
    });
    assert_eq!(fake.removed().len(), 2);
    assert_eq!(
        fake.edit(|s| s.removes_in_flight),
        0,
        "nothing left half done"
    );
}

#[test]
fn stop_abandons_a_pass_that_outlives_the_deadline() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.remove_hangs = true);
    with_sentry(|| async {
        let cfg = SweepConfig {
            call_timeout: Duration::from_secs(3600),
            ..config(Duration::ZERO)
        };
        let svc = DanglingImageCleanup::new(sweep(&fake, cfg), 30 * MIN, Duration::from_secs(10));
        svc.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = tokio::time::Instant::now();
        assert_eq!(svc.stop().await, Some(StopOutcome::DeadlineExceeded));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(!svc.is_running());
    });
}

#[test]
fn dropping_a_handle_ends_its_loop() {
    let fake = Arc::new(FakeDocker::default());
    with_sentry(|| async {
        let handle = LoopHandle::start(
            Arc::new(sweep(&fake, config(Duration::ZERO))),
            LoopOptions::every(30 * MIN),
        );
        tokio::time::sleep(MIN).await;
        drop(handle);
        tokio::time::sleep(120 * MIN).await;
    });
    assert_eq!(fake.lists(), 1);
}

// ---- the plan's reasons, reclaimed space, progress ----

#[test]
fn the_plan_explains_labelled_images_that_are_not_candidates() {
    let mut child = image(
        "sha256:child",
        &[("cascade.managed", "true")],
        &["child:1"],
        3600,
    );
    child.parent_id = "sha256:parent".into();
    let mut grandchild = ours("sha256:old");
    grandchild.parent_id = "sha256:not-ours".into();
    let fake = Arc::new(FakeDocker::with_images(vec![grandchild]));
    fake.edit(|s| {
        s.tagged = vec![
            child,
            image(
                "sha256:current",
                &[("cascade.managed", "true")],
                &["cascade-snapshot-p-1:latest"],
                3600,
            ),
        ];
        s.inspectable = vec![
            image("sha256:parent", &[("cascade.managed", "true")], &[], 3600),
            image("sha256:not-ours", &[], &[], 3600),
        ];
    });
    let cfg = SweepConfig {
        dry_run: true,
        ..config(Duration::ZERO)
    };
    let (report, _) =
        with_sentry(|| async { sweep(&fake, cfg).run(&CancellationToken::new()).await });
    assert_eq!(ids(&report.would_remove), vec!["sha256:old"]);
    let reasons: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.image.id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("sha256:parent", "has_children"),
            ("sha256:child", "tagged"),
            ("sha256:current", "tagged")
        ],
        "an unlabelled parent is not mentioned"
    );
    // One listing, by the labels only.
    let seen = fake.edit(|s| s.filters_seen.clone());
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert_eq!(seen[0]["label"], vec!["cascade.managed=true".to_string()]);
    assert_eq!(report.listed, 1, "only candidates count as listed");

    // A real pass asks for dangling images, and never lists tagged ones.
    let real = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    })
    .0;
    assert_eq!(ids(&real.removed), vec!["sha256:old"]);
    assert!(fake.edit(|s| s.filters_seen[1].contains_key("dangling")));
}

#[test]
fn reclaimed_space_is_measured_when_the_data_root_is_visible() {
    let dir = std::env::temp_dir();
    for (path, expected) in [
        (Some(dir.clone()), ReclaimedSource::Filesystem),
        (
            Some(dir.join("no-such-dir-cascade")),
            ReclaimedSource::ImageSizes,
        ),
        (None, ReclaimedSource::ImageSizes),
    ] {
        let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
        fake.edit(|s| s.data_root = path.clone());
        let cfg = config(Duration::ZERO);
        let (report, _) =
            with_sentry(|| async { sweep(&fake, cfg).run(&CancellationToken::new()).await });
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.reclaimed_source, expected, "{path:?}");
        assert_eq!(report.removed_image_bytes, 1000);
        if expected == ReclaimedSource::ImageSizes {
            assert_eq!(report.reclaimed_bytes, 1000);
        }
    }
    assert!(disk::free_space(&dir).expect("statvfs") > 0);

    // Off: no data root is asked for.
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.data_root = Some(dir.clone()));
    let cfg = SweepConfig {
        measure_reclaimed: false,
        ..config(Duration::ZERO)
    };
    let (report, _) =
        with_sentry(|| async { sweep(&fake, cfg).run(&CancellationToken::new()).await });
    assert_eq!(report.reclaimed_source, ReclaimedSource::ImageSizes);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl SweepProgress for Recorder {
    fn started(&self, images: usize, bytes: u64) {
        self.0
            .lock()
            .expect("r")
            .push(format!("started {images} {bytes}"));
    }
    fn advanced(&self, image: &ImageRef, removed: bool) {
        self.0
            .lock()
            .expect("r")
            .push(format!("{} {removed}", image.id));
    }
    fn finished(&self, report: &SweepReport) {
        self.0
            .lock()
            .expect("r")
            .push(format!("finished {}", report.removed.len()));
    }
}

#[test]
fn progress_sees_every_removal_as_it_ends() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| {
        s.remove_errors
            .insert("sha256:b".into(), DockerError::status(409, "in use"))
    });
    let cfg = SweepConfig {
        concurrency: NonZeroUsize::new(1).expect("nz"),
        ..config(Duration::ZERO)
    };
    let recorder = Recorder::default();
    with_sentry(|| async {
        sweep(&fake, cfg)
            .run_with_progress(&CancellationToken::new(), &recorder)
            .await
    });
    assert_eq!(
        recorder.0.into_inner().expect("r"),
        vec![
            "started 2 2000",
            "sha256:a true",
            "sha256:b false",
            "finished 1"
        ]
    );
}

// ---- early sweeps from engine events, on paused time ----

/// Events sent through a channel; each subscription takes the receiver the
/// test queued for it, and records when it subscribed.
#[derive(Default)]
struct FakeEvents {
    queued: Mutex<Vec<tokio::sync::mpsc::UnboundedReceiver<Result<EngineEvent, DockerError>>>>,
    subscribed_at: Mutex<Vec<tokio::time::Instant>>,
    labels_seen: Mutex<Vec<Vec<String>>>,
}

impl FakeEvents {
    fn queue(&self) -> tokio::sync::mpsc::UnboundedSender<Result<EngineEvent, DockerError>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.queued.lock().expect("q").insert(0, rx);
        tx
    }
}

impl EngineEvents for FakeEvents {
    fn subscribe(
        &self,
        labels: &[String],
    ) -> futures_util::stream::BoxStream<'static, Result<EngineEvent, DockerError>> {
        use futures_util::StreamExt;
        self.subscribed_at
            .lock()
            .expect("s")
            .push(tokio::time::Instant::now());
        self.labels_seen.lock().expect("l").push(labels.to_vec());
        match self.queued.lock().expect("q").pop() {
            Some(mut rx) => futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
            None => futures_util::stream::iter(vec![Err(DockerError::status(
                500,
                "connection refused",
            ))])
            .boxed(),
        }
    }
}

fn untag() -> Result<EngineEvent, DockerError> {
    Ok(EngineEvent {
        action: "untag".into(),
        id: "sha256:x".into(),
    })
}

fn evented(
    fake: &Arc<FakeDocker>,
    events: &Arc<FakeEvents>,
    min_gap: Duration,
) -> DanglingImageCleanup {
    service(fake, 30 * MIN).with_min_gap(min_gap).with_events(
        Arc::clone(events) as Arc<dyn EngineEvents>,
        EventOptions::with_debounce(Duration::from_secs(5)),
    )
}

#[test]
fn a_burst_of_events_triggers_one_early_sweep() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    with_sentry(|| async {
        let svc = evented(&fake, &events, Duration::from_secs(10));
        svc.start();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(fake.lists(), 1, "the pass at start only");
        for _ in 0..5 {
            tx.send(untag()).expect("send");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(fake.lists(), 1, "still debouncing 3 s after the last event");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(fake.lists(), 2, "one sweep for the burst");
        tokio::time::sleep(10 * MIN).await;
        assert_eq!(fake.lists(), 2, "and no more until the interval");
        svc.stop().await;
    });
    assert_eq!(
        events.labels_seen.lock().expect("l")[0],
        vec!["cascade.managed=true".to_string()]
    );
}

#[test]
fn early_sweeps_respect_the_floor() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    with_sentry(|| async {
        let svc = evented(&fake, &events, 2 * MIN);
        svc.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(untag()).expect("send");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(fake.lists(), 1, "within the floor of the pass at start");
        tokio::time::sleep(Duration::from_secs(85)).await;
        assert_eq!(fake.lists(), 1, "116 s after the first pass");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(fake.lists(), 2, "at the floor, not before");
        svc.stop().await;
    });
}

#[test]
fn a_broken_event_stream_is_resubscribed_with_backoff() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let started = with_sentry(|| async {
        let started = tokio::time::Instant::now();
        let svc = evented(&fake, &events, Duration::from_secs(10));
        svc.start();
        tokio::time::sleep(Duration::from_secs(20)).await;
        // It came back: events flow again and trigger a sweep.
        let tx = events.queue();
        tokio::time::sleep(Duration::from_secs(20)).await;
        tx.send(untag()).expect("send");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            fake.lists(),
            2,
            "an event after the reconnect triggers a sweep"
        );
        svc.stop().await;
        started
    })
    .0;
    let gaps: Vec<u64> = events
        .subscribed_at
        .lock()
        .expect("s")
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    // Fails at 0, 1, 3, 7, 15 s; the 31 s attempt gets the queued stream.
    assert_eq!(gaps, vec![1, 2, 4, 8, 16], "subscriptions from {started:?}");
}

#[test]
fn events_stop_with_the_loop() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    with_sentry(|| async {
        let svc = evented(&fake, &events, Duration::from_secs(10));
        svc.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(tx.is_closed(), "the subscription was dropped");
    });
}

// ---- a removal never takes an image tagged since the listing ----

#[test]
fn classic_store_an_image_tagged_after_the_listing_is_rechecked_and_kept() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:retagged"),
        ours("sha256:plain"),
    ]));
    fake.edit(|s| {
        s.tag_after_listing = vec![("sha256:retagged".into(), "snap:1".into())];
    });
    let (report, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(ids(&report.removed), ["sha256:plain"]);
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(report.skipped[0].image.id, "sha256:retagged");
    assert_eq!(
        report.skipped[0].reason,
        SkipReason::Changed {
            detail: "image is tagged `snap:1`, not dangling".into()
        }
    );
    assert_eq!(report.skipped_by_reason().get("changed"), Some(&1));
    assert!(!report.has_failures() && events.is_empty(), "{events:?}");
    fake.edit(|s| {
        let mut inspected = s.inspected.clone();
        inspected.sort();
        assert_eq!(
            inspected,
            ["sha256:plain", "sha256:retagged"],
            "each re-checked"
        );
        // Only the unchanged image reached a DELETE, and by its ID.
        assert_eq!(s.removal_names, ["sha256:plain"]);
        assert_eq!(s.images[0].repo_tags, ["snap:1"], "kept with its tag");
    });
}

#[test]
fn classic_store_an_image_gone_before_its_recheck_is_gone() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    // Listed, then removed by someone else before the re-check.
    let listed = fake.edit(|s| std::mem::take(&mut s.images));
    let racer = Arc::new(ListThenVanish {
        listed,
        inner: Arc::clone(&fake),
    });
    let (report, events) = with_sentry(|| async {
        DanglingImageSweep::new(racer as Arc<dyn DockerImages>, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(
        report.skipped_by_reason().get("gone"),
        Some(&1),
        "{report:#?}"
    );
    assert!(report.removed.is_empty() && !report.has_failures());
    assert!(events.is_empty());
    assert_eq!(
        fake.edit(|s| s.remove_calls),
        0,
        "no DELETE after a 404 inspect"
    );
}

/// Lists `listed`, but the engine (`inner`) no longer has them.
struct ListThenVanish {
    listed: Vec<ListedImage>,
    inner: Arc<FakeDocker>,
}

#[async_trait::async_trait]
impl DockerImages for ListThenVanish {
    async fn list_images(
        &self,
        _: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        Ok(self.listed.clone())
    }
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        self.inner.inspect_image(id).await
    }
    async fn image_store(&self) -> Result<ImageStore, DockerError> {
        self.inner.image_store().await
    }
    async fn images_used_by_containers(
        &self,
    ) -> Result<std::collections::HashSet<String>, DockerError> {
        self.inner.images_used_by_containers().await
    }
    async fn remove_image(&self, name: &str) -> Result<(), DockerError> {
        self.inner.remove_image(name).await
    }
}

#[test]
fn containerd_store_removes_by_the_dangling_name_and_a_retagged_image_is_gone() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:retagged"),
        ours("sha256:plain"),
    ]));
    fake.edit(|s| {
        s.containerd = true;
        s.tag_after_listing = vec![("sha256:retagged".into(), "snap:1".into())];
    });
    let (report, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(ids(&report.removed), ["sha256:plain"]);
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(
        (
            report.skipped[0].image.id.as_str(),
            report.skipped[0].reason.as_str()
        ),
        ("sha256:retagged", "gone")
    );
    assert!(!report.has_failures() && events.is_empty(), "{events:?}");
    assert_eq!(
        report.reclaimed_source,
        ReclaimedSource::ContainerdImageSizes,
        "an estimate there, and said so"
    );
    fake.edit(|s| {
        let mut names = s.removal_names.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "moby-dangling@sha256:plain",
                "moby-dangling@sha256:retagged"
            ]
        );
        assert!(
            s.inspected.is_empty(),
            "the conditional delete needs no re-check"
        );
        assert!(s.images.iter().any(|i| i.id == "sha256:retagged"));
    });
}

#[test]
fn without_the_image_store_nothing_is_removed() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.store_error = Some(DockerError::status(500, "info failed")));
    let (report, _) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert!(report.removed.is_empty(), "{report:#?}");
    assert_eq!(report.scan_error.as_deref(), Some("info failed"));
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
}
