//! The HTTP endpoint: `/metrics` and `/healthz` over axum, and binding the
//! `--metrics-addr` listener with an operator-facing error. Parsing the
//! address is configuration's (`cascade-config`), which hands over a
//! `SocketAddr`.

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

/// The flag whose value these errors talk about.
pub const METRICS_ADDR_FLAG: &str = "--metrics-addr";

/// Content type of `/metrics`: prometheus-client writes OpenMetrics text
/// (counters as `<name>_total`, a final `# EOF`). Prometheus picks its parser
/// from this header.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A `--metrics-addr` that cannot be bound. The message is one line naming the
/// flag, the address and the fix; the binary should exit 2 (bad configuration).
#[derive(Debug, thiserror::Error)]
pub enum MetricsAddrError {
    #[error(
        "{METRICS_ADDR_FLAG} {addr}: cannot bind: {source}; choose a free port and an address of this host, e.g. 127.0.0.1:9464"
    )]
    Bind {
        addr: SocketAddr,
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
