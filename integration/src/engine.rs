//! Nested engines of the engine matrix, and the host guard.
//!
//! `CASCADE_TEST_ENGINE` picks the engine every [`NestedEngine`] of a test
//! process runs (`cargo xtask safety` sets it): `20.10` (the default;
//! classic store), `26.1-classic`, `26.1-containerd`, `28.5-classic`,
//! `28.5-containerd`, and outside the matrix `28.5-overlay2` (the classic
//! store on the graph driver production hosts run; its commits take
//! milliseconds where `vfs` takes a second, so the gentleness probe can see
//! a classic-store sweep). The version picks the image `cargo xtask
//! dind-image --engine <version>` built; the store is chosen by a mounted
//! `/etc/docker/daemon.json`.

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
/// the engine version.
pub const DIND_REPOSITORY: &str = "cascade-janitor-dind";

/// The environment variable that picks the engine.
pub const ENGINE_VAR: &str = "CASCADE_TEST_ENGINE";

/// Where [`known_gap`] appends its entries (set by `cargo xtask safety`).
pub const KNOWN_GAPS_VAR: &str = "CASCADE_KNOWN_GAPS_FILE";

/// An image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The graphdriver store (`vfs` here, `overlay2` for `28.5-overlay2`).
    Classic,
    /// The containerd image store (overlayfs snapshotter).
    Containerd,
}

/// One engine configuration of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    /// "20.10", "26.1" or "28.5": the tag of its dind image.
    pub version: &'static str,
    pub store: Store,
    /// The classic store's graph driver; `overlay2` needs a host folder
    /// under it, as the containerd store's snapshotter does.
    pub overlay2: bool,
}

/// Every engine the harness knows, by name.
pub const ENGINES: &[(&str, Engine)] = &[
    (
        "20.10",
        Engine {
            version: "20.10",
            store: Store::Classic,
            overlay2: false,
        },
    ),
    (
        "26.1-classic",
        Engine {
            version: "26.1",
            store: Store::Classic,
            overlay2: false,
        },
    ),
    (
        "26.1-containerd",
        Engine {
            version: "26.1",
            store: Store::Containerd,
            overlay2: false,
        },
    ),
    (
        "28.5-classic",
        Engine {
            version: "28.5",
            store: Store::Classic,
            overlay2: false,
        },
    ),
    (
        "28.5-containerd",
        Engine {
            version: "28.5",
            store: Store::Containerd,
            overlay2: false,
        },
    ),
    // Not in `cargo xtask safety`'s default matrix; run it by name.
    (
        "28.5-overlay2",
        Engine {
            version: "28.5",
            store: Store::Classic,
            overlay2: true,
        },
    ),
];

impl Engine {
    /// The engine `CASCADE_TEST_ENGINE` names (default `20.10`).
    pub fn current() -> Result<Engine> {
        let name = std::env::var(ENGINE_VAR).unwrap_or_else(|_| "20.10".into());
        Engine::named(&name)
    }

    pub fn named(name: &str) -> Result<Engine> {
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

    /// The `daemon.json` that picks the store; `None` for 20.10, whose
    /// image fixes `--storage-driver=vfs` on the command line (the same key
    /// in the file as well would stop dockerd).
    fn daemon_json(&self) -> Option<&'static str> {
        match (self.version, self.store) {
            ("20.10", _) => None,
            (_, Store::Classic) if self.overlay2 => {
                Some(r#"{"features":{"containerd-snapshotter":false},"storage-driver":"overlay2"}"#)
            }
            (_, Store::Classic) => {
                Some(r#"{"features":{"containerd-snapshotter":false},"storage-driver":"vfs"}"#)
            }
            (_, Store::Containerd) => Some(r#"{"features":{"containerd-snapshotter":true}}"#),
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
    let Ok(engine) = Engine::current() else {
        return false;
    };
    let file = std::env::var_os(KNOWN_GAPS_VAR).map(PathBuf::from);
    record_gap(engine, test, engines, reason, file.as_deref())
}

fn record_gap(
    engine: Engine,
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

/// A Docker engine inside a container on the host engine, reached over a
/// unix socket in a bind-mounted temporary folder (no TCP, no bridge).
pub struct NestedEngine {
    pub docker: Docker,
    pub socket: PathBuf,
    /// Which engine of the matrix this is.
    pub engine: Engine,
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
        let engine = Engine::current()?;
        NestedEngine::start_on(engine)
            .await
            .with_context(|| format!("on engine {}", engine.name()))
    }

    /// Starts a given engine of the matrix, whatever `CASCADE_TEST_ENGINE`
    /// says (the benchmarks take it from `--engine`).
    pub async fn start_named(name: &str) -> Result<NestedEngine> {
        let engine = Engine::named(name)?;
        NestedEngine::start_on(engine)
            .await
            .with_context(|| format!("on engine {}", engine.name()))
    }

    async fn start_on(engine: Engine) -> Result<NestedEngine> {
        let guard = HostGuard::record().await?;
        let dir = tempfile::Builder::new().prefix("dind").tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let mut image = GenericImage::new(DIND_REPOSITORY, engine.version)
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
            // Run state starts empty at every (re)start, as on a host
            // whose /run is a tmpfs. 26.1 refuses to start when a killed
            // run left /var/run/docker.pid naming PID 1 ("process with PID
            // 1 is still running"); `stop_engine` kills it when a held
            // events stream outlasts the stop timeout.
            .with_mount(Mount::tmpfs_mount("/var/run"));
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
        if engine.store == Store::Containerd || engine.overlay2 {
            // overlayfs cannot stack on the container's own overlay root:
            // the snapshotter (and overlay2) needs a host folder.
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
                format!(
                    "starting the nested engine from {DIND_REPOSITORY}:{}; run `cargo xtask dind-image --engine {}` first",
                    engine.version, engine.version
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip_and_a_typo_names_the_choices() {
        for (name, engine) in ENGINES {
            assert_eq!(Engine::named(name).expect("known"), *engine);
            assert_eq!(engine.name(), *name);
        }
        assert_eq!(
            Engine::named("20.10-classic").expect("alias"),
            Engine::named("20.10").expect("known")
        );
        let error = Engine::named("28.5-containred")
            .expect_err("typo")
            .to_string();
        assert!(error.contains("28.5-containerd"), "{error}");
        assert_eq!(Engine::named("20.10").expect("known").daemon_json(), None);
        assert!(
            Engine::named("26.1-containerd")
                .expect("known")
                .daemon_json()
                .is_some_and(|j| j.contains(r#""containerd-snapshotter":true"#))
        );
        let overlay2 = Engine::named("28.5-overlay2").expect("known");
        assert_eq!(overlay2.store, Store::Classic);
        assert!(
            overlay2
                .daemon_json()
                .is_some_and(|j| j.contains(r#""storage-driver":"overlay2""#)
                    && j.contains(r#""containerd-snapshotter":false"#))
        );
    }

    #[test]
    fn a_known_gap_applies_to_its_engines_only_and_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gaps");
        let on = |name| Engine::named(name).expect("known");
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
