//! Connecting to an engine: the transport, and API version negotiation.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::address::{Address, BadAddress, EngineAddress};
use crate::images::EngineConnection;
use crate::names::SettingNames;
use crate::tls::{TlsFiles, client_config, pooled_tls};

/// Why no engine could be used. Each message is one line naming the engine
/// and what to check, in the library's terms ([`SettingNames::LIBRARY`]);
/// [`EngineError::message`] words it with an owner's own names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message(&SettingNames::LIBRARY))]
pub enum EngineError {
    /// The address names no engine: the caller's configuration is wrong.
    /// `host` is the address as given, credentials replaced.
    BadAddress { host: String, why: BadAddress },
    /// The engine did not answer, or refused the connection.
    Unreachable {
        host: String,
        why: String,
        /// The TLS handshake failed (the engine's certificate is not the
        /// CA's, or the engine refused the client certificate).
        handshake_failed: bool,
    },
    /// The TLS files cannot be used (not PEM, key and certificate not a
    /// pair): the caller's configuration is wrong.
    Tls { host: String, why: String },
}

impl EngineError {
    /// The message, naming the settings to check with `names`.
    pub fn message(&self, names: &SettingNames) -> String {
        match self {
            EngineError::BadAddress { host, why } => {
                format!("invalid {} `{host}`: {why}", names.address)
            }
            EngineError::Unreachable {
                host,
                why,
                handshake_failed,
            } => {
                let handshake = if *handshake_failed {
                    format!(
                        "; the TLS handshake failed: check that {} signed the engine's certificate, that it names this host, and that the engine accepts {}",
                        names.tls_ca, names.tls_cert
                    )
                } else {
                    String::new()
                };
                format!(
                    "cannot reach the Docker engine at {host}: {why}{handshake}; is dockerd running, and is {} right?",
                    names.address_sources
                )
            }
            EngineError::Tls { host, why } => format!("cannot use TLS for {host}: {why}"),
        }
    }
}

/// Why a negotiation failed, without the engine's name (the caller adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoAnswer {
    pub(crate) why: String,
    pub(crate) handshake_failed: bool,
}

impl NoAnswer {
    fn plain(why: String) -> NoAnswer {
        NoAnswer {
            why,
            handshake_failed: false,
        }
    }

    pub(crate) fn at(self, host: &str) -> EngineError {
        EngineError::Unreachable {
            host: host.to_string(),
            why: self.why,
            handshake_failed: self.handshake_failed,
        }
    }
}

pub(crate) fn parse_named(host: &str) -> Result<EngineAddress, EngineError> {
    EngineAddress::parse(host).map_err(|why| EngineError::BadAddress {
        host: why.address().to_string(),
        why,
    })
}

/// Connects and negotiates the API version; an engine that does not answer
/// within `timeout` is [`EngineError::Unreachable`].
pub async fn connect(host: &str, timeout: Duration) -> Result<EngineConnection, EngineError> {
    connect_with(host, None, timeout).await
}

/// [`connect`], over TLS when `tls` is given (a `tcp://` engine only).
pub async fn connect_with(
    host: &str,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<EngineConnection, EngineError> {
    let address = parse_named(host)?;
    let tls = tls_config(host, address.target(), tls)?;
    negotiate(address.target(), tls.as_ref(), timeout)
        .await
        .map_err(|no| no.at(host))
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

/// The API version every request of one engine carries in its path
/// (`/v1.41/images/json`), once negotiated. Shared by the engine's transport
/// and whoever negotiates, so a new negotiation changes the paths of every
/// later request without a new connection pool.
///
/// bollard 0.21 builds unversioned paths, so without this every engine
/// answers in its newest API shape, whatever was negotiated.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiVersion(Arc<RwLock<Option<String>>>);

/// The one request sent unversioned: the negotiation's own `GET /version`,
/// which must work whatever the engine's minimum API version is.
const NEGOTIATION_PATH: &str = "/version";

impl ApiVersion {
    pub(crate) fn get(&self) -> Option<String> {
        self.0.read().map(|v| v.clone()).unwrap_or_default()
    }

    fn set(&self, version: String) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(version);
        }
    }

    /// `path_and_query` with the negotiated version in front, unless it is
    /// the negotiation itself, nothing was negotiated yet, or it already
    /// carries one (a later bollard may add it itself).
    pub(crate) fn prefix(&self, path_and_query: &str) -> String {
        let path = path_and_query.split('?').next().unwrap_or_default();
        match self.get() {
            Some(version) if path != NEGOTIATION_PATH && !path.starts_with("/v1.") => {
                format!("/v{version}{path_and_query}")
            }
            _ => path_and_query.to_string(),
        }
    }

    /// Asks the engine's API version (`GET /version`) and uses the lower of
    /// it and bollard's own; an engine older than bollard answers in its own
    /// shape, and a newer one in the shape bollard's models describe.
    pub(crate) async fn negotiate(
        &self,
        docker: &Docker,
        transport: Option<&PooledTransport>,
    ) -> Result<String, String> {
        let answer = match transport {
            // Read within the answer limit `[ref:answer_limit]`.
            Some(transport) => crate::answer::fetch_json::<bollard::models::SystemVersion>(
                transport,
                hyper::Method::GET,
                NEGOTIATION_PATH,
            )
            .await
            .map_err(|e| e.message)?,
            None => docker.version().await.map_err(|e| e.to_string())?,
        };
        let server = answer
            .api_version
            .as_deref()
            .and_then(parse_version)
            .ok_or_else(|| bollard::errors::Error::APIVersionParseError {}.to_string())?;
        let client = (
            API_DEFAULT_VERSION.major_version,
            API_DEFAULT_VERSION.minor_version,
        );
        let (major, minor) = server.min(client);
        let version = format!("{major}.{minor}");
        self.set(version.clone());
        Ok(version)
    }
}

