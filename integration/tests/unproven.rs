//! An engine the janitor has not been proven on is refused for removal,
//! proven on every engine of the matrix behind a proxy that gives the
//! engine a release number no row of the proven-engine table admits (Docker
//! 29, Podman 6): `prune` and `run` exit 1 with one line naming the engine
//! and the flag that overrides it, a Sentry event under its own source, and
//! nothing removed; `prune --dry-run` and `doctor` still work; the flag
//! removes. `[ref:proven_engines]`

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cascade_cleanup::sentry_report::UNPROVEN_SOURCE;
use cascade_cleanup::{DanglingImageSweep, SweepConfig};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, capture_sentry, source};
use tokio_util::sync::CancellationToken;

/// A release of the engine's own implementation that no row admits.
async fn unproven_release(engine: &NestedEngine) -> Result<&'static str> {
    let version = engine.docker.version().await?;
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name == "Podman Engine");
    Ok(if podman { "6.1.1" } else { "29.0.0" })
}

async fn janitor(args: &[&str]) -> Result<(i32, String, String)> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        integration::janitor().args(args).output(),
    )
    .await
    .context("the janitor did not exit within 120 s")??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The one line of a refusal on stderr.
fn refusal(stderr: &str, host: &str, release: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    for part in [
        host,
        release,
        "is not an engine the janitor has been proven on",
        "nothing was removed",
        "--allow-unproven-engine",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
}

#[tokio::test]
async fn prune_refuses_an_unproven_engine_and_plans_on_it() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("theirs").tagged("theirs:1"),
        ],
    )
    .await?;
    let before = all_image_ids(&engine.docker).await?;
    let release = unproven_release(&engine).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::RenameVersion(release.to_string()));
    let host = proxy.host();
    let name = engine.engine.name();

    let (code, stdout, stderr) =
        janitor(&["prune", "--min-age", "0s", "--docker-host", &host]).await?;
    assert_eq!(code, 1, "{name}: {stdout}{stderr}");
    refusal(&stderr, &host, release);
    assert!(stdout.contains("refused: "), "{name}: {stdout}");
    assert_eq!(all_image_ids(&engine.docker).await?, before, "{name}");
    assert!(
        !proxy
            .paths()
            .iter()
            .any(|p| p.starts_with("DELETE ") || p.contains("/tag")),
        "{name}: nothing named or removed: {:?}",
        proxy.paths()
    );

    let short = &loaded["ours"]["sha256:".len()..][..12];
    let (code, stdout, stderr) = janitor(&[
        "prune",
        "--dry-run",
        "--min-age",
        "0s",
        "--docker-host",
        &host,
    ])
    .await?;
    assert_eq!(code, 0, "{name}: the plan works: {stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("would remove") && l.contains(short)),
        "{name}: {stdout}"
    );
    assert!(
        stdout.contains("NOT proven: removal refused"),
        "{name}: {stdout}"
    );

    let (code, stdout, _) = janitor(&["doctor", "--docker-host", &host]).await?;
    assert_eq!(code, 1, "{name}: a problem for doctor: {stdout}");
    let problem = stdout
        .lines()
        .find(|l| l.starts_with("problem: "))
        .unwrap_or_else(|| panic!("{name}: no problem line: {stdout}"));
    assert!(
        problem.contains(release) && problem.contains("--allow-unproven-engine"),
        "{problem}"
    );
    assert_eq!(all_image_ids(&engine.docker).await?, before, "{name}");

    let (code, stdout, stderr) = janitor(&[
        "prune",
        "--min-age",
        "0s",
        "--allow-unproven-engine",
        "--docker-host",
        &host,
    ])
    .await?;
    assert_eq!(code, 0, "{name}: allowed: {stdout}{stderr}");
    let after = all_image_ids(&engine.docker).await?;
    let expected: std::collections::BTreeSet<String> = before
        .iter()
        .filter(|id| **id != loaded["ours"])
        .cloned()
        .collect();
    assert_eq!(after, expected, "{name}: only ours went");
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn a_refusal_is_one_sentry_event_under_its_own_source() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let release = unproven_release(&engine).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::RenameVersion(release.to_string()));
    let client = cascade_engine::connect(&proxy.host(), Duration::from_secs(30)).await?;
    let sweep = DanglingImageSweep::new(
        Arc::new(client),
        SweepConfig {
            min_age: Duration::ZERO,
            engine_label: proxy.host(),
            ..SweepConfig::default()
        },
    );
    let (report, events) =
        capture_sentry(async { sweep.run(&CancellationToken::new()).await }).await;
    let name = engine.engine.name();
    assert!(report.removed.is_empty(), "{name}: {report:#?}");
    assert!(report.refused.is_some() && report.has_failures(), "{name}");
    let sources: Vec<Option<&str>> = events.iter().map(source).collect();
    assert_eq!(sources, [Some(UNPROVEN_SOURCE)], "{name}: {events:?}");
    assert_eq!(
        events[0].tags.get("version").map(String::as_str),
        Some(release)
    );
    assert!(
        all_image_ids(&engine.docker)
            .await?
            .contains(&loaded["ours"])
    );
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn run_exits_1_on_an_unproven_engine() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let before = all_image_ids(&engine.docker).await?;
    let release = unproven_release(&engine).await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::RenameVersion(release.to_string()));
    let host = proxy.host();
    let (code, stdout, stderr) = janitor(&[
        "run",
        "--min-age",
        "0s",
        "--no-events",
        "--log-format",
        "json",
        "--docker-host",
        &host,
    ])
    .await?;
    let name = engine.engine.name();
    assert_eq!(code, 1, "{name}: {stdout}{stderr}");
    // The log lines are JSON; the refusal is the one plain line.
    let plain: String = stderr
        .lines()
        .filter(|l| !l.trim_start().starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    refusal(&plain, &host, release);
    assert_eq!(all_image_ids(&engine.docker).await?, before, "{name}");
    drop(proxy);
    engine.finish().await
}
