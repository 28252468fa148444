//! A unix-socket HTTP proxy between the janitor and a nested engine that
//! injects faults: it can stop answering (a hung engine), fail the removal
//! of one image with a 500, or slow every removal down.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// What the proxy does with the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Accept and read requests, never answer.
    Hang,
    /// Answer `DELETE /images/<id>` for this image with a 500; forward the rest.
    FailRemovalOf(String),
    /// Forward everything, each image removal after this delay.
    SlowRemovals(std::time::Duration),
}

#[derive(Debug)]
pub struct FaultProxy {
    pub socket: PathBuf,
    fault: Arc<Mutex<Fault>>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

type Body = BoxBody<Bytes, hyper::Error>;

impl FaultProxy {
    pub fn start(upstream: &Path) -> Result<FaultProxy> {
        let dir = tempfile::Builder::new()
            .prefix("proxy")
            .tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let fault = Arc::new(Mutex::new(Fault::None));
        let upstream = upstream.to_path_buf();
        let task = tokio::spawn({
            let fault = Arc::clone(&fault);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (fault, upstream) = (Arc::clone(&fault), upstream.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, upstream.clone(), Arc::clone(&fault))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Ok(FaultProxy {
            socket,
            fault,
            task,
            _dir: dir,
        })
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: PathBuf,
    fault: Arc<Mutex<Fault>>,
) -> Result<Response<Body>, Infallible> {
    let current = fault.lock().expect("fault").clone();
    match current {
        Fault::Hang => std::future::pending().await,
        Fault::FailRemovalOf(id) if is_removal_of(&req, &id) => {
            return Ok(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"injected failure"}"#,
            ));
        }
        Fault::SlowRemovals(delay)
            if req.method() == hyper::Method::DELETE && req.uri().path().contains("/images/") =>
        {
            tokio::time::sleep(delay).await;
        }
        _ => {}
    }
    Ok(forward(req, &upstream).await.unwrap_or_else(|e| {
        text(
            StatusCode::BAD_GATEWAY,
            &format!("{{\"message\":\"proxy: {e}\"}}"),
        )
    }))
}

fn is_removal_of(req: &Request<Incoming>, id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    req.method() == hyper::Method::DELETE
        && req.uri().path().contains("/images/")
        && req.uri().path().contains(hex)
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|n| match n {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}

async fn forward(req: Request<Incoming>, upstream: &Path) -> Result<Response<Body>> {
    let stream = UnixStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(req).await?;
    Ok(response.map(BodyExt::boxed))
}
