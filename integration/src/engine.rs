//! Nested engines of the engine matrix, and the host guard.
//!
//! `CASCADE_TEST_ENGINE` picks the [`MatrixEngine`] every [`NestedEngine`]
//! of a test process runs (`cargo xtask safety` sets it): `20.10` (the
//! default; classic store), `26.1-classic`, `26.1-containerd`,
//! `28.5-classic`, `28.5-containerd`, `podman-4.3`, `podman-5.4`,
//! `podman-5.8`, and outside the matrix `28.5-overlay2` (the classic store
//! on the graph driver production hosts run; its commits take milliseconds
//! where `vfs` takes a second, so the gentleness probe can see a
//! classic-store sweep). Each runs from the image `cargo xtask dind-image
//! --engine <image>` built; a Docker engine's store is chosen by a mounted
//! `/etc/docker/daemon.json`, Podman's is fixed in its image's entrypoint
//! (containers-storage, `vfs`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::query_parameters::ListImagesOptionsBuilder;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Repository of the images `cargo xtask dind-image` builds; the tag is
/// [`MatrixEngine::image_tag`].
pub const DIND_REPOSITORY: &str = "cascade-janitor-dind";

/// The environment variable that picks the engine.
pub const ENGINE_VAR: &str = "CASCADE_TEST_ENGINE";

/// Where [`known_gap`] appends its entries (set by `cargo xtask safety`).
pub const KNOWN_GAPS_VAR: &str = "CASCADE_KNOWN_GAPS_FILE";

/// The nested engine's socket, in the bind-mounted folder.
const SOCKET_INSIDE: &str = "/run/dind/docker.sock";

/// Which engine answers the Docker API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// dockerd (Debian's `docker.io`).
    Docker,
    /// `podman system service`, Podman's Docker-compatible API.
    Podman,
}

/// An image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Docker's graphdriver store (`vfs` here, `overlay2` for
    /// `28.5-overlay2`).
    Classic,
    /// Docker's containerd image store (overlayfs snapshotter).
    Containerd,
    /// Podman's containers-storage (`vfs` here): no containerd, no
    /// `moby-dangling@` names; to a Docker client its `/info` looks like a
    /// classic store's (`Driver` `vfs`).
    ContainersStorage,
}

/// One engine configuration of the test matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixEngine {
    pub family: Family,
    /// The engine's version: "20.10", "26.1", "28.5" (Docker), "4.3",
    /// "5.4", "5.8" (Podman).
    pub version: &'static str,
    pub store: Store,
    /// The classic store's graph driver; `overlay2` needs a host folder
    /// under it, as the containerd store's snapshotter does.
    pub overlay2: bool,
}

const fn docker(version: &'static str, store: Store) -> MatrixEngine {
    MatrixEngine {
        family: Family::Docker,
        version,
        store,
        overlay2: false,
    }
}

const fn podman(version: &'static str) -> MatrixEngine {
    MatrixEngine {
        family: Family::Podman,
        version,
        store: Store::ContainersStorage,
        overlay2: false,
    }
}

/// Every engine the harness knows, by name.
pub const ENGINES: &[(&str, MatrixEngine)] = &[
    ("20.10", docker("20.10", Store::Classic)),
    ("26.1-classic", docker("26.1", Store::Classic)),
    ("26.1-containerd", docker("26.1", Store::Containerd)),
    ("28.5-classic", docker("28.5", Store::Classic)),
    ("28.5-containerd", docker("28.5", Store::Containerd)),
    ("podman-4.3", podman("4.3")),
    ("podman-5.4", podman("5.4")),
    ("podman-5.8", podman("5.8")),
    // Not in `cargo xtask safety`'s default matrix; run it by name.
    (
        "28.5-overlay2",
        MatrixEngine {
            overlay2: true,
            ..docker("28.5", Store::Classic)
        },
    ),
];

impl MatrixEngine {
    /// The engine `CASCADE_TEST_ENGINE` names (default `20.10`).
    pub fn current() -> Result<MatrixEngine> {
        let name = std::env::var(ENGINE_VAR).unwrap_or_else(|_| "20.10".into());
        MatrixEngine::named(&name)
    }

