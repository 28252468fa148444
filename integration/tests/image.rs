//! The janitor's container image (`cargo xtask image` builds
//! `cascade-janitor:local`), run the way docs/deploy.md tells operators to:
//! on the host engine, with `--network none`, a read-only root file system,
//! no capabilities, no new privileges, resource limits, and a non-root user
//! that reaches the engine only through the socket's group. The engine it
//! sweeps is a nested one whose socket folder is bind-mounted read-only.
//!
//! The image is not built here (a release build takes minutes): `cargo
//! xtask safety` builds it when it is missing, and `cargo xtask ci` from the
//! tree. Without it the test fails, saying how to build it.
//!
//! The host engine only runs the janitor's containers: the nested engine's
//! `finish` fails the test if any host image changed. `[ref:scope_invariant]`

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use tokio::process::Command;

const IMAGE: &str = "cascade-janitor:local";
/// The numeric user the image runs as (`USER` in the Dockerfile).
const JANITOR_UID: u32 = 65532;
/// The group the test gives the nested engine's socket when it runs as root,
/// standing for a host's `docker` group.
const SOCKET_GID: u32 = 2375;
/// Where the nested engine's socket folder appears inside the janitor.
const ENGINE_DIR: &str = "/run/engine";
const DOCKER_HOST: &str = "unix:///run/engine/docker.sock";

async fn docker(args: &[&str]) -> Result<Output> {
    Command::new("docker")
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run `docker {}`", args.join(" ")))
}

async fn image_present() -> Result<bool> {
    Ok(docker(&["image", "inspect", IMAGE]).await?.status.success())
}

