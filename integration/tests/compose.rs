//! `deploy/compose.yaml` brought up, not only read, with Debian's Compose v2
//! (trixie's `docker-compose` 2.26, which `cargo xtask safety` fetches to
//! `target/compose/`): the janitor's service comes up with its
//! least-privilege settings, sweeps the engine whose socket it mounts (a
//! labelled dangling image goes, a bystander stays), answers `/healthz`,
//! and `down` stops it with exit 0.
//!
//! The service runs on the host engine, as `tests/image.rs` runs the
//! image, and mounts the nested engine's socket (`DOCKER_SOCKET`, which the
//! file reads with `/var/run/docker.sock` as default). The only change to
//! the file is the one it documents for metrics: `network_mode: host` and
//! `--metrics-addr`, given as a second Compose file, with a 1 s interval
//! and no minimum age so the sweep comes at once.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use integration::daemon::http_get;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::{NestedEngine, wait_until};

const IMAGE: &str = "cascade-janitor:local";
const SERVING: &str = "serving /metrics and /healthz on http://127.0.0.1:";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `docker compose` with the project's files, a project name of the
/// test's own, and a CLI folder holding Debian's Compose plugin.
struct Compose {
    project: String,
    cli: tempfile::TempDir,
    overlay: PathBuf,
    vars: BTreeMap<&'static str, String>,
}

impl Compose {
    fn new(socket: &Path) -> Result<Compose> {
        let plugin = root().join("target/compose/docker-compose");
        ensure!(
            plugin.exists(),
            "{} is missing: `cargo xtask safety` fetches Debian trixie's docker-compose",
            plugin.display()
        );
        let cli = tempfile::Builder::new().prefix("compose-cli").tempdir()?;
        std::fs::create_dir(cli.path().join("cli-plugins"))?;
        std::os::unix::fs::symlink(&plugin, cli.path().join("cli-plugins/docker-compose"))?;
        let overlay = cli.path().join("metrics.yaml");
        std::fs::write(
            &overlay,
            r#"services:
  cascade-janitor:
    network_mode: host
    command: ["run", "--config", "/etc/cascade-janitor/config.toml",
              "--metrics-addr", "127.0.0.1:0", "--interval", "1s", "--min-age", "0s", "--no-events"]
"#,
        )?;
        let gid = std::fs::metadata(socket)?.gid();
        let vars = BTreeMap::from([
            ("DOCKER_SOCKET", socket.display().to_string()),
            ("DOCKER_GID", gid.to_string()),
        ]);
        Ok(Compose {
            project: format!("cascade-janitor-test-{}", std::process::id()),
            cli,
            overlay,
            vars,
        })
    }

    fn run(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = Command::new("docker")
            .arg("compose")
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(root().join("deploy/compose.yaml"))
            .arg("--file")
            .arg(&self.overlay)
            .args(args)
            .env("DOCKER_CONFIG", self.cli.path())
            .env_remove("DOCKER_HOST")
            .env_remove("SENTRY_DSN")
            .envs(&self.vars)
            .output()
            .context("docker compose")?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn container(&self) -> Result<String> {
        let (code, stdout, stderr) = self.run(&["ps", "--all", "--quiet", "cascade-janitor"])?;
        ensure!(code == 0, "docker compose ps: {stderr}");
        stdout
            .lines()
            .next()
            .map(str::to_string)
            .context("no container for the service")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--timeout", "5"]);
    }
}

fn inspect(container: &str) -> Result<serde_json::Value> {
    let out = Command::new("docker")
        .args(["inspect", container])
        .output()?;
    ensure!(out.status.success(), "docker inspect {container}");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(all[0].clone())
}

#[tokio::test]
async fn compose_brings_the_janitor_up_with_its_restrictions_and_down_cleanly() -> Result<()> {
    let image = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()?;
    if !image.status.success() {
        bail!("{IMAGE} is not on the host engine; build it with `cargo xtask image`");
    }
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("bystander"),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let id = |name: &str| fixtures::listed_id(&loaded[name]);

    let compose = Compose::new(&engine.socket)?;
    let (code, _, stderr) = compose.run(&["up", "--detach"])?;
    ensure!(code == 0, "docker compose up: {stderr}");
    let container = compose.container()?;

    // The file's restrictions, as the engine applied them.
    let c = inspect(&container)?;
    let host = &c["HostConfig"];
    assert_eq!(c["Config"]["User"], "65532:65532");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges:true"])
    );
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Privileged"], false);
    let gid = compose.vars["DOCKER_GID"].clone();
    assert_eq!(host["GroupAdd"], serde_json::json!([gid]));
    let mounts = c["Mounts"].as_array().context("mounts")?;
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    assert!(mounts.iter().all(|m| m["RW"] == false), "{mounts:?}");

    // It sweeps the engine it mounts: ours goes, the others stay.
    let expected = [id("bystander"), id("mysql")];
    wait_until(
        Duration::from_secs(60),
        "the labelled image swept",
        || async {
            all_image_ids(d)
                .await
                .map(|ids| !ids.iter().any(|i| fixtures::listed_id(i) == id("ours")))
                .unwrap_or(false)
        },
    )
    .await?;
    let left: Vec<String> = all_image_ids(d)
        .await?
        .iter()
        .map(|i| fixtures::listed_id(i))
        .collect();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(left, expected);

    // /healthz answers on the address the janitor logged.
    let mut port = None;
    wait_until(
        Duration::from_secs(30),
        "the metrics address in the log",
        || {
            let logs = compose.run(&["logs", "--no-color", "cascade-janitor"]);
            let found = logs.ok().and_then(|(_, out, err)| {
                let all = format!("{out}{err}");
                let rest = all.split(SERVING).nth(1)?.to_string();
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u16>()
                    .ok()
            });
            port = port.or(found);
            async move { found.is_some() }
        },
    )
    .await?;
    let port = port.context("port")?;
    wait_until(Duration::from_secs(30), "/healthz 200", || async {
        http_get(port, "/healthz")
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
    })
    .await?;

    // stop: SIGTERM, the janitor exits 0 within stop_grace_period; down
    // removes the container.
    let (code, _, stderr) = compose.run(&["stop"])?;
    ensure!(code == 0, "docker compose stop: {stderr}");
    let stopped = inspect(&container)?;
    assert_eq!(stopped["State"]["ExitCode"], 0, "{}", stopped["State"]);
    assert_eq!(stopped["State"]["OOMKilled"], false);
    let (code, _, stderr) = compose.run(&["down"])?;
    ensure!(code == 0, "docker compose down: {stderr}");
    let (_, remaining, _) = compose.run(&["ps", "--all", "--quiet"])?;
    assert_eq!(remaining.trim(), "");

    engine.finish().await
}
