//! The in-process contenders: a raw `GET /images/json` (the floor for any
//! scan) and the original one-at-a-time removal loop, on a bare HTTP/1.1
//! connection to the engine's unix socket with no client library in
//! between. The commit probe uses the same connection.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::seed::scope_filters;

/// One keep-alive HTTP/1.1 connection to an engine's unix socket, without
/// any client library in between.
pub struct RawConnection {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection").finish_non_exhaustive()
    }
}

impl RawConnection {
    pub async fn open(socket: &Path) -> Result<RawConnection> {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(RawConnection { sender, driver })
    }

    /// Sends one request; returns the status and the whole body.
    pub async fn send(&mut self, method: hyper::Method, uri: &str) -> Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "docker")
            .body(Empty::new())?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// `/images/json` with the scope's filters.
pub fn list_uri() -> Result<String> {
    let filters = serde_json::to_string(&scope_filters())?;
    Ok(format!("/images/json?filters={}", percent_encode(&filters)))
}

/// The floor: one raw `GET /images/json` with the two filters on a fresh
/// unix-socket connection, body read to the end and not decoded. Returns
/// the body size.
pub async fn raw_list(socket: &Path) -> Result<usize> {
    let mut connection = RawConnection::open(socket).await?;
    let (status, body) = connection.send(hyper::Method::GET, &list_uri()?).await?;
    if status != 200 {
        bail!("GET /images/json answered {status}");
    }
    Ok(body.len())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The original algorithm: list with the filters, then one
/// `DELETE /images/{id}?force=false&noprune=true` at a time, all on one
/// keep-alive connection. Returns how many it removed.
pub async fn one_at_a_time(socket: &Path) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct Listed {
        #[serde(rename = "Id")]
        id: String,
    }
    let mut connection = RawConnection::open(socket).await?;
    let (status, body) = connection.send(hyper::Method::GET, &list_uri()?).await?;
    if status != 200 {
        bail!("GET /images/json answered {status}");
    }
    let images: Vec<Listed> = serde_json::from_slice(&body)?;
    let mut removed = 0;
    for image in images {
        let uri = format!("/images/{}?force=false&noprune=true", image.id);
        let (status, body) = connection.send(hyper::Method::DELETE, &uri).await?;
        if status != 200 {
            bail!(
                "DELETE /images/{} answered {status}: {}",
                image.id,
                String::from_utf8_lossy(&body)
            );
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_encoded() {
        assert_eq!(
            percent_encode("{\"a\":[\"b=c\"]}"),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