fn parse_version(text: &str) -> Option<(usize, usize)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A negotiated engine, or why it cannot be used (without the engine's
/// name: the caller adds it).
pub(crate) async fn negotiate(
    address: &Address,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<EngineConnection, NoAnswer> {
    let secs = timeout.as_secs().max(1);
    let version = ApiVersion::default();
    let mut transport = match address {
        Address::Unix(path) => {
            // bollard hides why a socket refuses us ("client error
            // (Connect)"); a plain connect tells the operator what to fix.
            let probe = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path));
            if let Ok(Err(e)) = probe.await {
                return Err(NoAnswer::plain(match e.kind() {
                    std::io::ErrorKind::NotFound => format!("{path} does not exist"),
                    std::io::ErrorKind::PermissionDenied => format!(
                        "permission denied on {path}; run the janitor as a member of the socket's group (see `ls -l {path}`)"
                    ),
                    std::io::ErrorKind::ConnectionRefused => {
                        format!("{path} refuses connections (nothing listens on it)")
                    }
                    _ => format!("{path}: {e}"),
                }));
            }
            pooled_unix(path, version.clone())
        }
        Address::Http(url) => match tls {
            Some(config) => pooled_tls(url.trim_start_matches("http://"), config, version.clone()),
            None => pooled_http(url, version.clone()),
        },
    };
    let docker = transport
        .docker(secs)
        .map_err(|e| NoAnswer::plain(e.to_string()))?;
    renegotiate(&docker, Some(&transport), &version, timeout)
        .await
        .map_err(|why| NoAnswer {
            handshake_failed: tls.is_some() && is_tls_refusal(&why),
            why,
        })?;
    Ok(EngineConnection::negotiated(docker, version, transport))
}

/// rustls's words for a refused handshake, either side's.
fn is_tls_refusal(text: &str) -> bool {
    text.contains("invalid peer certificate") || text.contains("fatal alert")
}

/// (Re)negotiates `version` on `docker`, within `timeout`.
pub(crate) async fn renegotiate(
    docker: &Docker,
    transport: Option<&PooledTransport>,
    version: &ApiVersion,
    timeout: Duration,
) -> Result<String, String> {
    let no_answer = || format!("no answer within {}", humantime::format_duration(timeout));
    let timed_out = bollard::errors::Error::RequestTimeoutError.to_string();
    match tokio::time::timeout(timeout, version.negotiate(docker, transport)).await {
        Ok(Ok(version)) => Ok(version),
        Ok(Err(e)) if e == timed_out => Err(no_answer()),
        Err(_) => Err(no_answer()),
        Ok(Err(e)) => Err(e),
    }
}

