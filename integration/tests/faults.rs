//! Faults on a real engine: the engine goes away and comes back, the engine
//! hangs, the engine fails one removal. The loop never panics or exits, every
//! call has a deadline, and only what an operator must see is reported.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cascade_cleanup::{DanglingImageSweep, LoopOptions, SweepConfig, run_loop};
use cascade_engine::EngineConnection;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, Reports, capture_sentry, source, stop_loop, wait_until};
use tokio_util::sync::CancellationToken;

fn quick_config(call_timeout: Duration) -> SweepConfig {
    SweepConfig {
        min_age: Duration::ZERO,
        call_timeout,
        ..SweepConfig::default()
    }
}

fn engine_at(socket: &std::path::Path) -> Result<EngineConnection> {
    Ok(EngineConnection::new(bollard::Docker::connect_with_unix(
        &socket.to_string_lossy(),
        30,
        bollard::API_DEFAULT_VERSION,
    )?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_goes_away_and_comes_back() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let reports = Reports::default();
    let sweep = Arc::new(DanglingImageSweep::new(
        Arc::new(engine_at(&engine.socket)?),
        quick_config(Duration::from_secs(5)),
    ));
    let options = LoopOptions {
        observer: Some(reports.observer()),
        ..LoopOptions::every(Duration::from_secs(1))
    };
    let cancel = CancellationToken::new();
    let ((), events) = capture_sentry(async {
        let task = tokio::spawn(run_loop(sweep, options, cancel.clone()));
        reports
            .wait_for(1, Duration::from_secs(20))
            .await
            .expect("first pass");
        // Counted from before the stop: passes fail as soon as the engine
        // begins to go, possibly before the stop call returns.
        let down_from = reports.len();
        engine.stop_engine().await.expect("stop engine");
        // Two failed passes while the engine is down: observed, not slept for.
        wait_until(Duration::from_secs(20), "two failed passes", || async {
            reports.all()[down_from..]
                .iter()
                .filter(|r| r.scan_error.is_some())
                .count()
                >= 2
        })
        .await
        .expect("passes while the engine is down");
        let down_until = reports.len();
        engine.start_engine().await.expect("start engine");
        let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("after-recovery").ours()])
            .await
            .expect("load");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while all_image_ids(&engine.docker)
            .await
            .expect("list")
            .contains(&loaded["after-recovery"])
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no pass removed the image after recovery"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!task.is_finished(), "the loop survived");
        stop_loop(&cancel, task, Duration::from_secs(10)).await;
        assert!(
            down_until >= down_from + 2,
            "passes kept coming while the engine was down"
        );
    })
    .await;
    let all = reports.all();
    let failed_passes = all.iter().filter(|r| r.scan_error.is_some()).count();
    let scan_events = events
        .iter()
        .filter(|e| source(e) == Some("dangling_image_cleanup_scan"))
        .count();
    // Passes succeed, fail while the engine is down (two at least: waited
    // for above), then succeed again: never a success in between, never a
    // failure after the recovery.
    let mut runs: Vec<bool> = all.iter().map(|r| r.scan_error.is_none()).collect();
    runs.dedup();
    assert_eq!(runs, [true, false, true], "{all:#?}");
    assert_eq!(scan_events, failed_passes, "one report per failed pass");
    assert!(
        events
            .iter()
            .all(|e| source(e) == Some("dangling_image_cleanup_scan")),
        "{events:?}"
    );
    let first_failure = all
        .iter()
        .position(|r| r.scan_error.is_some())
        .expect("a failure");
    let recovered = all[first_failure..]
        .iter()
        .position(|r| r.scan_error.is_none())
        .expect("a success")
        + first_failure;
    assert!(
        all[recovered..].iter().any(|r| r.removed.len() == 1),
        "a pass after recovery removed the image"
    );
    engine.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_engine_costs_one_deadline_per_pass_and_the_schedule_holds() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    let reports = Reports::default();
    let sweep = Arc::new(DanglingImageSweep::new(
        Arc::new(engine_at(&proxy.socket)?),
        quick_config(Duration::from_secs(1)),
    ));
    let options = LoopOptions {
        observer: Some(reports.observer()),
        ..LoopOptions::every(Duration::from_secs(2))
    };
    let cancel = CancellationToken::new();
    proxy.set(Fault::Hang);
    let started = tokio::time::Instant::now();
    let ((), events) = capture_sentry(async {
        let task = tokio::spawn(run_loop(sweep, options, cancel.clone()));
        reports
            .wait_for(3, Duration::from_secs(15))
            .await
            .expect("three passes while hung");
        proxy.set(Fault::None);
        reports
            .wait_for(4, Duration::from_secs(15))
            .await
            .expect("a pass after the hang");
        stop_loop(&cancel, task, Duration::from_secs(10)).await;
    })
    .await;
    let elapsed = started.elapsed();
    let all = reports.all();
    for hung in &all[..3] {
        let error = hung.scan_error.as_deref().unwrap_or_default();
        assert!(error.contains("timed out after 1s"), "{hung:#?}");
    }
    assert!(
        elapsed < Duration::from_secs(12),
        "three 1 s deadlines on a 2 s schedule took {elapsed:?}"
    );
    assert_eq!(
        events.len(),
        all.iter().filter(|r| r.scan_error.is_some()).count()
    );
    assert!(
        all.iter()
            .skip(3)
            .any(|r| r.removed.iter().any(|i| i.id == loaded["ours"])),
        "{all:#?}"
    );
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn a_500_on_one_removal_is_reported_once_and_the_rest_are_removed() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let specs: Vec<ImageSpec> = (0..5)
        .map(|i| ImageSpec::new(&format!("ours-{i}")).ours())
        .collect();
    let loaded = fixtures::load(&engine.docker, &specs).await?;
    let victim = loaded["ours-2"].clone();
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::FailRemovalOf(victim.clone()));
    let sweep = DanglingImageSweep::new(
        Arc::new(engine_at(&proxy.socket)?),
        quick_config(Duration::from_secs(10)),
    );
    let (report, events) =
        capture_sentry(async { sweep.run(&CancellationToken::new()).await }).await;

    assert_eq!(report.removed.len(), 4, "{report:#?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].image.id, victim);
    assert_eq!(
        report.failed[0].kind,
        cascade_classify::Disposition::Unexpected
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(source(&events[0]), Some("dangling_image_remove"));
    assert_eq!(events[0].level, sentry::Level::Warning);
    assert_eq!(
        events[0].extra.get("imageId").and_then(|v| v.as_str()),
        Some(victim.as_str())
    );
    assert_eq!(
        all_image_ids(&engine.docker).await?,
        [victim].into_iter().collect()
    );
    drop(proxy);
    engine.finish().await
}

/// Issue 11: Sentry groups by fingerprint, then message. 50 failing removals
/// must be one group of 50 events, each naming its image in `imageId`.
#[tokio::test]
async fn fifty_failed_removals_are_one_sentry_group_of_fifty_events() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let specs: Vec<ImageSpec> = (0..50)
        .map(|i| ImageSpec::new(&format!("ours-{i}")).ours())
        .collect();
    let loaded = fixtures::load(&engine.docker, &specs).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::FailAllRemovals);
    let sweep = DanglingImageSweep::new(
        Arc::new(engine_at(&proxy.socket)?),
        quick_config(Duration::from_secs(10)),
    );
    let (report, events) =
        capture_sentry(async { sweep.run(&CancellationToken::new()).await }).await;

    assert_eq!(proxy.removals(), 50);
    assert_eq!(report.failed.len(), 50, "{report:#?}");
    assert_eq!(events.len(), 50, "one event per failed removal");
    let groups: std::collections::BTreeSet<(Vec<String>, Option<String>)> = events
        .iter()
        .map(|e| {
            let fingerprint = e.fingerprint.iter().map(|f| f.to_string()).collect();
            (fingerprint, e.message.clone())
        })
        .collect();
    assert_eq!(
        groups,
        [(
            vec![
                "dangling_image_remove".to_string(),
                "unexpected".to_string()
            ],
            Some("dangling image removal failed".to_string()),
        )]
        .into_iter()
        .collect(),
        "one fingerprint and one message: one Sentry issue"
    );
    let reported: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.extra.get("imageId").and_then(|v| v.as_str()))
        .collect();
    let expected: std::collections::BTreeSet<&str> = loaded.values().map(String::as_str).collect();
    assert_eq!(reported, expected, "each event names its own image");
    let errors: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.extra.get("error").and_then(|v| v.as_str()))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "the error text is in the extra: {errors:?}"
    );
    assert!(
        errors.iter().all(|e| e.contains("injected failure")),
        "{errors:?}"
    );
    assert_eq!(
        all_image_ids(&engine.docker).await?,
        expected.iter().map(|s| s.to_string()).collect(),
        "nothing was removed"
    );
    drop(proxy);
    engine.finish().await
}
