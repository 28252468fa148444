//! Benchmark seeding and the contenders `cargo xtask bench-compare` times.
//!
//! One [`SeedSet`] is generated once per size and loaded again before each
//! contender, so every contender meets the identical image set: the same
//! configs, the same `created` times, hence the same image IDs.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::ListImagesOptionsBuilder;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::fixtures::{self, ImageSpec};

/// The label the seeded images carry (the janitor's default scope).
pub const LABEL: (&str, &str) = ("cascade.managed", "true");

/// Every seeded image is this old when measured from [`SEED_EPOCH`]; any
/// minimum age the janitor uses by default passes.
const SEED_AGE: Duration = Duration::from_secs(2 * 3600);

/// The fixed "now" the seed counts ages back from (2026-01-01T00:00:00Z):
/// the archive, and so every image ID, is the same in every run.
pub const SEED_EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// `images` labelled dangling images and `decoys` unlabelled dangling ones.
#[derive(Debug, Clone)]
pub struct SeedSet {
    pub images: usize,
    pub decoys: usize,
    specs: Vec<ImageSpec>,
    /// Image IDs of `specs`, in order: the labelled images first.
    ids: Vec<String>,
}

/// Concurrent `docker load` requests: the engine spends most of a load
/// writing each image's config and metadata, and overlaps that across
/// requests.
const LOAD_STREAMS: usize = 4;

impl SeedSet {
    pub fn new(images: usize, decoys: usize) -> Result<SeedSet> {
        let mut specs = Vec::with_capacity(images + decoys);
        specs.extend((0..images).map(|i| {
            ImageSpec::new(&format!("bench-{i}"))
                .label(LABEL.0, LABEL.1)
                .age(SEED_AGE)
        }));
        specs.extend((0..decoys).map(|i| ImageSpec::new(&format!("decoy-{i}")).age(SEED_AGE)));
        let (_, ids) = fixtures::archive_at(&specs, UNIX_EPOCH + SEED_EPOCH)?;
        Ok(SeedSet {
            images,
            decoys,
            specs,
            ids,
        })
    }

    /// Image IDs of the labelled images.
    pub fn ours(&self) -> &[String] {
        &self.ids[..self.images]
    }

    /// Image IDs of the decoys.
    pub fn decoy_ids(&self) -> &[String] {
        &self.ids[self.images..]
    }

    /// The whole set as one `docker load` archive.
    pub fn archive(&self) -> Result<Bytes> {
        Ok(fixtures::archive_at(&self.specs, UNIX_EPOCH + SEED_EPOCH)?
            .0
            .into())
    }

    /// Makes the engine hold the whole set again: loads only the images
    /// that are missing (loading an image that is present costs the engine
    /// as much as a new one), split over a few concurrent loads. Returns
    /// how many it loaded and how long that took.
    pub async fn restore(&self, docker: &Docker) -> Result<(usize, Duration)> {
        let started = Instant::now();
        let present = crate::engine::all_image_ids(docker).await?;
        let missing: Vec<ImageSpec> = self
            .specs
            .iter()
            .zip(&self.ids)
            .filter(|(_, id)| !present.contains(*id))
            .map(|(spec, _)| spec.clone())
            .collect();
        if missing.is_empty() {
            return Ok((0, started.elapsed()));
        }
        let chunk = missing.len().div_ceil(LOAD_STREAMS);
        let loads = missing.chunks(chunk).map(|specs| async move {
            let (archive, _) = fixtures::archive_at(specs, UNIX_EPOCH + SEED_EPOCH)?;
            fixtures::load_archive(docker, archive.into()).await
        });
        futures_util::future::try_join_all(loads).await?;
        Ok((missing.len(), started.elapsed()))
    }
}

/// The engine filters of the scope: `dangling=true` and the label.
pub fn scope_filters() -> HashMap<String, Vec<String>> {
    HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec![format!("{}={}", LABEL.0, LABEL.1)],
        ),
    ])
}

/// Counts the labelled dangling images on the engine (engine filter only:
/// this checks the seed, it decides nothing).
pub async fn count_ours(docker: &Docker) -> Result<usize> {
    let filters = scope_filters();
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    Ok(docker
        .list_images(Some(options))
        .await
        .context("listing seeded images")?
        .len())
}

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
    pub async fn open(socket: &std::path::Path) -> Result<RawConnection> {
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
pub async fn raw_list(socket: &std::path::Path) -> Result<usize> {
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
pub async fn one_at_a_time(socket: &std::path::Path) -> Result<usize> {
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

/// Median, minimum and maximum of some durations.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        secs.sort_by(f64::total_cmp);
        let n = secs.len();
        let median = if n % 2 == 1 {
            secs[n / 2]
        } else {
            (secs[n / 2 - 1] + secs[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: secs[0],
            max: secs[n - 1],
            runs: n,
        })
    }
}

/// Seconds since the Unix epoch, for file names and records.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_identical_across_generations() -> Result<()> {
        let a = SeedSet::new(50, 5)?;
        let b = SeedSet::new(50, 5)?;
        assert_eq!(a.archive()?, b.archive()?);
        assert_eq!(a.ours().len(), 50);
        assert_eq!(a.decoy_ids().len(), 5);
        // A smaller set is a prefix of a larger one: same names, same IDs.
        let small = SeedSet::new(10, 5)?;
        assert_eq!(small.ours(), &a.ours()[..10]);
        let mut all: Vec<_> = a.ours().iter().chain(a.decoy_ids()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 55, "every image has its own ID");
        Ok(())
    }

    #[test]
    fn summary_takes_the_middle() {
        let s = Summary::of(&[3, 1, 2, 10].map(Duration::from_secs)).expect("samples");
        assert_eq!((s.median, s.min, s.max, s.runs), (2.5, 1.0, 10.0, 4));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn filters_are_encoded() {
        assert_eq!(
            percent_encode("{\"a\":[\"b=c\"]}"),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
