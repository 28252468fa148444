//! The transport and negotiation against a scripted engine: which paths
//! reach it, in which API version, and when the client negotiates again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cascade_cleanup::{DockerImages, ImageStore};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::{EngineClient, connect};

/// What the scripted engine answers with, and every path it was asked.
#[derive(Debug)]
struct Script {
    api_version: String,
    /// Versioned requests below this are refused, as Docker 29 refuses
    /// anything below 1.44.
    min_version: Option<(usize, usize)>,
    containerd: bool,
    paths: Vec<String>,
}

#[derive(Debug, Clone)]
struct ScriptedEngine(Arc<Mutex<Script>>);

impl ScriptedEngine {
    fn new(api_version: &str) -> ScriptedEngine {
        ScriptedEngine(Arc::new(Mutex::new(Script {
            api_version: api_version.into(),
            min_version: None,
            containerd: false,
            paths: Vec::new(),
        })))
    }

    fn edit<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        f(&mut self.0.lock().expect("script"))
    }

    /// The paths asked since the last call.
    fn take_paths(&self) -> Vec<String> {
        self.edit(|s| std::mem::take(&mut s.paths))
    }

    fn answer(&self, path: &str) -> (StatusCode, String) {
        self.edit(|s| {
            s.paths.push(path.split('?').next().unwrap_or_default().to_string());
            let (version, rest) = match path
                .strip_prefix("/v")
                .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
            {
                Some(tail) => {
                    let (v, rest) = tail.split_once('/').unwrap_or((tail, ""));
                    (Some(v.to_string()), format!("/{rest}"))
                }
                None => (None, path.to_string()),
            };
            if let (Some(v), Some(min)) = (&version, s.min_version) {
                let parsed = v
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                if parsed.is_some_and(|p: (usize, usize)| p < min) {
                    return (
                        StatusCode::BAD_REQUEST,
                        format!(
                            r#"{{"message":"client version {v} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version"}}"#,
                            min.0, min.1
                        ),
                    );
                }
            }
            match rest.split('?').next().unwrap_or_default() {
                "/version" => (
                    StatusCode::OK,
                    format!(r#"{{"Version":"scripted","ApiVersion":"{}"}}"#, s.api_version),
                ),
                "/images/json" => (StatusCode::OK, "[]".into()),
                "/info" => {
                    let (driver, status) = if s.containerd {
                        ("overlayfs", r#"[["driver-type","io.containerd.snapshotter.v1"]]"#)
                    } else {
                        ("overlay2", r#"[["Backing Filesystem","extfs"]]"#)
                    };
                    (
                        StatusCode::OK,
                        format!(r#"{{"Driver":"{driver}","DriverStatus":{status}}}"#),
                    )
                }
                other => (StatusCode::NOT_FOUND, format!(r#"{{"message":"not scripted: {other} ({path})"}}"#)),
            }
        })
    }

    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (status, body) =
                self.answer(req.uri().path_and_query().map_or("/", |p| p.as_str()));
            async move {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().expect("header"));
                Ok::<_, Infallible>(response)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// Serves on a unix socket in `dir`; returns its `unix://` address.
    fn on_unix(&self, dir: &std::path::Path) -> String {
        let path = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let engine = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(engine.clone().serve(stream));
            }
        });
        format!("unix://{}", path.display())
    }

    /// Serves on a loopback TCP port; returns its `tcp://` address.
    async fn on_loopback(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let engine = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(engine.clone().serve(stream));
            }
        });
        format!("tcp://127.0.0.1:{port}")
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn every_request_carries_the_negotiated_version_over_unix_and_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    for api in ["1.41", "1.51"] {
        let scripted = ScriptedEngine::new(api);
        for host in [scripted.on_unix(dir.path()), scripted.on_loopback().await] {
            let engine = connect(&host, SECOND).await.expect("connects");
            assert_eq!(engine.api_version().as_deref(), Some(api));
            engine.list_images(&HashMap::new()).await.expect("lists");
            engine.engine_facts().await.expect("version and info");
            assert_eq!(
                scripted.take_paths(),
                [
                    "/version".to_string(),
                    format!("/v{api}/images/json"),
                    "/version".to_string(),
                    format!("/v{api}/info"),
                ],
                "{host}"
            );
        }
        std::fs::remove_file(dir.path().join("engine.sock")).expect("rm socket");
    }
}

#[tokio::test]
async fn a_newer_engine_is_spoken_to_in_the_version_bollard_understands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripted = ScriptedEngine::new("1.99");
    let engine = connect(&scripted.on_unix(dir.path()), SECOND)
        .await
        .expect("connects");
    let bollard = bollard::API_DEFAULT_VERSION;
    let expected = format!("{}.{}", bollard.major_version, bollard.minor_version);
    assert_eq!(engine.api_version(), Some(expected));
}

#[tokio::test]
async fn a_reconnecting_client_negotiates_again_so_an_upgraded_engine_is_spoken_to_in_its_version()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let scripted = ScriptedEngine::new("1.41");
    let mut client = EngineClient::new(&scripted.on_unix(dir.path()), SECOND).expect("address");
    // Every call comes after the pool went idle, as passes minutes apart do.
    client.reconnect_after = Duration::ZERO;
    client.list_images(&HashMap::new()).await.expect("lists");
    assert_eq!(scripted.take_paths(), ["/version", "/v1.41/images/json"]);
    scripted.edit(|s| s.api_version = "1.51".into());
    client.list_images(&HashMap::new()).await.expect("lists");
    assert_eq!(scripted.take_paths(), ["/version", "/v1.51/images/json"]);
    assert_eq!(client.api_version().await.as_deref(), Some("1.51"));
}

#[tokio::test]
async fn a_busy_client_does_not_negotiate_before_every_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripted = ScriptedEngine::new("1.41");
    let client = EngineClient::new(&scripted.on_unix(dir.path()), SECOND).expect("address");
    client.list_images(&HashMap::new()).await.expect("lists");
    client.list_images(&HashMap::new()).await.expect("lists");
    assert_eq!(
        scripted.take_paths(),
        ["/version", "/v1.41/images/json", "/v1.41/images/json"]
    );
}

#[tokio::test]
async fn a_refused_version_is_negotiated_again_and_the_call_retried_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripted = ScriptedEngine::new("1.41");
    let client = EngineClient::new(&scripted.on_unix(dir.path()), SECOND).expect("address");
    client.list_images(&HashMap::new()).await.expect("lists");
    scripted.take_paths();
    // Upgraded to an engine whose minimum is above what was negotiated,
    // with no failed call in between (the pool reconnected silently).
    scripted.edit(|s| {
        s.api_version = "1.52".into();
        s.min_version = Some((1, 44));
    });
    client.list_images(&HashMap::new()).await.expect("retried");
    assert_eq!(
        scripted.take_paths(),
        ["/v1.41/images/json", "/version", "/v1.52/images/json"]
    );
}

#[tokio::test]
async fn the_store_is_read_from_the_driver_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripted = ScriptedEngine::new("1.51");
    let engine = connect(&scripted.on_unix(dir.path()), SECOND)
        .await
        .expect("connects");
    let store = || async { engine.engine_facts().await.expect("info").identity.store };
    assert_eq!(
        store().await,
        ImageStore::Classic {
            driver: "overlay2".into()
        }
    );
    scripted.edit(|s| s.containerd = true);
    assert_eq!(
        store().await,
        ImageStore::Containerd {
            snapshotter: "overlayfs".into()
        }
    );
}
