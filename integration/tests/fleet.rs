//! `run` with two engines, one of them down: the live engine is swept, the
//! other keeps failing on every interval without holding anything up, is
//! swept once it comes back, and SIGTERM still exits 0.

use std::time::Duration;

use anyhow::Result;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::{NestedEngine, StderrLog, wait_until};

/// How long each step may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(60);

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

    let mut daemon = integration::janitor()
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
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let log = StderrLog::collect(&mut daemon);
    let failures_of = |host: String| {
        let log = &log;
        move || {
            log.lines()
                .iter()
                .filter(|l| l.contains("scan failed") && l.contains(&host))
                .count()
        }
    };
    let down_failures = failures_of(down.host());

    // The live engine is swept although the other is down from the start.
    let gone = |docker, id| async move {
        all_image_ids(docker)
            .await
            .is_ok_and(|ids| !ids.contains(id))
    };
    wait_until(LIMIT, "the live engine to be swept", || {
        gone(&live.docker, &live_images["ours"])
    })
    .await?;
    // The down engine keeps failing, interval after interval, named in the log.
    wait_until(LIMIT, "the down engine to be retried", || {
        let n = down_failures();
        async move { n >= 2 }
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
    wait_until(LIMIT, "the engine that came back to be swept", || {
        gone(&down.docker, &down_images["ours-too"])
    })
    .await?;

    let pid = daemon.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.wait()).await??;
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
    log.finish().await;
    assert_eq!(
        all_image_ids(&live.docker).await?,
        [live_images["mysql"].clone()].into_iter().collect(),
        "only the labelled dangling image was removed"
    );
    live.finish().await?;
    down.finish().await
}
