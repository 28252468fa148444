//! [`EngineClient`]: one engine as the daemon's sweep sees it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cascade_classify::Disposition;
use cascade_cleanup::{
    DockerError, DockerImages, EngineEvent, EngineEvents, EngineFacts, ListedImage, RemovalAnswer,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use crate::address::EngineAddress;
use crate::connect::{
    EngineError, NoAnswer, POOL_IDLE_TIMEOUT, negotiate, parse_named, tls_config,
};
use crate::images::EngineConnection;
use crate::names::SettingNames;
use crate::tls::TlsFiles;

/// One engine as the daemon's sweep sees it. Creating it contacts nothing;
/// the first call connects and negotiates the API version, and a failure is
/// a transient `DockerError` of that call, so the sweep reports a failed scan
/// and its loop tries again on the next interval. Every error message starts
/// with the engine's address, so logs and Sentry events say which engine.
///
/// It negotiates again whenever it reconnects, so an engine upgraded under a
/// running daemon is spoken to in its own API version: after a call failed
/// without an answer (the engine went away), when the pool has closed its
/// idle connections (no call for [`POOL_IDLE_TIMEOUT`]: the next call opens
/// a new one, maybe to a restarted engine), and when the engine refuses the
/// version (400 "client version ... is too old"), retrying that call once.
#[derive(Debug, Clone)]
pub struct EngineClient {
    address: EngineAddress,
    /// What error messages call the settings they point at.
    names: SettingNames,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// A call after this long without one reconnects, so it renegotiates.
    pub(crate) reconnect_after: Duration,
    engine: Arc<tokio::sync::Mutex<Option<Connected>>>,
}

#[derive(Debug)]
struct Connected {
    engine: EngineConnection,
    last_call: Instant,
}

impl EngineClient {
    /// Checks the address only ([`EngineError::BadAddress`]); contacts nothing.
    pub fn new(host: &str, timeout: Duration) -> Result<EngineClient, EngineError> {
        EngineClient::with_tls(&parse_named(host)?, None, timeout)
    }

    /// A client of `address`, over TLS when `tls` is given. The files are
    /// read here, once: one that cannot be used is [`EngineError::Tls`] at
    /// start-up, not a failed scan every interval. Contacts nothing.
    pub fn with_tls(
        address: &EngineAddress,
        tls: Option<&TlsFiles>,
        timeout: Duration,
    ) -> Result<EngineClient, EngineError> {
        let tls = tls_config(address.as_str(), address.target(), tls)?;
        Ok(EngineClient {
            address: address.clone(),
            names: SettingNames::LIBRARY,
            timeout,
            tls,
            reconnect_after: POOL_IDLE_TIMEOUT,
            engine: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// Words its error messages with `names` (the owner's names of the
    /// address and TLS settings) instead of the library's.
    pub fn with_names(mut self, names: SettingNames) -> EngineClient {
        self.names = names;
        self
    }

    /// The engine's address.
    pub fn address(&self) -> &EngineAddress {
        &self.address
    }

    /// The API version the engine is spoken to in, once connected.
    pub async fn api_version(&self) -> Option<String> {
        let slot = self.engine.lock().await;
        slot.as_ref().and_then(|c| c.engine.api_version())
    }

    /// The negotiated engine, connecting on first use and after a failed
    /// try, negotiating again after the pool went idle.
    async fn engine(&self) -> Result<EngineConnection, DockerError> {
        let mut slot = self.engine.lock().await;
        if let Some(connected) = slot.as_mut() {
            if connected.last_call.elapsed() < self.reconnect_after {
                connected.last_call = Instant::now();
                return Ok(connected.engine.clone());
            }
            let before = connected.engine.api_version();
            match connected.engine.renegotiate(self.timeout).await {
                Ok(version) => {
                    if before.as_deref() != Some(version.as_str()) {
                        tracing::info!(engine = %self.address, api_version = %version, "the engine's API version changed");
                    }
                    connected.last_call = Instant::now();
                    return Ok(connected.engine.clone());
                }
                Err(why) => {
                    *slot = None;
                    return Err(self.unreachable(NoAnswer {
                        why,
                        handshake_failed: false,
                    }));
                }
            }
        }
        let engine = negotiate(self.address.target(), self.tls.as_ref(), self.timeout)
            .await
            .map_err(|no| self.unreachable(no))?
            .with_names(self.names);
        tracing::info!(engine = %self.address, api_version = engine.api_version().unwrap_or_default(), "connected to the Docker engine");
        *slot = Some(Connected {
            engine: engine.clone(),
            last_call: Instant::now(),
        });
        Ok(engine)
    }

    fn unreachable(&self, no: NoAnswer) -> DockerError {
        DockerError {
            // Cannot connect: transient, like any connection failure.
            disposition: Disposition::Transient,
            status: None,
            message: no.at(self.address.as_str()).message(&self.names),
        }
    }

    /// Runs one call on the engine; see the type's doc for when it
    /// negotiates again.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, DockerError>
    where
        F: Fn(EngineConnection) -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        let engine = self.engine().await?;
        let result = match f(engine.clone()).await {
            Err(error) if refuses_the_version(&error) => {
                tracing::info!(engine = %self.address, error = %error.message, "the engine refused the API version; negotiating again");
                match engine.renegotiate(self.timeout).await {
                    Ok(_) => f(engine).await,
                    Err(_) => Err(error),
                }
            }
            other => other,
        };
        if let Err(error) = &result
            && error.status.is_none()
        {
            // No answer at all: whatever answers next may be another
            // engine (restarted, upgraded), so connect afresh.
            *self.engine.lock().await = None;
        }
        result.map_err(|e| self.named(e))
    }

    fn named(&self, error: DockerError) -> DockerError {
        DockerError {
            message: format!("engine {}: {}", self.address, error.message),
            ..error
        }
    }
}

/// The engine's answer to a request in an API version it does not serve.
fn refuses_the_version(error: &DockerError) -> bool {
    error.status == Some(400) && error.message.contains("API version")
}

#[async_trait]
impl DockerImages for EngineClient {
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        self.call(|e| async move { e.facts().await }).await
    }

    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.call(|e| async move { e.list_all_images().await })
            .await
    }

    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        self.call(|e| async move { e.list_images(filters).await })
            .await
    }

    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        self.call(|e| async move { e.inspect_image(id).await })
            .await
    }

    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        self.call(|e| async move { e.images_used_by_containers().await })
            .await
    }

    async fn local_data_root(&self, image: &str) -> Option<std::path::PathBuf> {
        self.engine().await.ok()?.local_data_root(image).await
    }

    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        self.call(|e| async move { e.tag_image(id, repository, tag).await })
            .await
    }

    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError> {
        // EngineConnection's implementation: force=false, noprune=true.
        self.call(|e| async move { e.remove_image(name).await })
            .await
    }
}

