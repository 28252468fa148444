//! Engine addresses and clients: parsing `--docker-host`, connecting with
//! API version negotiation, and [`EngineClient`], the lazily connecting client
//! the daemon gives each engine's sweep so that an engine that is down never
//! stops the janitor or the other engines' loops.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use cascade_classify::Disposition;
use cascade_cleanup::{DockerError, DockerImages, EngineEvent, EngineEvents, ListedImage};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::Failure;

pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// A parsed engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(String),
    Http(String),
}

/// Parses one `--docker-host` value; the error says why and how to write it.
pub fn parse_host(host: &str) -> Result<Address, String> {
    let bad = |why: &str| format!("{why}; use unix:///path/to/docker.sock or tcp://HOST:PORT");
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(bad("the socket path must be absolute"));
        }
        return Ok(Address::Unix(path.to_string()));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = host.strip_prefix(scheme) {
            let authority = rest.trim_end_matches('/');
            let valid = authority.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty() && p.parse::<u16>().is_ok() && !authority.contains('/')
            });
            if !valid {
                return Err(bad("expected HOST:PORT after the scheme"));
            }
            return Ok(Address::Http(format!("http://{authority}")));
        }
    }
    if host.starts_with('/') {
        return Err(bad("a bare path needs the unix:// scheme"));
    }
    Err(bad("unsupported scheme"))
}

/// True for an engine reached over a unix socket, i.e. on this host (or
/// one whose socket is mounted here); only such an engine's disk can be
/// this host's.
pub fn is_local(host: &str) -> bool {
    matches!(parse_host(host), Ok(Address::Unix(_)))
}

/// Parses a `--docker-host` value; a bad one is a usage error (exit 2).
fn parse_or_usage(host: &str) -> Result<Address, Failure> {
    parse_host(host).map_err(|why| Failure::usage(format!("invalid --docker-host `{host}`: {why}")))
}

/// Why an engine could not be reached, as one line naming the engine.
fn unreachable_message(host: &str, why: &str) -> String {
    format!(
        "cannot reach the Docker engine at {host}: {why}; is dockerd running, and is --docker-host (or DOCKER_HOST) right?"
    )
}

/// Connects and negotiates the API version; an engine that does not answer
/// within `timeout` is unreachable (exit 1). Used by `prune` and `doctor`.
pub async fn connect(host: &str, timeout: Duration) -> Result<Docker, Failure> {
    let address = parse_or_usage(host)?;
    negotiate(&address, timeout)
        .await
        .map_err(|why| Failure::unreachable(unreachable_message(host, &why)))
}

