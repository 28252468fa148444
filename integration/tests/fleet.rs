//! `run` with two engines, one of them down: the live engine is swept, the
//! other keeps failing on every interval without holding anything up, is
//! swept once it comes back, and SIGTERM still exits 0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use tokio::io::AsyncBufReadExt;

/// Waits (bounded) until `done` holds.
async fn eventually<F, Fut>(what: &str, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await? {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn one_engine_down_never_stalls_the_other() -> Result<()> {
    let live = NestedEngine::start().await?;
    let down = NestedEngine::start().await?;
    let live_images = fixtures::load(
        &live.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let down_images = fixtures::load(&down.docker, &[ImageSpec::new("ours-too").ours()]).await?;
    down.stop_engine().await?;

    let mut daemon = tokio::process::Command::new(integration::janitor_binary())
        .args([
            "run",
            "--min-age",
            "0s",
            "--interval",
            "1s",
            "--timeout",
            "30s",
            "--log-format",
            "json",
            "--docker-host",
            &live.host(),
            "--docker-host",
            &down.host(),
        ])
        .env_remove("SENTRY_DSN")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = tokio::io::BufReader::new(daemon.stderr.take().expect("stderr")).lines();
    let sink = Arc::clone(&log);
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    let failures_of = |host: String| {
        let log = Arc::clone(&log);
        move || {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|l| l.contains("scan failed") && l.contains(&host))
                .count()
        }
    };
    let down_failures = failures_of(down.host());

    // The live engine is swept although the other is down from the start.
    eventually("the live engine was not swept", || async {
        Ok(!all_image_ids(&live.docker)
            .await?
            .contains(&live_images["ours"]))
    })
    .await?;
    // The down engine keeps failing, interval after interval, named in the log.
    eventually("the down engine was not retried", || {
        let n = down_failures();
        async move { Ok(n >= 2) }
    })
    .await?;
    assert!(daemon.try_wait()?.is_none(), "run must not exit");
    assert_eq!(
        failures_of(live.host())(),
        0,
        "the live engine never failed"
    );

    // Once it is back, its next pass sweeps it.
    down.start_engine().await?;
    eventually("the engine that came back was not swept", || async {
        Ok(!all_image_ids(&down.docker)
            .await?
            .contains(&down_images["ours-too"]))
    })
    .await?;

    let pid = daemon.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.wait()).await??;
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
    reader.await?;
    assert_eq!(
        all_image_ids(&live.docker).await?,
        [live_images["mysql"].clone()].into_iter().collect(),
        "only the labelled dangling image was removed"
    );
    live.finish().await?;
    down.finish().await
}
