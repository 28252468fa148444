//! A unix-socket HTTP proxy between the janitor and a nested engine that
//! injects faults: it can stop answering (a hung engine), fail the removal
//! of one image or of every image with a 500, slow every removal down,
//! hold the requests about one image until released, hold the event stream
//! open silently, or move the engine's clock. It records every request's
//! method and path (with the API version the client put there).

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
    /// Answer every `DELETE /images/...` with a 500; forward the rest.
    FailAllRemovals,
    /// Forward everything, each image removal after this delay.
    SlowRemovals(std::time::Duration),
    /// Forward everything but hold each image removal until
    /// [`FaultProxy::release`] (or the fault changes).
    HoldRemovals,
    /// Answer `GET /events` with 200 and headers, then hold the connection
    /// open and send nothing (a half-open connection); forward the rest.
    SilentEvents,
    /// Forward everything; `GET /info` answers with `SystemTime` moved by
    /// this many seconds (an engine whose clock is off).
    ShiftClock(i64),
    /// Forward everything but hold each request about one image (its
    /// inspect `GET /images/<name>/json` or its `DELETE /images/<name>`;
    /// not the listing) until [`FaultProxy::release`] or the fault changes.
    HoldImageRequests,
    /// Forward everything; `GET /version` answers with this `Version`, in
    /// the top level and in every component the engine names as itself
    /// (`Engine`, `Podman Engine`): the same engine under a release the
    /// janitor has not been proven on.
    RenameVersion(String),
    /// Forward everything but the `GET` whose path ends with `path`
    /// (`/images/json`, `/containers/json`, `/info`, `/version`), whose
    /// answer is spoilt as `how` says.
    Spoil { path: &'static str, how: Spoilt },
}

/// How [`Fault::Spoil`] spoils an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spoilt {
    /// The engine's status and headers (its `Content-Length`), half of its
    /// body, then the connection is reset.
    ResetMidBody,
    /// The first half of the engine's body, framed as a whole answer
    /// (`Content-Length` of the half): well-formed HTTP, cut JSON.
    Truncated,
    /// The engine's body with `text` put in after its first byte (inside
    /// the list or object), framed as a whole answer: malformed JSON.
    Malformed(&'static str),
    /// The engine's body, with `text` put before its first `{`: a list
    /// whose first entry is `text` (a well-formed JSON entry of another
    /// shape, for example).
    FirstEntry(String),
    /// The engine's body, chunked, one byte a second.
    Drip,
    /// A synthetic image list of this many bytes, chunked: `[`, copies of
    /// one labelled dangling image (a 4 KiB label value each, so a
    /// client that kept them all would hold about this much), `]`. Only
    /// the bytes the client reads are ever made.
    Huge(u64),
}

#[derive(Debug)]
pub struct FaultProxy {
    pub socket: PathBuf,
    fault: Arc<Mutex<Fault>>,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// What went through the proxy, and the gate held removals wait at.
#[derive(Debug, Default)]
struct Seen {
    requests: std::sync::atomic::AtomicUsize,
    removals: std::sync::atomic::AtomicUsize,
    subscriptions: std::sync::atomic::AtomicUsize,
    held: std::sync::atomic::AtomicUsize,
    /// `METHOD /path` of every request, in arrival order (no query).
    paths: Mutex<Vec<String>>,
    released: tokio::sync::Notify,
}

impl FaultProxy {
    pub fn start(upstream: &Path) -> Result<FaultProxy> {
        let dir = tempfile::Builder::new()
            .prefix("proxy")
            .tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let fault = Arc::new(Mutex::new(Fault::None));
        let seen = Arc::new(Seen::default());
        let upstream = upstream.to_path_buf();
        let task = tokio::spawn({
            let (fault, seen) = (Arc::clone(&fault), Arc::clone(&seen));
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (fault, seen, upstream) =
                        (Arc::clone(&fault), Arc::clone(&seen), upstream.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, upstream.clone(), Arc::clone(&fault), Arc::clone(&seen))
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
            seen,
            task,
            _dir: dir,
        })
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
        self.release();
    }

    /// Lets every held removal go on.
    pub fn release(&self) {
        self.seen.released.notify_waiters();
    }

