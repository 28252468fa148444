//! Nested engines and the host guard.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::query_parameters::ListImagesOptionsBuilder;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Built by `cargo xtask dind-image`.
pub const DIND_IMAGE: (&str, &str) = ("cascade-janitor-dind", "local");

/// Every image ID on an engine, including intermediates.
pub async fn all_image_ids(docker: &Docker) -> Result<BTreeSet<String>> {
    let options = ListImagesOptionsBuilder::new().all(true).build();
    let images = docker
        .list_images(Some(options))
        .await
        .context("listing images")?;
    Ok(images.into_iter().map(|i| i.id).collect())
}

/// Records the host engine's image IDs; [`HostGuard::check`] fails if they
/// changed. Tests never touch the host's images.
#[derive(Debug)]
pub struct HostGuard {
    host: Docker,
    before: BTreeSet<String>,
}

impl HostGuard {
    pub async fn record() -> Result<HostGuard> {
        let host = Docker::connect_with_defaults().context("connecting to the host engine")?;
        let before = all_image_ids(&host)
            .await
            .context("the host engine must be running")?;
        Ok(HostGuard { host, before })
    }

    pub async fn check(&self) -> Result<()> {
        let after = all_image_ids(&self.host).await?;
        anyhow::ensure!(
            after == self.before,
            "the host engine's images changed: removed {:?}, added {:?}",
            self.before.difference(&after).collect::<Vec<_>>(),
            after.difference(&self.before).collect::<Vec<_>>()
        );
        Ok(())
    }
}

/// A Docker engine inside a container on the host engine, reached over a
/// unix socket in a bind-mounted temporary folder (no TCP, no bridge).
pub struct NestedEngine {
    pub docker: Docker,
    pub socket: PathBuf,
    container: ContainerAsync<GenericImage>,
    guard: HostGuard,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for NestedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NestedEngine")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl NestedEngine {
    pub async fn start() -> Result<NestedEngine> {
        let guard = HostGuard::record().await?;
        let dir = tempfile::Builder::new().prefix("dind").tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let container = GenericImage::new(DIND_IMAGE.0, DIND_IMAGE.1)
            .with_wait_for(WaitFor::message_on_stderr(
                "API listen on /run/dind/docker.sock",
            ))
            // The socket belongs to our group, so a non-root test user in
            // the host's docker group (CI runners) can reach it too.
            .with_cmd([
                "--host=unix:///run/dind/docker.sock".to_string(),
                format!("--group={}", own_gid()),
            ])
            .with_cap_add("ALL")
            .with_cap_drop("SYS_RESOURCE")
            .with_security_opt("seccomp=unconfined")
            .with_security_opt("apparmor=unconfined")
            .with_network("none")
            .with_mount(Mount::bind_mount(
                dir.path().to_string_lossy().to_string(),
                "/run/dind",
            ))
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .context("starting the nested engine; run `cargo xtask dind-image` first")?;
        let docker = connect(&socket).await?;
        Ok(NestedEngine {
            docker,
            socket,
            container,
            guard,
            _dir: dir,
        })
    }

    /// `unix://` address of the nested engine, for `--docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The host's ID of the container the nested engine runs in.
    pub fn container_id(&self) -> &str {
        self.container.id()
    }

    /// Stops the nested engine's container (the engine goes away).
    pub async fn stop_engine(&self) -> Result<()> {
        self.container.stop_with_timeout(Some(5)).await?;
        Ok(())
    }

    /// Starts it again and waits until it answers.
    pub async fn start_engine(&self) -> Result<()> {
        self.container.start().await?;
        wait_until_answers(&self.docker).await
    }

    /// Checks the host guard and removes the nested engine.
    pub async fn finish(self) -> Result<()> {
        let NestedEngine {
            container, guard, ..
        } = self;
        container.rm().await?;
        guard.check().await
    }
}

/// This process's real group ID, from `/proc/self/status`.
fn own_gid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Gid:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

async fn connect(socket: &std::path::Path) -> Result<Docker> {
    let docker =
        Docker::connect_with_unix(&socket.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)?;
    wait_until_answers(&docker).await?;
    Ok(docker.negotiate_version().await?)
}

async fn wait_until_answers(docker: &Docker) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match docker.ping().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context("the nested engine did not answer within 30 s");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
