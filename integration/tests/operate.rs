//! Operating features on a real engine: the plan's reasons, and early
//! sweeps from the engine's event stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cascade_cleanup::{
    DanglingImageSweep, EngineEvents, EventOptions, EventTrigger, LoopOptions, SweepConfig,
    run_loop,
};
use cascade_engine::EngineConnection;
use integration::daemon::{http_get, metrics_port, sample};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::{NestedEngine, Reports, capture_sentry, stop_loop, wait_until};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_plan_says_why_each_labelled_image_is_kept() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("garbage").ours(),
            ImageSpec::new("held").ours(),
            ImageSpec::new("young").ours().age(Duration::from_secs(5)),
            ImageSpec::new("current")
                .ours()
                .tagged("cascade-snapshot-p-1:latest"),
            ImageSpec::new("parent").ours().tagged("parent:1"),
            ImageSpec::new("not-ours"),
            ImageSpec::new("not-ours-tagged").tagged("mysql:8.0"),
        ],
    )
    .await?;
    fixtures::create_container(d, &loaded["held"]).await?;
    let user = fixtures::create_container(d, "parent:1").await?;
    let child = fixtures::commit(d, &user, "child", "1", &[]).await?;
    d.remove_container(
        &user,
        None::<bollard::query_parameters::RemoveContainerOptions>,
    )
    .await?;
    fixtures::move_tag_away(d, "parent:1").await?;
    let before = all_image_ids(d).await?;

    let sweep = DanglingImageSweep::new(
        Arc::new(EngineConnection::new(d.clone())),
        SweepConfig {
            dry_run: true,
            min_age: Duration::from_secs(600),
            ..SweepConfig::default()
        },
    );
    let report = sweep.run(&CancellationToken::new()).await;

    assert_eq!(all_image_ids(d).await?, before, "a plan removes nothing");
    let planned: Vec<&str> = report.would_remove.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(planned, vec![loaded["garbage"].as_str()], "{report:#?}");
    let kept: BTreeMap<&str, &str> = report
        .skipped
        .iter()
        .map(|s| (s.image.id.as_str(), s.reason.as_str()))
        .collect();
    let expected: BTreeMap<&str, &str> = [
        (loaded["held"].as_str(), "in_use"),
        (loaded["young"].as_str(), "too_young"),
        (loaded["current"].as_str(), "tagged"),
        (loaded["parent"].as_str(), "has_children"),
        // The child inherited the label and carries a tag.
        (child.as_str(), "tagged"),
    ]
    .into_iter()
    .collect();
    assert_eq!(kept, expected, "unlabelled images are not even mentioned");
    engine.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_a_snapshot_triggers_an_early_sweep() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    fixtures::load(d, &[ImageSpec::new("router-base").tagged("router-base:1")]).await?;
    let worker = fixtures::create_container(d, "router-base:1").await?;
    let tag = "cascade-snapshot-proj-item7";
    let commit = || fixtures::commit(d, &worker, tag, "latest", &[("cascade.managed", "true")]);

    let reports = Reports::default();
    // The clock alone would not sweep again for an hour.
    let sweep = Arc::new(DanglingImageSweep::new(
        Arc::new(EngineConnection::new(d.clone())),
        SweepConfig {
            min_age: Duration::ZERO,
            ..SweepConfig::default()
        },
    ));
    let options = LoopOptions {
        min_gap: Duration::from_secs(1),
        events: Some(EventTrigger {
            source: Arc::new(EngineConnection::new(d.clone())) as Arc<dyn EngineEvents>,
            options: EventOptions::with_debounce(Duration::from_secs(1)),
        }),
        observer: Some(reports.observer()),
        ..LoopOptions::every(Duration::from_secs(3600))
    };
    let cancel = CancellationToken::new();

    let (result, events) = capture_sentry(async {
        let task = tokio::spawn(run_loop(sweep, options, cancel.clone()));
        reports.wait_for(1, Duration::from_secs(20)).await?;
        // The production leak: the tag moves to a new commit. The follower
        // may still be subscribing on a loaded machine, so commit again
        // (another orphan, more events) every few seconds until a sweep
        // that the clock would not have run for an hour removes the first.
        let first = commit().await?;
        let mut latest = commit().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if !all_image_ids(d).await?.contains(&first) {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no early sweep removed the orphaned snapshot"
            );
            latest = commit().await?;
        }
        assert!(
            all_image_ids(d).await?.contains(&latest),
            "the tagged snapshot stays"
        );
        // Exactly one pass removed it, and not the start pass: an early one
        // (the clock's next pass is an hour away).
        assert_eq!(removed_by(&reports, &first), [1], "{:#?}", reports.all());
        let before_reconnect = latest.clone();

        // The stream breaks with the engine; it is followed again after.
        // `stop_engine` returns once the engine's process has exited, so the
        // stream has already ended when it comes back.
        engine.stop_engine().await?;
        engine.start_engine().await?;
        // Each commit orphans the previous snapshot and emits events; keep
        // committing until the re-subscribed follower triggers a sweep.
        wait_until(
            Duration::from_secs(45),
            "a sweep after the reconnect",
            || async {
                if !all_image_ids(d).await.unwrap_or_default().contains(&latest) {
                    return true;
                }
                let _ = commit().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                false
            },
        )
        .await?;
        assert_eq!(
            removed_by(&reports, &before_reconnect).len(),
            1,
            "one pass after the reconnect removed it: {:#?}",
            reports.all()
        );
        assert!(!task.is_finished());
        stop_loop(&cancel, task, Duration::from_secs(10)).await;
        anyhow::Ok(())
    })
    .await;
    result?;
    assert!(events.is_empty(), "{events:?}");
    engine.finish().await
}

