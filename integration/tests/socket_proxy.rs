//! The janitor behind the socket proxy of `deploy/socket-proxy/`
//! (`[ref:engine_endpoints]`): Debian's haproxy, run with the committed
//! configuration, in front of a nested engine, with the recording proxy of
//! `integration::proxy` between haproxy and the engine to see what reaches
//! the engine.
//!
//! - `doctor`, `prune --dry-run` and `run` (with events) work through it:
//!   the labelled dangling images go, early sweeps from events come, the
//!   bystanders stay, and the janitor meets no refusal; every call it
//!   sent is a row of `ENDPOINTS`, and every row was sent.
//! - Calls the janitor never makes are answered 403 by haproxy and never
//!   reach the engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use cascade_cleanup::RemovalMethod;
use cascade_engine::endpoints::{ENDPOINTS, endpoint_of};
use integration::engine::{Family, all_image_ids};
use integration::fixtures::{self, ImageSpec};
use integration::proxy::FaultProxy;
use integration::{NestedEngine, StderrLog, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long each step may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(60);

/// What haproxy answers a refused call with (the configuration's body).
const REFUSED: &str = "refused by the socket proxy";

/// haproxy running `deploy/socket-proxy/haproxy.cfg` as committed, its
/// socket in a folder of its own, forwarding to `upstream`. Killed on drop.
struct SocketProxy {
    socket: PathBuf,
    child: tokio::process::Child,
    log: StderrLog,
    _dir: tempfile::TempDir,
}

impl SocketProxy {
    async fn start(upstream: &Path) -> Result<SocketProxy> {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/socket-proxy/haproxy.cfg")
            .canonicalize()
            .context("deploy/socket-proxy/haproxy.cfg")?;
        let dir = tempfile::Builder::new()
            .prefix("socket-proxy")
            .tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let mut child = tokio::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("CASCADE_ENGINE_SOCKET", upstream)
            .env("CASCADE_PROXY_SOCKET", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context(
                "cannot run haproxy; it ships in Debian's `haproxy` package (.ci/run installs it)",
            )?;
        let log = StderrLog::collect(&mut child);
        let mut proxy = SocketProxy {
            socket,
            child,
            log,
            _dir: dir,
        };
        let socket = proxy.socket.clone();
        let started = wait_until(LIMIT, "haproxy to listen", || {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(&socket).await.is_ok() }
        })
        .await;
        if let Err(e) = started {
            let exited = proxy.child.try_wait()?;
            anyhow::bail!(
                "{e}; haproxy exited: {exited:?}; its log: {:?}",
                proxy.log.lines()
            );
        }
        Ok(proxy)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Sends one request as written (no normalisation of any kind) and
    /// returns the status and body of the answer.
    async fn raw(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        let mut stream = tokio::net::UnixStream::connect(&self.socket).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tokio::time::timeout(LIMIT, stream.read_to_end(&mut answer)).await??;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line in {answer:?}"))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

/// Runs a one-shot command of the janitor on `host`: exit code and output.
async fn janitor(args: &[&str], host: &str) -> Result<(Option<i32>, String)> {
    let out = integration::janitor()
        .args(args)
        .args(["--docker-host", host])
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text))
}

#[tokio::test]
async fn the_janitor_works_through_the_socket_proxy_and_calls_only_its_endpoints() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let recorder = FaultProxy::start(&engine.socket)?;
    let proxy = SocketProxy::start(&recorder.socket).await?;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("bystander"),
            ImageSpec::new("lookalike").label("cascade.managed", "True"),
            ImageSpec::new("current")
                .ours()
                .tagged("cascade-snapshot-p-1:latest"),
            ImageSpec::new("base").tagged("base:1"),
        ],
    )
    .await?;
    // A labelled snapshot committed twice under one tag: the first is
    // dangling, built on the unlabelled `base:1` (a parent the plan
    // inspects, since no listing of labelled images holds it).
    let worker = fixtures::create_container(d, "base:1").await?;
    let labels = [("cascade.managed", "true")];
    let first = fixtures::commit(d, &worker, "snap", "1", &labels).await?;
    let second = fixtures::commit(d, &worker, "snap", "1", &labels).await?;
    let before = all_image_ids(d).await?;
    assert!(before.contains(&first) && before.contains(&second));

    let (code, out) = janitor(&["doctor"], &proxy.host()).await?;
    assert_eq!(code, Some(0), "doctor through the proxy:\n{out}");
    assert!(!out.contains(REFUSED), "{out}");

    let (code, out) = janitor(&["prune", "--dry-run", "--min-age", "0s"], &proxy.host()).await?;
    assert_eq!(code, Some(0), "the plan through the proxy:\n{out}");
    assert!(!out.contains(REFUSED), "{out}");
    assert_eq!(all_image_ids(d).await?, before, "a plan removes nothing");

    let mut daemon = integration::janitor()
        .args([
            "run",
            "--min-age",
            "0s",
            "--interval",
            "1h",
            "--timeout",
            "30s",
        ])
        // Early sweeps a second after an event, so they are seen soon.
        .args(["--min-sweep-gap", "1s", "--event-debounce", "1s"])
        .args(["--docker-host", &proxy.host()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let log = StderrLog::collect(&mut daemon);
    let gone =
        |id: String| async move { all_image_ids(d).await.is_ok_and(|ids| !ids.contains(&id)) };
    wait_until(
        LIMIT,
        "the first pass to remove the labelled dangling images",
        || {
            let (ours, first) = (loaded["ours"].clone(), first.clone());
            async move { gone(ours).await && gone(first).await }
        },
    )
    .await?;
    wait_until(LIMIT, "the event follower to subscribe", || async {
        recorder.subscriptions() >= 1
    })
    .await?;
    // The interval is an hour: only an event can bring the next pass. The
    // follower may still be subscribing on a loaded machine, so commit
    // again (another orphan, more events) until a pass removes every
    // snapshot the commits orphaned.
    let mut latest = second.clone();
    let mut orphans = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let next = fixtures::commit(d, &worker, "snap", "1", &labels).await?;
        orphans.push(std::mem::replace(&mut latest, next));
        let all_gone = || async {
            all_image_ids(d)
                .await
                .is_ok_and(|ids| orphans.iter().all(|o| !ids.contains(o)))
        };
        // A commit is not repeated while the pass it asked for may still
        // come: the engine can fail a commit that moves a tag off an image
        // being removed.
        if wait_until(Duration::from_secs(20), "an early sweep", all_gone)
            .await
            .is_ok()
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no early sweep from events removed {orphans:?}; the daemon's log: {:#?}; haproxy's log: {:#?}",
            log.lines(),
            proxy.log.lines()
        );
    }
    assert!(daemon.try_wait()?.is_none(), "run is still running");
    let pid = daemon.id().context("running")?.to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    let status = tokio::time::timeout(LIMIT, daemon.wait()).await??;
    let lines = log.finish().await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM is a clean shutdown:\n{lines:#?}"
    );
    let refused: Vec<&String> = lines.iter().filter(|l| l.contains(REFUSED)).collect();
    assert!(
        refused.is_empty(),
        "the janitor met a refusal: {refused:#?}"
    );
    // haproxy's own word: a request it answered itself (denied) is logged
    // with the termination state `PR--`.
    let denied: Vec<String> = proxy
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains(" PR-- "))
        .collect();
    assert!(
        denied.is_empty(),
        "haproxy refused the janitor: {denied:#?}"
    );

    let expected: BTreeSet<String> = [
        &loaded["bystander"],
        &loaded["lookalike"],
        &loaded["current"],
        &loaded["base"],
        &latest,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(
        all_image_ids(d).await?,
        expected,
        "only the labelled dangling images were removed"
    );

    // Every call the janitor sent is a row; every row was sent, except
    // the removal name's tag where the janitor removes by moby-dangling@.
    let calls = recorder.paths();
    let strays: Vec<&String> = calls
        .iter()
        .filter(|call| {
            let (method, path) = call.split_once(' ').unwrap_or_default();
            endpoint_of(method, path).is_none()
        })
        .collect();
    assert!(strays.is_empty(), "calls outside ENDPOINTS: {strays:?}");
    // The Docker-compatible API in the version the engine states (Podman
    // included: never its libpod paths); only the negotiation's own
    // `GET /version` goes unversioned.
    let api = engine.engine.api_version();
    let unversioned: Vec<&String> = calls
        .iter()
        .filter(|call| {
            *call != "GET /version"
                && !call
                    .split_once(' ')
                    .is_some_and(|(_, path)| path.starts_with(&format!("/v{api}/")))
        })
        .collect();
    assert!(
        unversioned.is_empty(),
        "calls not in API {api}: {unversioned:?}"
    );
    let used: BTreeSet<(&str, &str)> = calls
        .iter()
        .filter_map(|call| {
            let (method, path) = call.split_once(' ')?;
            endpoint_of(method, path).map(|e| (e.method, e.path))
        })
        .collect();
    let strategy = integration::removal_strategy(&engine).await?;
    let wanted: BTreeSet<(&str, &str)> = ENDPOINTS
        .iter()
        .filter(|e| {
            !(e.method == "POST"
                && e.path == "/images/{name}/tag"
                && strategy.method == RemovalMethod::DanglingName)
        })
        .map(|e| (e.method, e.path))
        .collect();
    assert_eq!(
        used,
        wanted,
        "rows sent on {} ({:?}); calls: {calls:#?}",
        engine.engine.name(),
        engine.engine.family
    );
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn calls_the_janitor_never_makes_are_refused_and_never_reach_the_engine() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let recorder = FaultProxy::start(&engine.socket)?;
    let proxy = SocketProxy::start(&recorder.socket).await?;
    let api = engine.engine.api_version();
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("base").tagged("base:1")]).await?;
    let create = r#"{"Image":"base:1","Cmd":["/fixture"],"NetworkDisabled":true}"#;
    let libpod = match engine.engine.family {
        Family::Podman => "/v4.0.0/libpod/containers/create",
        Family::Docker => "/v1.41/libpod/containers/create",
    };
    let forbidden: Vec<(&str, String, &str)> = vec![
        ("POST", format!("/v{api}/containers/create"), create),
        ("POST", "/containers/create".into(), create),
        (
            "POST",
            format!("/v{api}/images/create?fromImage=base&tag=2"),
            "",
        ),
        ("DELETE", format!("/v{api}/containers/x"), ""),
        ("POST", format!("/v{api}/build"), ""),
        ("GET", format!("/v{api}/containers/x/archive?path=/"), ""),
        (
            "POST",
            format!("/v{api}/images/../containers/create"),
            create,
        ),
        (
            "POST",
            format!("/v{api}/images/base:1/../../containers/create"),
            create,
        ),
        (
            "POST",
            format!("/v{api}/images/%2E%2E/containers/create"),
            create,
        ),
        // Paths an allowed pattern matches, were `..` an image name: the
        // engine's router would clean them into another endpoint.
        ("DELETE", format!("/v{api}/images/../containers/x"), ""),
        ("GET", format!("/v{api}/images/../containers/x/json"), ""),
        (
            "POST",
            format!("/v{api}/images/../../v{api}/containers/x/tag"),
            "",
        ),
        ("GET", format!("/v{api}/images/./json"), ""),
        // A removal with any query but the janitor's: forced (an image a
        // container uses), pruning (untagged parents), or the engine's
        // defaults (which prune).
        (
            "DELETE",
            format!("/v{api}/images/base:1?force=true&noprune=true"),
            "",
        ),
        (
            "DELETE",
            format!("/v{api}/images/base:1?force=false&noprune=false"),
            "",
        ),
        (
            "DELETE",
            format!("/v{api}/images/base:1?noprune=true&force=true"),
            "",
        ),
        ("DELETE", format!("/v{api}/images/base:1"), ""),
        ("POST", format!("/v{api}/images/prune"), ""),
        ("GET", format!("/v{api}/images/base:1/get"), ""),
        ("POST", libpod.into(), create),
        ("PUT", format!("/v{api}/images/json"), ""),
        ("GET", "/_ping".into(), ""),
    ];
    for (method, path, body) in &forbidden {
        let (status, answer) = proxy.raw(method, path, body).await?;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer.contains(REFUSED), "{method} {path}: {answer}");
    }
    assert_eq!(
        recorder.paths(),
        Vec::<String>::new(),
        "no refused call reached the engine"
    );
    // The proxy does forward what the janitor calls: the same chain works.
    let (status, answer) = proxy
        .raw("GET", &format!("/v{api}/images/base:1/json"), "")
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(&loaded["base"].replace("sha256:", "")),
        "{answer}"
    );
    assert_eq!(
        recorder.paths(),
        vec![format!("GET /v{api}/images/base:1/json")]
    );
    let containers = engine
        .docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .build(),
        ))
        .await?;
    assert!(
        containers.is_empty(),
        "no container was created: {containers:?}"
    );
    drop(proxy);
    engine.finish().await
}
