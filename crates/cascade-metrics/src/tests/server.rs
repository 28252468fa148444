//! `server.rs`: binding the metrics address, and the HTTP server over loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

#[tokio::test]
async fn a_port_in_use_names_the_address_and_the_fix_and_no_flag() {
    let held = bind_metrics_addr("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = held.local_addr().unwrap();
    let err = bind_metrics_addr(addr).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot bind the metrics address {addr}: ")),
        "{err}"
    );
    assert!(
        err.ends_with("choose a free port and an address of this host, e.g. 127.0.0.1:9464"),
        "{err}"
    );
    assert!(!err.contains('\n') && !err.contains("--"), "{err}");
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// One GET on a fresh HTTP/1 connection; the connection ends with the call.
async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    conn.await.unwrap().unwrap();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_and_healthz_until_cancelled() {
    let (t, clock) = telemetry(HOUR);
    let alive = Arc::new(AtomicBool::new(true));
    let observe = t.engine(E1, probe(&alive));
    observe(&success_report());

    let listener = bind_metrics_addr("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(listener, Arc::clone(&t), shutdown.clone()));

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.content_type, OPENMETRICS_CONTENT_TYPE);
    assert_eq!(metrics.body, t.render());
    assert_eq!(
        v(
            &metrics.body,
            "cascade_janitor_images_removed_total",
            &[("engine", E1)]
        ),
        2.0
    );

    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["engines"][0]["engine"], E1);

    clock.advance(HOUR + Duration::from_secs(1));
    let stale = get(addr, "/healthz").await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    let json: serde_json::Value = serde_json::from_str(&stale.body).unwrap();
    assert_eq!(json["engines"][0]["seconds_since_last_pass"], 3601);

    observe(&success_report());
    assert_eq!(get(addr, "/healthz").await.status, 200);
    alive.store(false, Ordering::SeqCst);
    let dead = get(addr, "/healthz").await;
    assert_eq!(dead.status, 503, "{}", dead.body);
    assert_eq!(json_alive(&dead.body), Some(false));

    assert_eq!(get(addr, "/").await.status, 404);

    shutdown.cancel();
    // A watchdog, not a timing assertion: a server that ignores the token
    // fails here instead of hanging the suite.
    let ended = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("serve returns after the token is cancelled");
    ended.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

fn json_alive(body: &str) -> Option<bool> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["engines"][0]["alive"].as_bool()
}
