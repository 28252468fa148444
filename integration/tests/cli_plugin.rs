//! The janitor as a Docker CLI plugin, run through the host's real `docker`
//! client: `docker janitor prune --dry-run`, `prune` and `doctor` reach the
//! nested engine that the CLI's current context, `--context` or
//! `DOCKER_HOST` names, as `docker` itself would, and the CLI lists the
//! plugin.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};

/// A Docker CLI configuration directory of the test's own, holding the
/// plugin (a link to the janitor binary named `docker-janitor`).
fn docker_config() -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("docker-config").tempdir()?;
    let plugins = dir.path().join("cli-plugins");
    std::fs::create_dir(&plugins)?;
    std::os::unix::fs::symlink(
        integration::janitor_binary(),
        plugins.join("docker-janitor"),
    )?;
    Ok(dir)
}

/// `docker <args>` with this configuration directory and no engine
/// variables of the test's own environment.
fn docker(config: &Path, args: &[&str], vars: &[(&str, &str)]) -> Result<(i32, String, String)> {
    let mut command = Command::new("docker");
    command
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("SENTRY_DSN")
        .envs(vars.iter().copied());
    let out = command
        .output()
        .context("running the host's docker client (Debian's docker.io)")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn planned(stdout: &str) -> Result<BTreeSet<String>> {
    let plan: serde_json::Value = serde_json::from_str(stdout)
        .with_context(|| format!("prune --output json printed:\n{stdout}"))?;
    let entries = plan["would_remove"]
        .as_array()
        .context("would_remove is an array")?;
    Ok(entries
        .iter()
        .filter_map(|e| e["id"].as_str())
        .map(fixtures::listed_id)
        .collect())
}

#[tokio::test]
async fn docker_janitor_uses_the_engine_of_the_docker_clis_context() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let ids = fixtures::load(
        d,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("theirs"),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let ours = fixtures::listed_id(&ids["ours"]);
    let config = docker_config()?;
    let config = config.path();

    // The CLI knows the plugin.
    let (code, stdout, stderr) = docker(config, &["--help"], &[])?;
    ensure!(code == 0, "docker --help: {stderr}");
    ensure!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("janitor*")),
        "docker --help does not list the plugin:\n{stdout}\n{stderr}"
    );

    // A context naming the nested engine, made current as a user would.
    let host = engine.host();
    let endpoint = format!("host={host}");
    let (code, _, stderr) = docker(
        config,
        &["context", "create", "nested", "--docker", &endpoint],
        &[],
    )?;
    ensure!(code == 0, "docker context create: {stderr}");
    let (code, _, stderr) = docker(config, &["context", "use", "nested"], &[])?;
    ensure!(code == 0, "docker context use: {stderr}");

    let dry = [
        "janitor",
        "prune",
        "--dry-run",
        "--output",
        "json",
        "--min-age",
        "0s",
    ];
    let (code, stdout, stderr) = docker(config, &dry, &[])?;
    ensure!(code == 0, "docker janitor prune --dry-run: {stderr}");
    assert_eq!(planned(&stdout)?, BTreeSet::from([ours.clone()]));

    // `--context` and `DOCKER_HOST` choose the engine as they do for
    // `docker`: a context that does not exist is refused in one line, and
    // DOCKER_HOST overrides the current context.
    let mut missing = vec!["--context", "missing"];
    missing.extend(dry);
    let (code, _, stderr) = docker(config, &missing, &[])?;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("docker janitor: Docker context \"missing\" does not exist")
            && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    let (code, _, stderr) = docker(config, &["context", "use", "default"], &[])?;
    ensure!(code == 0, "docker context use default: {stderr}");
    let (code, stdout, stderr) = docker(config, &dry, &[("DOCKER_HOST", host.as_str())])?;
    ensure!(
        code == 0,
        "DOCKER_HOST=... docker janitor prune --dry-run: {stderr}"
    );
    assert_eq!(planned(&stdout)?, BTreeSet::from([ours.clone()]));

    let (code, stdout, stderr) =
        docker(config, &["--context", "nested", "janitor", "doctor"], &[])?;
    assert_eq!(code, 0, "docker janitor doctor: {stdout}{stderr}");
    let engine_line = stdout
        .lines()
        .find(|l| l.starts_with("engine:"))
        .unwrap_or_default();
    assert!(
        engine_line.starts_with(&format!("engine: {host} (")),
        "{stdout}"
    );

    // The removal itself: only ours goes.
    let ids_now = || async {
        let all = all_image_ids(d).await?;
        anyhow::Ok(
            all.iter()
                .map(|id| fixtures::listed_id(id))
                .collect::<BTreeSet<_>>(),
        )
    };
    let before = ids_now().await?;
    let (code, _, stderr) = docker(
        config,
        &["--context", "nested", "janitor", "prune", "--min-age", "0s"],
        &[],
    )?;
    assert_eq!(code, 0, "docker janitor prune: {stderr}");
    let after = ids_now().await?;
    let expected: BTreeSet<String> = before.into_iter().filter(|id| *id != ours).collect();
    assert_eq!(after, expected);

    engine.finish().await
}
