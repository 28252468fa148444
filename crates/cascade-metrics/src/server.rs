//! The HTTP endpoint: `/metrics` and `/healthz` over axum, and binding its
//! listener with an error that names the address and the fix. Parsing the
//! address is the owner's (the binary's `cascade-config` parses
//! `--metrics-addr`), which hands over a `SocketAddr`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Telemetry;

/// Content type of `/metrics`: prometheus-client writes OpenMetrics text
/// (counters as `<name>_total`, a final `# EOF`). Prometheus picks its parser
/// from this header.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An address for `/metrics` and `/healthz` that cannot be bound. The
/// message is one line naming the address, why, and the fix; it names no
/// setting (the owner knows where the address came from: the binary names
/// its `--metrics-addr` and exits 2).
#[derive(Debug, thiserror::Error)]
pub enum MetricsAddrError {
    /// The operating system refused the address (a port in use, an address
    /// of another host, a privileged port).
    #[error(
        "cannot bind the metrics address {addr}: {source}; choose a free port and an address of this host, e.g. 127.0.0.1:9464"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it was refused.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the listener `serve` takes. Bind before contacting any engine, so a
/// port in use is a configuration error reported at start-up.
pub async fn bind_metrics_addr(addr: SocketAddr) -> Result<TcpListener, MetricsAddrError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsAddrError::Bind { addr, source })
}

/// The routes, for embedding in another server or for tests.
pub fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(telemetry)
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` is
/// cancelled, then stops accepting and waits for open requests to finish.
/// Errors only if accepting connections fails for good.
pub async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        telemetry.render(),
    )
        .into_response()
}

async fn healthz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let report = telemetry.health();
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    match serde_json::to_string(&report) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding /healthz failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