/// Idle connections kept per engine: enough for every removal in flight.
const POOL_IDLE_PER_ENGINE: usize = 16;
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
///
/// The transport also puts the negotiated API version in front of every
/// path ([`ApiVersion::prefix`]).
pub(crate) fn pooled_unix(path: &str, version: ApiVersion) -> PooledTransport {
    let client = Arc::new(pool_builder().build(hyperlocal::UnixConnector));
    let socket = PathBuf::from(path);
    // bollard renders request URIs against this; the transport swaps in
    // the socket, so only the path and query are used.
    PooledTransport::new("http://docker", move |request: BollardRequest| {
        let client = Arc::clone(&client);
        let (mut parts, body) = request.into_parts();
        let path_and_query = version.prefix(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        parts.uri = hyperlocal::Uri::new(&socket, &path_and_query).into();
        let request = BollardRequest::from_parts(parts, body);
        Box::pin(async move {
            client
                .request(request)
                .await
                .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
        })
    })
}

/// The same pooled, versioned transport for a plain-HTTP engine
/// (`tcp://HOST:PORT`): bollard's own HTTP client sends unversioned paths.
pub(crate) fn pooled_http(url: &str, version: ApiVersion) -> PooledTransport {
    let client = Arc::new(pool_builder().build(HttpConnector::new()));
    PooledTransport::new(url, move |request: BollardRequest| {
        let client = Arc::clone(&client);
        let request = versioned(request, &version);
        Box::pin(async move {
            let request = request?;
            client
                .request(request)
                .await
                .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
        })
    })
}

/// `request` with the negotiated version in front of its path, for the
/// TCP transports (plain and TLS), whose URIs keep bollard's scheme and host.
pub(crate) fn versioned(
    request: BollardRequest,
    version: &ApiVersion,
) -> Result<BollardRequest, bollard::errors::Error> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = version.prefix(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = path_and_query.parse().ok();
    let uri = hyper::Uri::from_parts(uri).map_err(|e| bollard::errors::Error::IOError {
        err: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    parts.uri = uri;
    Ok(BollardRequest::from_parts(parts, body))
}

/// What one request through a [`PooledTransport`] returns.
pub(crate) type Sent =
    Pin<Box<dyn Future<Output = Result<hyper::Response<Incoming>, bollard::errors::Error>> + Send>>;

type SendFn = Arc<dyn Fn(BollardRequest) -> Sent + Send + Sync>;

/// One engine's pooled, versioned transport: handed to bollard as its
/// custom transport, and kept by the [`EngineConnection`] for the one call
/// whose body it reads itself, as it arrives (`GET /images/json`, see
/// `list.rs`).
#[derive(Clone)]
pub(crate) struct PooledTransport {
    send: SendFn,
    /// `scheme://authority` that request URIs are rendered against.
    base: String,
    /// How long [`PooledTransport::get`] waits for the answer's head, as
    /// bollard waits for each of its calls (its client timeout).
    timeout: Duration,
}

impl std::fmt::Debug for PooledTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledTransport")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl PooledTransport {
    pub(crate) fn new(
        base: impl Into<String>,
        send: impl Fn(BollardRequest) -> Sent + Send + Sync + 'static,
    ) -> PooledTransport {
        PooledTransport {
            send: Arc::new(send),
            base: base.into(),
            timeout: Duration::from_secs(120),
        }
    }

    /// A bollard client over this transport: it shares the connection pool.
    /// `timeout_secs` also bounds [`PooledTransport::get`].
    pub(crate) fn docker(&mut self, timeout_secs: u64) -> Result<Docker, bollard::errors::Error> {
        self.timeout = Duration::from_secs(timeout_secs);
        let send = Arc::clone(&self.send);
        Docker::connect_with_custom_transport(
            move |request: BollardRequest| send(request),
            Some(self.base.clone()),
            timeout_secs,
            API_DEFAULT_VERSION,
        )
    }

    /// `GET path_and_query` (unversioned; the transport adds the version),
    /// with the response's body unread.
    pub(crate) async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, bollard::errors::Error> {
        self.send(hyper::Method::GET, path_and_query).await
    }

    /// `method path_and_query` with an empty body, the response's body unread.
    pub(crate) async fn send(
        &self,
        method: hyper::Method,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, bollard::errors::Error> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(bollard::body_full(hyper::body::Bytes::new()))?;
        tokio::time::timeout(self.timeout, (self.send)(request))
            .await
            .map_err(|_| bollard::errors::Error::RequestTimeoutError)?
    }
}

pub(crate) fn pool_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_max_idle_per_host(POOL_IDLE_PER_ENGINE)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new());
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_names_it_and_the_fix() {
        let err = parse_named("docker.sock").expect_err("no scheme");
        assert_eq!(
            err.to_string(),
            "invalid engine address `docker.sock`: unsupported scheme; use unix:///path/to/docker.sock or tcp://HOST:PORT"
        );
    }

    #[test]
    fn credentials_are_never_quoted() {
        let err = parse_named("tcp://ops:s3cret@10.0.0.1:2376").expect_err("credentials");
        let text = err.to_string();
        assert!(text.contains("tcp://<credentials>@10.0.0.1:2376"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("ops"), "{text}");
    }

    /// Each message names the settings in the owner's words: the library's
    /// by default, an owner's when it gives its own.
    #[test]
    fn messages_name_the_settings_in_the_owners_words() {
        let owner = SettingNames {
            address: "ADDR",
            the_address: "THE-ADDR",
            address_sources: "ADDR-OR-VAR",
            tls_ca: "CA-OPTION",
            tls_cert: "CERT-OPTION",
        };
        let unreachable = EngineError::Unreachable {
            host: "tcp://h:1".into(),
            why: "refused".into(),
            handshake_failed: true,
        };
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the Docker engine at tcp://h:1: refused; the TLS handshake failed: check that the CA of the engine's TLS files signed the engine's certificate, that it names this host, and that the engine accepts the client certificate; is dockerd running, and is the engine address right?"
        );
        assert_eq!(
            unreachable.message(&owner),
            "cannot reach the Docker engine at tcp://h:1: refused; the TLS handshake failed: check that CA-OPTION signed the engine's certificate, that it names this host, and that the engine accepts CERT-OPTION; is dockerd running, and is ADDR-OR-VAR right?"
        );
        let bad = parse_named("docker.sock").expect_err("bad");
        assert!(
            bad.message(&owner)
                .starts_with("invalid ADDR `docker.sock`: ")
        );
        for error in [unreachable, bad] {
            assert!(!error.to_string().contains("--"), "{error}");
        }
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
                handshake_failed: false,
            }
        );
    }
}
