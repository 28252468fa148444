//! What `prune` shows: a progress bar on a terminal (driven in a
//! pseudo-terminal with util-linux `script`), log lines without one.

use std::time::Duration;

use anyhow::Result;
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};

async fn fifty_images(engine: &NestedEngine) -> Result<()> {
    let specs: Vec<ImageSpec> = (0..50)
        .map(|i| ImageSpec::new(&format!("ours-{i}")).ours())
        .collect();
    fixtures::load(&engine.docker, &specs).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_prune_draws_a_progress_bar_then_the_summary() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fifty_images(&engine).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::SlowRemovals(Duration::from_millis(40)));
    let command = format!(
        "{} prune --min-age 0s --concurrency 1 --docker-host {}",
        integration::janitor_binary().display(),
        proxy.host()
    );
    let out = tokio::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("SENTRY_DSN")
        .env("TERM", "xterm")
        .output()
        .await?;
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("removing ["), "no bar drawn: {screen}");
    assert!(screen.contains("/50 images"), "{screen}");
    assert!(
        screen.contains("summary: listed 50, removed 50"),
        "{screen}"
    );
    assert!(screen.contains("space reclaimed: "), "{screen}");
    assert!(all_image_ids(&engine.docker).await?.is_empty(), "{screen}");
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn without_a_terminal_prune_logs_progress_instead() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fifty_images(&engine).await?;
    let out = integration::janitor()
        .args(["prune", "--min-age", "0s", "--docker-host", &engine.host()])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("removing 50 images"), "{stderr}");
    assert!(
        !stderr.contains("removing ["),
        "no bar without a terminal: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes without a terminal: {stderr}"
    );
    engine.finish().await
}
