//! A running `cascade-janitor run` seen from outside: the metrics address
//! it logs, and plain HTTP GETs of its `/metrics` and `/healthz`.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::{StderrLog, wait_until};

const SERVING: &str = "serving /metrics and /healthz on http://127.0.0.1:";

/// The port a daemon started with `--metrics-addr 127.0.0.1:0` bound, read
/// from its log line (waits up to 20 s for it).
pub async fn metrics_port(log: &StderrLog) -> Result<u16> {
    wait_until(
        Duration::from_secs(20),
        "the metrics address in the log",
        || async { log.contains(SERVING) },
    )
    .await?;
    log.lines()
        .iter()
        .find_map(|l| {
            let rest = l.split(SERVING).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .context("the port in the log line")
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, 5 s read timeout): the status
/// and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of the first sample whose name and labels start with `prefix`.
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