    /// Requests received so far (any kind).
    pub fn requests(&self) -> usize {
        self.seen.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `GET /events` requests received so far.
    pub fn subscriptions(&self) -> usize {
        self.seen
            .subscriptions
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `DELETE /images/...` requests received so far.
    pub fn removals(&self) -> usize {
        self.seen.removals.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests held by [`Fault::HoldImageRequests`] so far.
    pub fn held(&self) -> usize {
        self.seen.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `METHOD /path` of every request so far, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().expect("paths").clone()
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
    seen: Arc<Seen>,
) -> Result<Response<Body>, Infallible> {
    use std::sync::atomic::Ordering::SeqCst;
    let removal = req.method() == hyper::Method::DELETE && req.uri().path().contains("/images/");
    let about_one_image = req
        .uri()
        .path()
        .split_once("/images/")
        .is_some_and(|(_, rest)| {
            !rest.is_empty()
                && rest != "json"
                && !rest.starts_with("create")
                && !rest.starts_with("load")
        });
    // Registered before counting, so a release right after the count is seen.
    let released = seen.released.notified();
    seen.paths
        .lock()
        .expect("paths")
        .push(format!("{} {}", req.method(), req.uri().path()));
    seen.requests.fetch_add(1, SeqCst);
    if removal {
        seen.removals.fetch_add(1, SeqCst);
    }
    let events = req.method() == hyper::Method::GET && req.uri().path().ends_with("/events");
    if events {
        seen.subscriptions.fetch_add(1, SeqCst);
    }
    let info = req.method() == hyper::Method::GET && req.uri().path().ends_with("/info");
    let version = req.method() == hyper::Method::GET && req.uri().path().ends_with("/version");
    let current = fault.lock().expect("fault").clone();
    match current {
        Fault::SilentEvents if events => {
            let body = http_body_util::StreamBody::new(futures_util::stream::pending::<
                Result<hyper::body::Frame<Bytes>, BoxError>,
            >());
            let mut response = Response::new(BodyExt::boxed(body));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().expect("header"));
            return Ok(response);
        }
        Fault::ShiftClock(secs) if info => {
            return Ok(match shifted_info(req, &upstream, secs).await {
                Ok(response) => response,
                Err(e) => text(
                    StatusCode::BAD_GATEWAY,
                    &format!("{{\"message\":\"proxy: {e}\"}}"),
                ),
            });
        }
        Fault::RenameVersion(to) if version => {
            return Ok(match renamed_version(req, &upstream, &to).await {
                Ok(response) => response,
                Err(e) => text(
                    StatusCode::BAD_GATEWAY,
                    &format!("{{\"message\":\"proxy: {e}\"}}"),
                ),
            });
        }
        Fault::Spoil { path, how }
            if req.method() == hyper::Method::GET && req.uri().path().ends_with(path) =>
        {
            return Ok(match spoilt(req, &upstream, how).await {
                Ok(response) => response,
                Err(e) => text(
                    StatusCode::BAD_GATEWAY,
                    &format!("{{\"message\":\"proxy: {e}\"}}"),
                ),
            });
        }
        Fault::HoldRemovals if removal => released.await,
        Fault::HoldImageRequests if about_one_image => {
            seen.held.fetch_add(1, SeqCst);
            released.await
        }
        Fault::Hang => std::future::pending().await,
        Fault::FailRemovalOf(id) if is_removal_of(&req, &id) => {
            return Ok(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"injected failure"}"#,
            ));
        }
        Fault::FailAllRemovals if removal => {
            return Ok(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"injected failure"}"#,
            ));
        }
        Fault::SlowRemovals(delay) if removal => tokio::time::sleep(delay).await,
        _ => {}
    }
    Ok(forward(req, &upstream).await.unwrap_or_else(|e| {
        text(
            StatusCode::BAD_GATEWAY,
            &format!("{{\"message\":\"proxy: {e}\"}}"),
        )
    }))
}

/// `GET /version` from upstream with the engine's version replaced by `to`.
async fn renamed_version(
    req: Request<Incoming>,
    upstream: &Path,
    to: &str,
) -> Result<Response<Body>> {
    rewritten(req, upstream, |version| {
        version["Version"] = to.into();
        if let Some(components) = version["Components"].as_array_mut() {
            for component in components {
                if matches!(component["Name"].as_str(), Some("Engine" | "Podman Engine")) {
                    component["Version"] = to.into();
                }
            }
        }
        Ok(())
    })
    .await
}

/// Forwards `req` and answers with its JSON body changed by `edit`.
async fn rewritten(
    req: Request<Incoming>,
    upstream: &Path,
    edit: impl FnOnce(&mut serde_json::Value) -> Result<()>,
) -> Result<Response<Body>> {
    let (mut parts, bytes) = forward_whole(req, upstream).await?;
    let mut json: serde_json::Value = serde_json::from_slice(&bytes)?;
    edit(&mut json)?;
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let body = Full::new(Bytes::from(serde_json::to_vec(&json)?))
        .map_err(|n| match n {})
        .boxed();
    Ok(Response::from_parts(parts, body))
}

