//! Connecting to an engine: the transport, and API version negotiation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::address::{Address, BadAddress, parse_host};
use crate::images::Engine;
use crate::tls::{TlsFiles, client_config, pooled_tls};

/// Why no engine could be used. Each message is one line naming the engine
/// and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The address names no engine: the caller's configuration is wrong.
    #[error("invalid --docker-host `{host}`: {why}")]
    BadAddress { host: String, why: BadAddress },
    /// The engine did not answer, or refused the connection.
    #[error(
        "cannot reach the Docker engine at {host}: {why}; is dockerd running, and is --docker-host (or DOCKER_HOST) right?"
    )]
    Unreachable { host: String, why: String },
    /// The TLS files cannot be used (not PEM, key and certificate not a
    /// pair): the caller's configuration is wrong.
    #[error("cannot use TLS for {host}: {why}")]
    Tls { host: String, why: String },
}

pub(crate) fn parse_named(host: &str) -> Result<Address, EngineError> {
    parse_host(host).map_err(|why| EngineError::BadAddress {
        host: host.to_string(),
        why,
    })
}

/// Connects and negotiates the API version; an engine that does not answer
/// within `timeout` is [`EngineError::Unreachable`].
pub async fn connect(host: &str, timeout: Duration) -> Result<Engine, EngineError> {
    connect_with(host, None, timeout).await
}

/// [`connect`], over TLS when `tls` is given (a `tcp://` engine only).
pub async fn connect_with(
    host: &str,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<Engine, EngineError> {
    let address = parse_named(host)?;
    let tls = tls_config(host, &address, tls)?;
    negotiate(&address, tls.as_ref(), timeout)
        .await
        .map(Engine::new)
        .map_err(|why| EngineError::Unreachable {
            host: host.to_string(),
            why,
        })
}

/// The rustls configuration for `host`, read from its files once.
pub(crate) fn tls_config(
    host: &str,
    address: &Address,
    tls: Option<&TlsFiles>,
) -> Result<Option<Arc<rustls::ClientConfig>>, EngineError> {
    let Some(files) = tls else { return Ok(None) };
    let fail = |why: String| EngineError::Tls {
        host: host.to_string(),
        why,
    };
    if let Address::Unix(_) = address {
        return Err(fail(
            "TLS applies to tcp:// engines only; a unix socket is reached as it is".to_string(),
        ));
    }
    client_config(files).map(Some).map_err(fail)
}

/// A negotiated client, or why the engine cannot be used (without the
/// engine's name: the caller adds it).
pub(crate) async fn negotiate(
    address: &Address,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Docker, String> {
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
        Address::Http(url) => match tls {
            Some(config) => pooled_tls(url.trim_start_matches("http://"), config, secs),
            None => Docker::connect_with_http(url, secs, API_DEFAULT_VERSION),
        },
    }
    .map_err(|e| e.to_string())?;
    let no_answer = || format!("no answer within {}", humantime::format_duration(timeout));
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(bollard::errors::Error::RequestTimeoutError)) | Err(_) => Err(no_answer()),
        Ok(Err(e)) if tls.is_some() && is_tls_refusal(&e.to_string()) => Err(format!(
            "{e}; the TLS handshake failed: check that --tls-ca signed the engine's certificate, that it names this host, and that the engine accepts --tls-cert"
        )),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// rustls's words for a refused handshake, either side's.
fn is_tls_refusal(text: &str) -> bool {
    text.contains("invalid peer certificate") || text.contains("fatal alert")
}

/// Idle connections kept per engine: enough for every removal in flight.
pub(crate) const POOL_IDLE_PER_ENGINE: usize = 16;
/// An idle connection is closed after this, so a daemon between passes
/// holds no sockets and wakes for nothing.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A bollard client on `path` that keeps its connections alive.
///
/// `Docker::connect_with_unix` sets `pool_max_idle_per_host(0)`: every call
/// opens and closes a socket, and the engine accepts and tears down one
/// connection per removal. Here the same hyperlocal connector sits behind a
/// pooled hyper client, handed to bollard as a custom transport: a sweep
/// reuses at most `--concurrency` connections. See docs/BENCHMARKS.md.
pub(crate) fn pooled_unix(path: &str, timeout_secs: u64) -> Result<Docker, bollard::errors::Error> {
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
    fn a_bad_address_names_it_and_the_fix() {
        let err = parse_named("docker.sock").expect_err("no scheme");
        assert_eq!(
            err.to_string(),
            "invalid --docker-host `docker.sock`: unsupported scheme; use unix:///path/to/docker.sock or tcp://HOST:PORT"
        );
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.sock");
        let host = format!("unix://{}", path.display());
        let err = connect(&host, Duration::from_secs(1))
            .await
            .expect_err("nobody listens");
        assert_eq!(
            err,
            EngineError::Unreachable {
                host: host.clone(),
                why: format!("{} does not exist", path.display()),
            }
        );
    }
}