/// The engine's events, subscribed through the same lazy connection: an
/// engine that is down yields an error, and the follower retries with backoff.
impl EngineEvents for EngineClient {
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        let client = self.clone();
        let labels = labels.to_vec();
        futures_util::stream::once(async move { client.engine().await.map(|e| (e, client)) })
            .flat_map(move |connected| match connected {
                Ok((engine, client)) => engine
                    .subscribe(&labels)
                    .map(move |event| event.map_err(|e| client.named(e)))
                    .boxed(),
                Err(error) => futures_util::stream::iter([Err(error)]).boxed(),
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_engine_is_a_transient_scan_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!("unix://{}/absent.sock", dir.path().display());
        let client = EngineClient::new(&host, Duration::from_secs(1)).expect("valid address");
        let err = client
            .list_images(&HashMap::new())
            .await
            .expect_err("nobody answers");
        assert_eq!(err.disposition, Disposition::Transient);
        assert!(err.message.contains(&host), "{}", err.message);
        assert!(client.engine.lock().await.is_none(), "retried next time");
    }

    #[test]
    fn a_bad_address_is_refused_before_any_contact() {
        let err = EngineClient::new("tcp://host", Duration::from_secs(1)).expect_err("no port");
        assert!(matches!(err, EngineError::BadAddress { .. }), "{err}");
    }
}