/// The indexes of the passes whose report removed image `id`.
fn removed_by(reports: &Reports, id: &str) -> Vec<usize> {
    reports
        .all()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.removed.iter().any(|i| i.id == id))
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_after_a_known_sweep() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("a").ours(),
            ImageSpec::new("b").ours(),
            ImageSpec::new("c").ours(),
            ImageSpec::new("held").ours(),
            ImageSpec::new("stranger"),
        ],
    )
    .await?;
    fixtures::create_container(d, &loaded["held"]).await?;
    // What the daemon reports as reclaimed: the sum of the removed images'
    // sizes as the engine lists them (it does not measure free space).
    let listed = d
        .list_images(Some(
            bollard::query_parameters::ListImagesOptionsBuilder::new()
                .all(true)
                .build(),
        ))
        .await?;
    let removed_bytes: i64 = listed
        .iter()
        .filter(|i| ["a", "b", "c"].iter().any(|n| loaded[*n] == i.id))
        .map(|i| i.size)
        .sum();
    // Port 0: the daemon binds a free port itself and logs which.
    let mut daemon = integration::janitor()
        .args(["run", "--min-age", "0s", "--interval", "1h", "--no-events"])
        .args(["--docker-host", &engine.host()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let log = integration::StderrLog::collect(&mut daemon);
    let port = metrics_port(&log).await?;
    let host = engine.host();
    let engine_label = format!("engine=\"{host}\"");
    wait_until(Duration::from_secs(20), "a healthy first sweep", || async {
        http_get(port, "/healthz")
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
            && http_get(port, "/metrics")
                .map(|(_, m)| m.contains("cascade_janitor_last_success_timestamp_seconds{"))
                .unwrap_or(false)
    })
    .await?;
    let (status, metrics) = http_get(port, "/metrics")?;
    assert_eq!(status, 200);
    let value = |name: &str, labels: &str| {
        let prefix = if labels.is_empty() {
            format!("cascade_janitor_{name}{{{engine_label}}}")
        } else {
            format!("cascade_janitor_{name}{{{engine_label},{labels}}}")
        };
        sample(&metrics, &prefix).unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert_eq!(value("images_removed_total", ""), 3.0);
    assert_eq!(value("images_skipped_total", "reason=\"in_use\""), 1.0);
    assert_eq!(value("sweeps_total", "result=\"success\""), 1.0);
    assert_eq!(value("sweeps_total", "result=\"partial\""), 0.0);
    assert_eq!(value("images_in_scope", ""), 4.0);
    assert_eq!(value("errors_total", "kind=\"unexpected\""), 0.0);
    assert_eq!(value("reclaimed_bytes_total", ""), removed_bytes as f64);
    assert_eq!(value("sweep_duration_seconds_count", ""), 1.0);

    let pid = daemon.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(15), daemon.wait()).await??;
    assert_eq!(status.code(), Some(0));
    assert!(
        http_get(port, "/healthz").is_err(),
        "the server stopped with the daemon"
    );
    engine.finish().await
}
