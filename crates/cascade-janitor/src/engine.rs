//! Turning `--docker-host` into a connected, version-negotiated client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::Failure;

pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where to connect: the flag (or `CASCADE_JANITOR_DOCKER_HOST`), then
/// `DOCKER_HOST`, then the local socket.
pub fn resolve_host(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

/// A parsed engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(String),
    Http(String),
}

pub fn parse_host(host: &str) -> Result<Address, Failure> {
    let bad = |why: &str| {
        Failure::usage(format!(
            "invalid --docker-host `{host}`: {why}; use unix:///path/to/docker.sock or tcp://HOST:PORT"
        ))
    };
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

/// Connects and negotiates the API version; an engine that does not answer
/// within `timeout` is unreachable (exit 1).
pub async fn connect(host: &str, timeout: Duration) -> Result<Docker, Failure> {
    let address = parse_host(host)?;
    let secs = timeout.as_secs().max(1);
    let unreachable = |why: String| {
        Failure::unreachable(format!(
            "cannot reach the Docker engine at {host}: {why}; is dockerd running, and is --docker-host (or DOCKER_HOST) right?"
        ))
    };
    let docker = match &address {
        Address::Unix(path) => {
            if !std::path::Path::new(path).exists() {
                return Err(unreachable(format!("{path} does not exist")));
            }
            pooled_unix(path, secs)
        }
        Address::Http(url) => Docker::connect_with_http(url, secs, API_DEFAULT_VERSION),
    }
    .map_err(|e| unreachable(e.to_string()))?;
    let no_answer = || {
        unreachable(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))
    };
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(bollard::errors::Error::RequestTimeoutError)) | Err(_) => Err(no_answer()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
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
            assert_eq!(err.code, crate::EXIT_USAGE, "{bad}");
            assert!(
                err.message.contains("--docker-host") && !err.message.contains('\n'),
                "{}",
                err.message
            );
        }
    }
}