    pub fn named(name: &str) -> Result<MatrixEngine> {
        let name = if name == "20.10-classic" {
            "20.10"
        } else {
            name
        };
        ENGINES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .with_context(|| {
                format!(
                    "{ENGINE_VAR}={name} is not an engine of the matrix; use one of {}",
                    ENGINES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Its name in the matrix, e.g. `28.5-containerd`.
    pub fn name(&self) -> &'static str {
        ENGINES
            .iter()
            .find(|(_, e)| e == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    /// The tag of its image in [`DIND_REPOSITORY`], which is also what
    /// `cargo xtask dind-image --engine` takes: the version for Docker,
    /// `podman-<version>` for Podman.
    pub fn image_tag(&self) -> String {
        match self.family {
            Family::Docker => self.version.to_string(),
            Family::Podman => format!("podman-{}", self.version),
        }
    }

    /// The API version the engine states in `GET /version`, which is the
    /// one the janitor speaks (bollard 0.21.1 knows up to 1.53).
    pub fn api_version(&self) -> &'static str {
        match (self.family, self.version) {
            (Family::Docker, "28.5") => "1.51",
            (Family::Docker, "26.1") => "1.45",
            (Family::Podman, "5.8") => "1.44",
            _ => "1.41",
        }
    }

    /// The `daemon.json` that picks a Docker engine's store; `None` for
    /// 20.10, whose image fixes `--storage-driver=vfs` on the command line
    /// (the same key in the file as well would stop dockerd), and for
    /// Podman, which reads no such file.
    fn daemon_json(&self) -> Option<&'static str> {
        match (self.family, self.version, self.store) {
            (Family::Podman, ..) | (_, _, Store::ContainersStorage) | (_, "20.10", _) => None,
            (_, _, Store::Classic) if self.overlay2 => {
                Some(r#"{"features":{"containerd-snapshotter":false},"storage-driver":"overlay2"}"#)
            }
            (_, _, Store::Classic) => {
                Some(r#"{"features":{"containerd-snapshotter":false},"storage-driver":"vfs"}"#)
            }
            (_, _, Store::Containerd) => Some(r#"{"features":{"containerd-snapshotter":true}}"#),
        }
    }

    /// Whether the store needs a host folder at `/var/lib/docker`:
    /// overlayfs cannot stack on the container's own overlay root, so the
    /// containerd store's snapshotter and `overlay2` need one.
    fn needs_data_folder(&self) -> bool {
        self.store == Store::Containerd || self.overlay2
    }
}

impl Family {
    /// The line on the engine's stderr that says it answers on the socket.
    /// Podman logs `msg="API service listening on \"/run/dind/docker.sock\".
    /// URI: ..."` (quotes escaped): the part before the path is matched.
    fn ready_message(self) -> String {
        match self {
            Family::Docker => format!("API listen on {SOCKET_INSIDE}"),
            Family::Podman => "API service listening on".to_string(),
        }
    }

    /// The container's command: the entrypoint (`cargo xtask dind-image`)
    /// is the engine, this names the socket. dockerd gives the socket to
    /// our group, so a non-root test user in the host's docker group (CI
    /// runners) can reach it too; podman has no such flag.
    fn command(self) -> Vec<String> {
        match self {
            Family::Docker => vec![
                format!("--host=unix://{SOCKET_INSIDE}"),
                format!("--group={}", own_gid()),
            ],
            Family::Podman => vec![format!("unix://{SOCKET_INSIDE}")],
        }
    }

    /// The run state folder, a tmpfs so it starts empty at every
    /// (re)start, as on a host whose /run is a tmpfs. 26.1 refuses to
    /// start when a killed run left /var/run/docker.pid naming PID 1
    /// ("process with PID 1 is still running"); `stop_engine` kills it
    /// when a held events stream outlasts the stop timeout. Podman keeps
    /// its runroot (`/run/containers/storage`) and service state under
    /// /run; the socket folder is mounted on top at /run/dind.
    fn run_tmpfs(self) -> &'static str {
        match self {
            Family::Docker => "/var/run",
            Family::Podman => "/run",
        }
    }
}

/// A test that cannot pass on the current engine because of a known
/// product gap outside the sweep (bollard calls, events, reclaimed space,
/// doctor): it returns `true` after saying so loudly, and the caller
/// returns early. This is the ONE list of such gaps: every call names the
/// engine(s) and the reason, and `cargo xtask safety` prints every entry it
/// met (from the file `CASCADE_KNOWN_GAPS_FILE` names).
///
/// ```ignore
/// if known_gap("a_test", &["28.5-containerd"], "events carry no labels") {
///     return Ok(());
/// }
/// ```
pub fn known_gap(test: &str, engines: &[&str], reason: &str) -> bool {
    let Ok(engine) = MatrixEngine::current() else {
        return false;
    };
    let file = std::env::var_os(KNOWN_GAPS_VAR).map(PathBuf::from);
    record_gap(engine, test, engines, reason, file.as_deref())
}

fn record_gap(
    engine: MatrixEngine,
    test: &str,
    engines: &[&str],
    reason: &str,
    file: Option<&std::path::Path>,
) -> bool {
    if !engines.contains(&engine.name()) {
        return false;
    }
    let line = format!("{test} on {}: {reason}", engine.name());
    eprintln!("KNOWN GAP (not a pass): {line}");
    if let Some(path) = file {
        use std::io::Write;
        // One short line per write, appended: parallel tests do not mix.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
    true
}

/// Every image ID on an engine, including intermediates.
///
/// On the containerd store (28.5 seen) a listing that overlaps a removal
/// can fail with 404 "content digest ...: not found": the image was in the
/// store's list when the listing began and its content was gone when it was
/// read. A test that polls while the janitor removes meets that, so a 404
/// is asked again (a few times); the classic store never answers 404 here.
pub async fn all_image_ids(docker: &Docker) -> Result<BTreeSet<String>> {
    let mut attempts = 0;
    loop {
        let options = ListImagesOptionsBuilder::new().all(true).build();
        match docker.list_images(Some(options)).await {
            Ok(images) => return Ok(images.into_iter().map(|i| i.id).collect()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e).context("listing images"),
        }
    }
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

impl HostGuard {
    /// Fails only if an image of the host's went away: images that other
    /// work on a shared host adds during a long run are not this
    /// harness's doing.
    pub async fn check_none_removed(&self) -> Result<()> {
        let after = all_image_ids(&self.host).await?;
        let removed: Vec<&String> = self.before.difference(&after).collect();
        anyhow::ensure!(
            removed.is_empty(),
            "the host engine's images changed: removed {removed:?}"
        );
        Ok(())
    }
}

/// A Docker engine inside a container on the host engine, reached over a
/// unix socket in a bind-mounted temporary folder (no TCP, no bridge).
pub struct NestedEngine {
    pub docker: Docker,
    pub socket: PathBuf,
    /// Which engine of the matrix this is.
    pub engine: MatrixEngine,
    container: ContainerAsync<GenericImage>,
    guard: HostGuard,
    _dir: tempfile::TempDir,
    /// `daemon.json` and the containerd store's `/var/lib/docker`.
    _state: tempfile::TempDir,
}

impl std::fmt::Debug for NestedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NestedEngine")
            .field("engine", &self.engine.name())
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl NestedEngine {
    /// Starts the engine `CASCADE_TEST_ENGINE` names. Every error names
    /// the engine, so a failure in the matrix says where it happened.
    pub async fn start() -> Result<NestedEngine> {
        let engine = MatrixEngine::current()?;
        NestedEngine::start_on(engine)
            .await
            .with_context(|| format!("on engine {}", engine.name()))
    }

    /// Starts a given engine of the matrix, whatever `CASCADE_TEST_ENGINE`
    /// says (the benchmarks take it from `--engine`).
    pub async fn start_named(name: &str) -> Result<NestedEngine> {
        let engine = MatrixEngine::named(name)?;
        NestedEngine::start_on(engine)
            .await
            .with_context(|| format!("on engine {}", engine.name()))
    }

    async fn start_on(engine: MatrixEngine) -> Result<NestedEngine> {
        let guard = HostGuard::record().await?;
        let dir = tempfile::Builder::new().prefix("dind").tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let mut image = GenericImage::new(DIND_REPOSITORY, engine.image_tag().as_str())
            .with_wait_for(WaitFor::message_on_stderr(engine.family.ready_message()))
            .with_cmd(engine.family.command())
            .with_cap_add("ALL")
            .with_cap_drop("SYS_RESOURCE")
            .with_security_opt("seccomp=unconfined")
            .with_security_opt("apparmor=unconfined")
            .with_network("none")
            .with_mount(Mount::bind_mount(
                dir.path().to_string_lossy().to_string(),
                "/run/dind",
            ))
            .with_mount(Mount::tmpfs_mount(engine.family.run_tmpfs()));
        // Kept out of the socket folder, which tests hand to other
        // containers (tests/image.rs mounts it into the janitor's).
        let state = tempfile::Builder::new()
            .prefix("dind-state")
            .tempdir_in("/tmp")?;
        if let Some(json) = engine.daemon_json() {
            let config = state.path().join("config");
            std::fs::create_dir(&config)?;
            std::fs::write(config.join("daemon.json"), json)?;
            image = image.with_mount(Mount::bind_mount(
                config.to_string_lossy().to_string(),
                "/etc/docker",
            ));
        }
        if engine.needs_data_folder() {
            let data = state.path().join("data");
            std::fs::create_dir(&data)?;
            image = image.with_mount(Mount::bind_mount(
                data.to_string_lossy().to_string(),
                "/var/lib/docker",
            ));
        }
        let container = image
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .with_context(|| {
                let tag = engine.image_tag();
                format!(
                    "starting the nested engine from {DIND_REPOSITORY}:{tag}; run `cargo xtask dind-image --engine {tag}` first"
                )
            })?;
        let docker = connect(&socket).await?;
        Ok(NestedEngine {
            docker,
            socket,
            engine,
            container,
            guard,
            _dir: dir,
            _state: state,
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

    /// Sends `signal` to the engine, the nested container's first process,
    /// from the host: `SIGSTOP` freezes it, `SIGCONT` resumes it.
    pub async fn signal_engine(&self, signal: &str) -> Result<()> {
        let host = Docker::connect_with_defaults().context("connecting to the host engine")?;
        let options = bollard::query_parameters::KillContainerOptionsBuilder::new()
            .signal(signal)
            .build();
        host.kill_container(self.container.id(), Some(options))
            .await
            .with_context(|| format!("sending {signal} to the nested engine"))
    }

    /// SIGKILLs the engine (its container ends with it) and waits until
    /// the host says the container is no longer running.
    pub async fn kill_engine(&self) -> Result<()> {
        self.signal_engine("SIGKILL").await?;
        let host = Docker::connect_with_defaults()?;
        let id = self.container.id().to_string();
        crate::wait_until(Duration::from_secs(30), "the killed engine to stop", || {
            let host = host.clone();
            let id = id.clone();
            async move {
                host.inspect_container(&id, None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running)
                    == Some(false)
            }
        })
        .await
    }

    /// Starts it again and waits until it answers.
    pub async fn start_engine(&self) -> Result<()> {
        self.container.start().await?;
        wait_until_answers(&self.docker).await
    }

    /// Removes the nested engine and checks that no image of the host's
    /// went away ([`HostGuard::check_none_removed`]): for the soak, whose
    /// half hour on a shared host sees other work add images.
    pub async fn finish_long(self) -> Result<()> {
        let NestedEngine {
            container, guard, ..
        } = self;
        container.rm().await?;
        guard.check_none_removed().await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip_and_a_typo_names_the_choices() {
        for (name, engine) in ENGINES {
            assert_eq!(MatrixEngine::named(name).expect("known"), *engine);
            assert_eq!(engine.name(), *name);
        }
        assert_eq!(
            MatrixEngine::named("20.10-classic").expect("alias"),
            MatrixEngine::named("20.10").expect("known")
        );
        let error = MatrixEngine::named("28.5-containred")
            .expect_err("typo")
            .to_string();
        assert!(error.contains("28.5-containerd"), "{error}");
        assert_eq!(
            MatrixEngine::named("20.10").expect("known").daemon_json(),
            None
        );
        assert!(
            MatrixEngine::named("26.1-containerd")
                .expect("known")
                .daemon_json()
                .is_some_and(|j| j.contains(r#""containerd-snapshotter":true"#))
        );
        let overlay2 = MatrixEngine::named("28.5-overlay2").expect("known");
        assert_eq!(overlay2.store, Store::Classic);
        assert!(
            overlay2
                .daemon_json()
                .is_some_and(|j| j.contains(r#""storage-driver":"overlay2""#)
                    && j.contains(r#""containerd-snapshotter":false"#))
        );
    }

    #[test]
    fn podman_engines_run_their_own_image_on_containers_storage() {
        for (name, version) in [
            ("podman-4.3", "4.3"),
            ("podman-5.4", "5.4"),
            ("podman-5.8", "5.8"),
        ] {
            let engine = MatrixEngine::named(name).expect("known");
            assert_eq!(engine.family, Family::Podman);
            assert_eq!(engine.version, version);
            assert_eq!(engine.store, Store::ContainersStorage);
            assert_eq!(
                engine.image_tag(),
                name,
                "the image is named like the engine"
            );
            assert_eq!(engine.daemon_json(), None, "Podman reads no daemon.json");
            assert!(!engine.needs_data_folder());
        }
        assert_eq!(
            MatrixEngine::named("podman-5.8")
                .expect("known")
                .api_version(),
            "1.44"
        );
        assert_eq!(
            MatrixEngine::named("podman-4.3")
                .expect("known")
                .api_version(),
            "1.41"
        );
        assert_eq!(Family::Podman.run_tmpfs(), "/run");
        assert_eq!(Family::Podman.command(), ["unix:///run/dind/docker.sock"]);
        // Podman escapes the quotes around the path in its log line.
        let logged = r#"level=info msg="API service listening on \"/run/dind/docker.sock\". URI: \"unix:///run/dind/docker.sock\"""#;
        assert!(logged.contains(&Family::Podman.ready_message()));
    }

    #[test]
    fn docker_engines_keep_their_images_stores_and_socket() {
        let on = |name| MatrixEngine::named(name).expect("known");
        for (name, tag, api) in [
            ("20.10", "20.10", "1.41"),
            ("26.1-classic", "26.1", "1.45"),
            ("26.1-containerd", "26.1", "1.45"),
            ("28.5-classic", "28.5", "1.51"),
            ("28.5-containerd", "28.5", "1.51"),
            ("28.5-overlay2", "28.5", "1.51"),
        ] {
            assert_eq!(on(name).family, Family::Docker, "{name}");
            assert_eq!(on(name).image_tag(), tag, "{name}");
            assert_eq!(on(name).api_version(), api, "{name}");
        }
        assert!(on("26.1-containerd").needs_data_folder());
        assert!(on("28.5-overlay2").needs_data_folder());
        assert!(!on("28.5-classic").needs_data_folder());
        assert_eq!(Family::Docker.run_tmpfs(), "/var/run");
        assert_eq!(
            Family::Docker.command()[0],
            "--host=unix:///run/dind/docker.sock"
        );
        assert_eq!(
            Family::Docker.ready_message(),
            "API listen on /run/dind/docker.sock"
        );
    }

    #[test]
    fn a_known_gap_applies_to_its_engines_only_and_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gaps");
        let on = |name| MatrixEngine::named(name).expect("known");
        assert!(!record_gap(
            on("20.10"),
            "t",
            &["28.5-containerd"],
            "why",
            Some(&file)
        ));
        assert!(!file.exists(), "nothing recorded for another engine");
        assert!(record_gap(
            on("28.5-containerd"),
            "t",
            &["28.5-containerd"],
            "why",
            Some(&file)
        ));
        assert_eq!(
            std::fs::read_to_string(&file).expect("recorded"),
            "t on 28.5-containerd: why\n"
        );
    }
}
