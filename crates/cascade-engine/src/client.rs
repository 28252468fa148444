//! [`EngineClient`]: one engine as the daemon's sweep sees it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cascade_classify::Disposition;
use cascade_cleanup::{DockerError, DockerImages, EngineEvent, EngineEvents, ListedImage};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::address::Address;
use crate::connect::{EngineError, negotiate, parse_named, tls_config};
use crate::images::Engine;
use crate::tls::TlsFiles;

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
    tls: Option<Arc<rustls::ClientConfig>>,
    engine: Arc<tokio::sync::Mutex<Option<Engine>>>,
}

impl EngineClient {
    /// Checks the address only ([`EngineError::BadAddress`]); contacts nothing.
    pub fn new(host: &str, timeout: Duration) -> Result<EngineClient, EngineError> {
        EngineClient::with_tls(host, None, timeout)
    }

    /// [`EngineClient::new`] over TLS when `tls` is given. The files are
    /// read here, once: one that cannot be used is [`EngineError::Tls`] at
    /// start-up, not a failed scan every interval.
    pub fn with_tls(
        host: &str,
        tls: Option<&TlsFiles>,
        timeout: Duration,
    ) -> Result<EngineClient, EngineError> {
        let address = parse_named(host)?;
        let tls = tls_config(host, &address, tls)?;
        Ok(EngineClient {
            host: host.to_string(),
            address,
            timeout,
            tls,
            engine: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The negotiated engine, connecting on first use and after a failed try.
    async fn engine(&self) -> Result<Engine, DockerError> {
        let mut slot = self.engine.lock().await;
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let engine = negotiate(&self.address, self.tls.as_ref(), self.timeout)
            .await
            .map(Engine::new)
            .map_err(|why| DockerError {
                // Cannot connect: transient, like any connection failure.
                disposition: Disposition::Transient,
                status: None,
                message: EngineError::Unreachable {
                    host: self.host.clone(),
                    why,
                }
                .to_string(),
            })?;
        tracing::info!(engine = %self.host, "connected to the Docker engine");
        *slot = Some(engine.clone());
        Ok(engine)
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
        let engine = self.engine().await?;
        engine.list_images(filters).await.map_err(|e| self.named(e))
    }

    async fn engine_time(&self) -> Result<Option<i64>, DockerError> {
        let engine = self.engine().await?;
        engine.engine_time().await.map_err(|e| self.named(e))
    }

    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        let engine = self.engine().await?;
        engine
            .images_used_by_containers()
            .await
            .map_err(|e| self.named(e))
    }

    async fn local_data_root(&self) -> Option<std::path::PathBuf> {
        self.engine().await.ok()?.local_data_root().await
    }

    async fn remove_image(&self, id: &str) -> Result<(), DockerError> {
        let engine = self.engine().await?;
        // Engine's implementation: force=false, noprune=true.
        engine.remove_image(id).await.map_err(|e| self.named(e))
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