async fn negotiate(address: &Address, timeout: Duration) -> Result<Docker, String> {
    let secs = timeout.as_secs().max(1);
    let docker = match address {
        Address::Unix(path) => {
            // bollard hides why a socket refuses us ("client error
            // (Connect)"); a plain connect tells the operator what to fix.
            let probe = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path));
            if let Ok(Err(e)) = probe.await {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => format!("{path} does not exist"),
                    std::io::ErrorKind::PermissionDenied => format!(
                        "permission denied on {path}; run the janitor as a member of the socket's group (see `ls -l {path}`)"
                    ),
                    std::io::ErrorKind::ConnectionRefused => {
                        format!("{path} refuses connections (nothing listens on it)")
                    }
                    _ => format!("{path}: {e}"),
                });
            }
            pooled_unix(path, secs)
        }
        Address::Http(url) => Docker::connect_with_http(url, secs, API_DEFAULT_VERSION),
    }
    .map_err(|e| e.to_string())?;
    let no_answer = || format!("no answer within {}", humantime::format_duration(timeout));
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(bollard::errors::Error::RequestTimeoutError)) | Err(_) => Err(no_answer()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// One engine as the daemon's sweep sees it. Creating it contacts nothing;
/// the first call connects and negotiates the API version, and a failure is
/// a transient `DockerError` of that call, so the sweep reports a failed scan
/// and its loop tries again on the next interval. Every error message starts
/// with the engine's address, so logs and Sentry events say which engine.
#[derive(Debug, Clone)]
pub struct EngineClient {
    host: String,
    address: Address,
    timeout: Duration,
    docker: Arc<tokio::sync::Mutex<Option<Docker>>>,
}

impl EngineClient {
    /// Checks the address only (bad address: exit 2); contacts nothing.
    pub fn new(host: &str, timeout: Duration) -> Result<EngineClient, Failure> {
        let address = parse_or_usage(host)?;
        Ok(EngineClient {
            host: host.to_string(),
            address,
            timeout,
            docker: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The negotiated client, connecting on first use and after a failed try.
    async fn docker(&self) -> Result<Docker, DockerError> {
        let mut slot = self.docker.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = negotiate(&self.address, self.timeout)
            .await
            .map_err(|why| DockerError {
                // Cannot connect: transient, like any connection failure.
                disposition: Disposition::Transient,
                status: None,
                message: unreachable_message(&self.host, &why),
            })?;
        tracing::info!(engine = %self.host, "connected to the Docker engine");
        *slot = Some(docker.clone());
        Ok(docker)
    }

    fn named(&self, error: DockerError) -> DockerError {
        DockerError {
            message: format!("engine {}: {}", self.host, error.message),
            ..error
        }
    }
}

#[async_trait]
impl DockerImages for EngineClient {
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        let docker = self.docker().await?;
        DockerImages::list_images(&docker, filters)
            .await
            .map_err(|e| self.named(e))
    }

    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        let docker = self.docker().await?;
        DockerImages::images_used_by_containers(&docker)
            .await
            .map_err(|e| self.named(e))
    }

    async fn local_data_root(&self) -> Option<std::path::PathBuf> {
        let docker = self.docker().await.ok()?;
        DockerImages::local_data_root(&docker).await
    }

    async fn remove_image(&self, id: &str) -> Result<(), DockerError> {
        let docker = self.docker().await?;
        // Bollard's implementation: force=false, noprune=true.
        DockerImages::remove_image(&docker, id)
            .await
            .map_err(|e| self.named(e))
    }
}

/// The engine's events, subscribed through the same lazy connection: an
/// engine that is down yields an error, and the follower retries with backoff.
impl EngineEvents for EngineClient {
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        let client = self.clone();
        let labels = labels.to_vec();
        futures_util::stream::once(async move { client.docker().await.map(|d| (d, client)) })
            .flat_map(move |connected| match connected {
                Ok((docker, client)) => EngineEvents::subscribe(&docker, &labels)
                    .map(move |event| event.map_err(|e| client.named(e)))
                    .boxed(),
                Err(error) => futures_util::stream::iter([Err(error)]).boxed(),
            })
            .boxed()
    }
}

/// Idle connections kept per engine: enough for every removal in flight.
const POOL_IDLE_PER_ENGINE: usize = 16;
/// An idle connection is closed after this, so a daemon between passes
/// holds no sockets and wakes for nothing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A bollard client on `path` that keeps its connections alive.
///
/// `Docker::connect_with_unix` sets `pool_max_idle_per_host(0)`: every call
/// opens and closes a socket, and the engine accepts and tears down one
/// connection per removal. Here the same hyperlocal connector sits behind a
/// pooled hyper client, handed to bollard as a custom transport: a sweep
/// reuses at most `--concurrency` connections. See docs/BENCHMARKS.md.
fn pooled_unix(path: &str, timeout_secs: u64) -> Result<Docker, bollard::errors::Error> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_max_idle_per_host(POOL_IDLE_PER_ENGINE)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new());
    let client = Arc::new(builder.build(hyperlocal::UnixConnector));
    let socket = PathBuf::from(path);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = Arc::clone(&client);
            let (mut parts, body) = request.into_parts();
            let path_and_query = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            parts.uri = hyperlocal::Uri::new(&socket, &path_and_query).into();
            let request = BollardRequest::from_parts(parts, body);
            async move {
                client
                    .request(request)
                    .await
                    .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
            }
        },
        // bollard renders request URIs against this; the transport swaps in
        // the socket, so only the path and query are used.
        Some("http://docker"),
        timeout_secs,
        API_DEFAULT_VERSION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_local() {
        assert!(is_local("unix:///var/run/docker.sock"));
        assert!(!is_local("tcp://127.0.0.1:2375"));
        assert!(!is_local("http://127.0.0.1:2375"));
        assert!(!is_local("docker.sock"));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_host("unix:///var/run/docker.sock").ok(),
            Some(Address::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375").ok(),
            Some(Address::Http("http://127.0.0.1:2375".into()))
        );
        for bad in [
            "",
            "docker.sock",
            "/var/run/docker.sock",
            "unix://relative",
            "tcp://",
            "tcp://host",
            "tcp://h:99999",
            "ftp://h:1",
        ] {
            let err = parse_host(bad).expect_err(bad);
            assert!(
                err.contains("unix:///path/to/docker.sock") && !err.contains('\n'),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_engine_is_a_transient_scan_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!("unix://{}/absent.sock", dir.path().display());
        let client = EngineClient::new(&host, Duration::from_secs(1)).expect("valid address");
        let err = DockerImages::list_images(&client, &HashMap::new())
            .await
            .expect_err("nobody answers");
        assert_eq!(err.disposition, Disposition::Transient);
        assert!(err.message.contains(&host), "{}", err.message);
        assert!(client.docker.lock().await.is_none(), "retried next time");
    }
}