/// `GET /info` from upstream with `SystemTime` moved by `secs`.
async fn shifted_info(
    req: Request<Incoming>,
    upstream: &Path,
    secs: i64,
) -> Result<Response<Body>> {
    rewritten(req, upstream, |info| {
        let time = info["SystemTime"]
            .as_str()
            .and_then(cascade_engine::engine_time)
            .ok_or_else(|| anyhow::anyhow!("no SystemTime in /info"))?;
        let moved = std::time::UNIX_EPOCH + std::time::Duration::from_secs((time + secs) as u64);
        info["SystemTime"] = humantime::format_rfc3339_nanos(moved).to_string().into();
        Ok(())
    })
    .await
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

/// The engine's answer to `req`, its body read whole (to be edited).
async fn forward_whole(
    req: Request<Incoming>,
    upstream: &Path,
) -> Result<(hyper::http::response::Parts, Bytes)> {
    let (parts, body) = forward(req, upstream).await?.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_bytes();
    Ok((parts, bytes))
}

async fn forward(req: Request<Incoming>, upstream: &Path) -> Result<Response<Body>> {
    let stream = UnixStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(req).await?;
    Ok(response.map(|body| body.map_err(BoxError::from).boxed()))
}

/// The upstream answer to `req`, spoilt as `how` says.
async fn spoilt(req: Request<Incoming>, upstream: &Path, how: Spoilt) -> Result<Response<Body>> {
    use futures_util::StreamExt;
    use hyper::body::Frame;
    let huge_response = |bytes: u64| {
        let mut response = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(
            huge_list(bytes).map(|chunk| Ok::<_, BoxError>(Frame::data(chunk))),
        )));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().expect("header"));
        response
    };
    if let Spoilt::Huge(bytes) = how {
        return Ok(huge_response(bytes));
    }
    let (mut parts, bytes) = forward_whole(req, upstream).await?;
    let half = bytes.slice(..bytes.len() / 2);
    let whole = |body: Bytes, parts: &mut hyper::http::response::Parts| {
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
        parts.headers.insert(
            hyper::header::CONTENT_LENGTH,
            body.len().to_string().parse().expect("header"),
        );
        Full::new(body).map_err(|n| match n {}).boxed()
    };
    let body: Body = match how {
        Spoilt::ResetMidBody => {
            // The engine's length stays: the body stops short, then fails.
            parts.headers.remove(hyper::header::TRANSFER_ENCODING);
            parts.headers.insert(
                hyper::header::CONTENT_LENGTH,
                bytes.len().to_string().parse().expect("header"),
            );
            // The half is written out (a moment for the server to flush
            // it) before the error resets the connection.
            let chunks = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(half))]).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Err::<Frame<Bytes>, BoxError>("the proxy resets the connection".into())
                }),
            );
            BodyExt::boxed(http_body_util::StreamBody::new(chunks))
        }
        Spoilt::Truncated => whole(half, &mut parts),
        Spoilt::Malformed(text) => {
            let mut spoilt = bytes[..1].to_vec();
            spoilt.extend_from_slice(text.as_bytes());
            spoilt.extend_from_slice(&bytes[1..]);
            whole(Bytes::from(spoilt), &mut parts)
        }
        Spoilt::FirstEntry(entry) => {
            let at = bytes.iter().position(|b| *b == b'{').unwrap_or(1);
            let mut spoilt = bytes[..at].to_vec();
            spoilt.extend_from_slice(entry.as_bytes());
            spoilt.push(b',');
            spoilt.extend_from_slice(&bytes[at..]);
            whole(Bytes::from(spoilt), &mut parts)
        }
        Spoilt::Drip => {
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            let drip = futures_util::stream::unfold(0usize, move |at| {
                let bytes = bytes.clone();
                async move {
                    if at >= bytes.len() {
                        return None;
                    }
                    if at > 0 {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Some((
                        Ok::<_, BoxError>(Frame::data(bytes.slice(at..at + 1))),
                        at + 1,
                    ))
                }
            });
            BodyExt::boxed(http_body_util::StreamBody::new(drip))
        }
        Spoilt::Huge(_) => unreachable!("answered above"),
    };
    Ok(Response::from_parts(parts, body))
}

/// [`Spoilt::Huge`]'s body, made 64 KiB at a time as it is read.
fn huge_list(bytes: u64) -> impl futures_util::Stream<Item = Bytes> + Send {
    let entry = format!(
        r#"{{"Containers":-1,"Created":1700000000,"Id":"sha256:{}","Labels":{{"cascade.managed":"true","cascade.pad":"{}"}},"ParentId":"","RepoDigests":[],"RepoTags":[],"SharedSize":-1,"Size":1048}}"#,
        "ab".repeat(32),
        "x".repeat(4096)
    );
    let mut chunk = String::from("[");
    while chunk.len() < 64 * 1024 {
        chunk.push_str(&entry);
        chunk.push(',');
    }
    let chunk = Bytes::from(chunk.into_bytes());
    let middle = Bytes::from(chunk[1..].to_vec());
    let last = Bytes::from(format!("{entry}]"));
    futures_util::stream::unfold(0u64, move |sent| {
        let (chunk, middle, last) = (chunk.clone(), middle.clone(), last.clone());
        async move {
            if sent >= bytes {
                return None;
            }
            let next = if sent == 0 {
                chunk
            } else if sent + middle.len() as u64 + last.len() as u64 >= bytes {
                last
            } else {
                middle
            };
            let sent = if next.ends_with(b"]") {
                bytes
            } else {
                sent + next.len() as u64
            };
            Some((next, sent))
        }
    })
}
