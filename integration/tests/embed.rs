//! `crates/cascade-embed/examples/embed.rs`, the embedding a Rust router
//! copies, run as written against a nested engine: it sweeps the labelled
//! dangling image, keeps the bystanders, and stops cleanly at shutdown.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::{NestedEngine, StderrLog, wait_until};
use tokio::io::AsyncReadExt;

/// Builds the example with the cargo that built this test, in the same
/// profile, and returns its path. The variables cargo sets for this test
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...) are not passed on: a build
/// script that reruns when one changes (ring's does, on
/// `CARGO_MANIFEST_DIR`) would be rebuilt here, and then again by the next
/// `cargo nextest run`, once per engine of the matrix.
fn build_example() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("target/<profile>/deps")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_this_test = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                &*name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_for_this_test {
            cargo.env_remove(&*name);
        }
    }
    let status = cargo
        .args([
            "build",
            "--locked",
            "-p",
            "cascade-embed",
            "--example",
            "embed",
        ])
        .args(["--profile", profile])
        .status()?;
    ensure!(status.success(), "building examples/embed.rs failed");
    Ok(profile_dir.join("examples").join("embed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_sweeps_and_stops_cleanly() -> Result<()> {
    let example = build_example()?;
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            // Older than the default minimum age of one hour.
            ImageSpec::new("ours").ours().age(Duration::from_secs(7200)),
            ImageSpec::new("stranger").age(Duration::from_secs(7200)),
            ImageSpec::new("current")
                .ours()
                .tagged("cascade-snapshot-p-w:latest")
                .age(Duration::from_secs(7200)),
        ],
    )
    .await?;
    let before = all_image_ids(d).await?;

    let mut child = tokio::process::Command::new(&example)
        .env("DOCKER_HOST", engine.host())
        .env_remove("SENTRY_DSN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let log = StderrLog::collect(&mut child);
    wait_until(
        Duration::from_secs(30),
        "the labelled dangling image to go",
        || async {
            all_image_ids(d)
                .await
                .is_ok_and(|ids| !ids.contains(&loaded["ours"]))
        },
    )
    .await
    .with_context(|| log.lines().join("\n"))?;

    // The router's shutdown: the example stops when its stdin closes.
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).await?;
    }
    let stderr = log.finish().await.join("\n");
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, format!("{}: Clean\n", engine.host()), "{stderr}");

    let mut expected = before.clone();
    expected.remove(&loaded["ours"]);
    assert_eq!(
        all_image_ids(d).await?,
        expected,
        "exactly the labelled dangling image went; the stranger and the tagged one stayed"
    );
    engine.finish().await
}