/// `docker run` arguments for the janitor: docs/deploy.md's hardening,
/// the given user, the engine folder mounted read-only.
fn hardened(engine_dir: &Path, user: &str) -> Vec<String> {
    [
        "--network",
        "none",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        "64m",
        "--pids-limit",
        "64",
        "--user",
        user,
        "--volume",
        &format!("{}:{ENGINE_DIR}:ro", engine_dir.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the janitor image once (`docker run --rm`) and returns its output.
async fn janitor(engine_dir: &Path, user: &str, args: &[&str]) -> Result<Output> {
    let mut argv = vec!["run".to_string(), "--rm".to_string()];
    argv.extend(hardened(engine_dir, user));
    argv.push(IMAGE.to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    docker(&argv).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The effective user ID of this process, from `/proc/self/status`.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Gives the socket and its folder to one group (owner and group only, as
/// a host's `docker` group), and returns that group.
fn restrict_to_group(socket: &Path) -> Result<u32> {
    let dir = socket.parent().context("the socket sits in a folder")?;
    let gid = if euid() == Some(0) {
        std::os::unix::fs::chown(socket, None, Some(SOCKET_GID))?;
        std::os::unix::fs::chown(dir, None, Some(SOCKET_GID))?;
        SOCKET_GID
    } else {
        // Not root: the nested engine already gave the socket our group,
        // and the folder is ours.
        std::fs::metadata(socket)?.gid()
    };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    Ok(gid)
}

fn ids_in(report: &serde_json::Value, field: &str) -> Result<BTreeSet<String>> {
    report[field]
        .as_array()
        .with_context(|| format!("`{field}` is not an array in {report}"))?
        .iter()
        .map(|entry| {
            entry["id"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("an entry of `{field}` has no id: {entry}"))
        })
        .collect()
}

/// Removes the detached `run` container even when an assertion fails.
struct RunningContainer(String);

impl Drop for RunningContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

#[tokio::test]
async fn the_hardened_image_removes_only_labelled_dangling_images() -> Result<()> {
    if !image_present().await? {
        bail!("{IMAGE} is not on the host engine; build it with `cargo xtask image`");
    }
    let engine = NestedEngine::start().await?;
    let engine_dir = engine
        .socket
        .parent()
        .context("the socket sits in a folder")?
        .to_path_buf();
    let gid = restrict_to_group(&engine.socket)?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("unlabelled"),
            ImageSpec::new("ours-tagged")
                .ours()
                .tagged("cascade-snapshot-p-w:latest"),
        ],
    )
    .await?;
    let before = all_image_ids(&engine.docker).await?;
    let member = format!("{JANITOR_UID}:{gid}");

    // Without the socket's group the non-root user cannot reach the engine:
    // the group is the only thing that grants access.
    let outsider = format!("{JANITOR_UID}:{JANITOR_UID}");
    let denied = janitor(
        &engine_dir,
        &outsider,
        &["doctor", "--docker-host", DOCKER_HOST],
    )
    .await?;
    assert_eq!(
        (denied.status.code(), text(&denied.stdout)),
        (Some(1), String::new()),
        "an outsider is refused before any output; stderr: {}",
        text(&denied.stderr)
    );
    assert!(
        text(&denied.stderr).contains("cannot reach the Docker engine"),
        "{}",
        text(&denied.stderr)
    );

    let doctor = janitor(
        &engine_dir,
        &member,
        &["doctor", "--docker-host", DOCKER_HOST],
    )
    .await?;
    let doctor_out = text(&doctor.stdout);
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "stdout: {doctor_out}\nstderr: {}",
        text(&doctor.stderr)
    );
    assert!(
        doctor_out.contains("reclaimable now: 1"),
        "doctor counts the one labelled dangling image: {doctor_out}"
    );

    let dry = janitor(
        &engine_dir,
        &member,
        &[
            "prune",
            "--dry-run",
            "--output",
            "json",
            "--docker-host",
            DOCKER_HOST,
            "--label",
            "cascade.managed=true",
            "--min-age",
            "10m",
        ],
    )
    .await?;
    ensure!(
        dry.status.success(),
        "prune --dry-run failed: {}",
        text(&dry.stderr)
    );
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout)?;
    assert_eq!(
        ids_in(&dry, "would_remove")?,
        BTreeSet::from([loaded["ours"].clone()])
    );
    assert_eq!(
        all_image_ids(&engine.docker).await?,
        before,
        "a dry run removes nothing"
    );

    let prune = janitor(
        &engine_dir,
        &member,
        &["prune", "--output", "json", "--docker-host", DOCKER_HOST],
    )
    .await?;
    ensure!(
        prune.status.success(),
        "prune failed: {}",
        text(&prune.stderr)
    );
    let prune: serde_json::Value = serde_json::from_slice(&prune.stdout)?;
    assert_eq!(
        ids_in(&prune, "removed")?,
        BTreeSet::from([loaded["ours"].clone()])
    );
    let mut expected = before.clone();
    expected.remove(&loaded["ours"]);
    assert_eq!(
        all_image_ids(&engine.docker).await?,
        expected,
        "only the labelled dangling image is gone; the unlabelled and the tagged one survive"
    );

    // The daemon in the same box: it sweeps at start, and `docker stop`
    // (SIGTERM to PID 1) ends it with exit 0.
    let second = fixtures::load(&engine.docker, &[ImageSpec::new("ours-2").ours()]).await?;
    let name = format!("cascade-janitor-image-test-{}", std::process::id());
    let mut argv = vec!["run", "--detach", "--name", &name];
    let hardening = hardened(&engine_dir, &member);
    argv.extend(hardening.iter().map(String::as_str));
    argv.extend([
        IMAGE,
        "run",
        "--docker-host",
        DOCKER_HOST,
        "--interval",
        "1h",
    ]);
    let started = docker(&argv).await?;
    ensure!(
        started.status.success(),
        "docker run --detach failed: {}",
        text(&started.stderr)
    );
    let container = RunningContainer(name.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while all_image_ids(&engine.docker)
        .await?
        .contains(&second["ours-2"])
    {
        if tokio::time::Instant::now() > deadline {
            let logs = docker(&["logs", &name]).await?;
            bail!(
                "`run` did not remove ours-2 within 120 s; its log:\n{}",
                text(&logs.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(all_image_ids(&engine.docker).await?, expected);
    let stopped = docker(&["stop", "--time", "30", &name]).await?;
    ensure!(stopped.status.success(), "{}", text(&stopped.stderr));
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]).await?;
    assert_eq!(
        text(&exit.stdout).trim(),
        "0",
        "SIGTERM ends `run` with exit 0; log:\n{}",
        text(&docker(&["logs", &name]).await?.stderr)
    );
    drop(container);

    engine.finish().await
}
