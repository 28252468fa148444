//! Shutdown of the `run` daemon in the middle of a sweep, driven through the
//! real binary and signals: removals already sent finish, no new one starts,
//! what remains is exactly what the next pass would remove, and the exit
//! codes are the documented ones.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, StderrLog, wait_until};
use tokio::io::AsyncReadExt;
use tokio::process::Child;

fn daemon(host: &str, extra: &[&str]) -> Result<Child> {
    Ok(integration::janitor()
        .args([
            "run",
            "--min-age",
            "0s",
            "--interval",
            "1h",
            "--docker-host",
            host,
        ])
        .args(["--no-events"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn signal(child: &Child, name: &str) -> Result<()> {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid}");
    Ok(())
}

async fn exit(mut child: Child, limit: Duration) -> Result<(i32, String)> {
    let status = tokio::time::timeout(limit, child.wait()).await??;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).await?;
    }
    Ok((status.code().unwrap_or(-1), stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sweep_lets_sent_removals_finish_and_starts_no_more() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let mut specs: Vec<ImageSpec> = (0..40)
        .map(|i| ImageSpec::new(&format!("ours-{i}")).ours())
        .collect();
    specs.push(ImageSpec::new("mysql").tagged("mysql:8.0"));
    specs.push(ImageSpec::new("stranger"));
    let loaded = fixtures::load(d, &specs).await?;
    let ours: BTreeSet<String> = (0..40)
        .map(|i| loaded[&format!("ours-{i}")].clone())
        .collect();
    let before = all_image_ids(d).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    // Removals reach the proxy and wait there: the signal lands while
    // exactly `--concurrency` removals are in flight.
    proxy.set(Fault::HoldRemovals);

    let mut child = daemon(
        &proxy.host(),
        &["--concurrency", "2", "--stop-deadline", "20s"],
    )?;
    let log = StderrLog::collect(&mut child);
    wait_until(
        Duration::from_secs(20),
        "two removals in flight",
        || async { proxy.removals() >= 2 },
    )
    .await?;
    signal(&child, "TERM")?;
    wait_until(Duration::from_secs(10), "the shutdown to begin", || async {
        log.contains("shutting down")
    })
    .await?;
    // No wait here: a removal started after the signal would reach the
    // proxy before the process exits, and the count below would see it.
    proxy.release();
    let (code, _) = exit(child, Duration::from_secs(20)).await?;
    let stderr = log.finish().await.join("\n");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        proxy.removals(),
        2,
        "no removal starts after the signal: {stderr}"
    );

    let after = all_image_ids(d).await?;
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        removed.len(),
        2,
        "the two sent removals finished: {removed:?}"
    );
    assert!(removed.is_subset(&ours), "{removed:?}");
    assert!(after.contains(&loaded["mysql"]) && after.contains(&loaded["stranger"]));
    drop(proxy);
    engine.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_pass_is_abandoned_at_the_deadline_and_a_second_signal_exits_at_once() -> Result<()>
{
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(d, &[ImageSpec::new("ours").ours()]).await?;
    let proxy = FaultProxy::start(&engine.socket)?;

    // The engine hangs during the pass: the stop deadline bounds shutdown.
    // The start-up probe of the engine gives up first (5 s) and says so.
    proxy.set(Fault::Hang);
    let mut child = daemon(
        &proxy.host(),
        &["--stop-deadline", "2s", "--timeout", "60s"],
    )?;
    let log = StderrLog::collect(&mut child);
    wait_until(Duration::from_secs(20), "the start-up line", || async {
        log.contains("not reachable yet")
    })
    .await?;
    // One request of the probe (its GET /version), then the pass's.
    wait_until(
        Duration::from_secs(20),
        "the pass to reach the hung engine",
        || async { proxy.requests() >= 2 },
    )
    .await?;
    let signalled = tokio::time::Instant::now();
    signal(&child, "TERM")?;
    let (code, _) = exit(child, Duration::from_secs(15)).await?;
    let stderr = log.finish().await.join("\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "it waited for the pass"
    );
    assert!(stderr.contains("did not stop in time"), "{stderr}");

    // A second signal does not wait for the (long) deadline.
    let seen = proxy.requests();
    let mut child = daemon(
        &proxy.host(),
        &["--stop-deadline", "5m", "--timeout", "60s"],
    )?;
    let log = StderrLog::collect(&mut child);
    wait_until(Duration::from_secs(20), "the start-up line", || async {
        log.contains("not reachable yet")
    })
    .await?;
    wait_until(
        Duration::from_secs(20),
        "the pass to reach the hung engine",
        || async { proxy.requests() >= seen + 2 },
    )
    .await?;
    signal(&child, "TERM")?;
    wait_until(Duration::from_secs(10), "the shutdown to begin", || async {
        log.contains("shutting down")
    })
    .await?;
    signal(&child, "INT")?;
    let (code, _) = exit(child, Duration::from_secs(10)).await?;
    let stderr = log.finish().await.join("\n");
    assert_eq!(code, 1, "a cut-short shutdown is not a clean one: {stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");

    proxy.set(Fault::None);
    assert!(
        all_image_ids(d).await?.contains(&loaded["ours"]),
        "nothing removed while hung"
    );
    drop(proxy);
    engine.finish().await
}
