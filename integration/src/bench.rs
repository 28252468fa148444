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
        let by_config = present.is_empty() || self.ids.iter().any(|id| present.contains(id));
        let missing: Vec<ImageSpec> = if by_config {
            self.specs
                .iter()
                .zip(&self.ids)
                .filter(|(_, id)| !present.contains(*id))
                .map(|(spec, _)| spec.clone())
                .collect()
        } else {
            // The containerd store lists manifest digests, not the config
            // digests the seed knows (`fixtures::listed_ids`); inspecting
            // every image to match them costs as much as a load. Every
            // contender removes all of the labelled images and none of the
            // decoys (each is checked), so count instead.
            let ours = count_ours(docker).await?;
            if ours == self.images && present.len() >= self.images + self.decoys {
                Vec::new()
            } else if ours == 0 && present.len() >= self.decoys {
                self.specs[..self.images].to_vec()
            } else {
                self.specs.clone()
            }
        };
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
/// On the containerd store a listing that overlaps a removal can answer 404
/// ("content digest ...: not found"); it is asked again, as in
/// `engine::all_image_ids`.
pub async fn count_ours(docker: &Docker) -> Result<usize> {
    let filters = scope_filters();
    let mut attempts = 0;
    loop {
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        match docker.list_images(Some(options)).await {
            Ok(images) => return Ok(images.len()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e).context("listing seeded images"),
        }
    }
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

/// The nearest-rank percentile (`p` in 0..=100) of sorted values: the
/// smallest sample with at least `p` % of the samples at or below it, so it
/// is always a measured value, never an interpolation.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Some(Latency {
            samples: ms.len(),
            p50_ms: percentile(&ms, 50.0)?,
            p99_ms: percentile(&ms, 99.0)?,
            max_ms: *ms.last()?,
        })
    }
}

/// The fields of one `/proc/<pid>/stat` line the benchmarks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command name (at most 15 bytes: `containerd-shim` is cut).
    pub comm: String,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// cutime + cstime: what its reaped children used. Counted with the
    /// process, so a child that exits between two readings is not lost.
    pub child_ticks: u64,
}

impl ProcStat {
    pub fn parse(line: &str) -> Result<ProcStat> {
        // The command name sits in parentheses and may itself hold spaces
        // and parentheses: split at the first `(` and the last `)`.
        let (pid, rest) = line
            .split_once('(')
            .with_context(|| format!("no `(` in the stat line `{line}`"))?;
        let (comm, rest) = rest
            .rsplit_once(')')
            .with_context(|| format!("no `)` in the stat line `{line}`"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) ... utime(11) stime(12)
        // cutime(13) cstime(14).
        let field = |i: usize, name: &str| -> Result<u64> {
            fields
                .get(i)
                .with_context(|| format!("no {name} in the stat line `{line}`"))?
                .parse::<u64>()
                .with_context(|| format!("{name} in the stat line `{line}`"))
        };
        Ok(ProcStat {
            pid: pid
                .trim()
                .parse()
                .with_context(|| format!("pid in the stat line `{line}`"))?,
            comm: comm.to_string(),
            ppid: u32::try_from(field(1, "ppid")?)?,
            ticks: field(11, "utime")? + field(12, "stime")?,
            child_ticks: field(13, "cutime")? + field(14, "cstime")?,
        })
    }
}

/// Every process under `proc_dir` (`/proc`, or a fake in a test). A process
/// that exits while it is read is skipped: it is not there any more.
pub fn read_processes(proc_dir: &std::path::Path) -> Result<Vec<ProcStat>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(proc_dir).with_context(|| format!("reading {}", proc_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        out.push(ProcStat::parse(&line)?);
    }
    Ok(out)
}

/// The process `root` and all its descendants, root first.
pub fn process_tree(root: u32, all: &[ProcStat]) -> Vec<ProcStat> {
    let mut children: HashMap<u32, Vec<&ProcStat>> = HashMap::new();
    for p in all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<ProcStat> = all.iter().filter(|p| p.pid == root).cloned().collect();
    let mut i = 0;
    while i < out.len() {
        let pid = out[i].pid;
        // pid 0 is the kernel's parent of init and kthreadd: never a child.
        if pid != 0
            && let Some(kids) = children.get(&pid)
        {
            out.extend(kids.iter().map(|p| (*p).clone()));
        }
        i += 1;
    }
    out
}

/// CPU an engine's processes used, in clock ticks: the nested container's
/// init (dockerd) and everything under it, split into dockerd, containerd
/// (the managed child and any other `containerd*` process, shims
/// included) and anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineCpu {
    pub dockerd: u64,
    pub containerd: u64,
    pub other: u64,
}

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

impl EngineCpu {
    /// The tree rooted at `root` in a process listing.
    pub fn of_tree(root: u32, all: &[ProcStat]) -> EngineCpu {
        let mut cpu = EngineCpu::default();
        for p in process_tree(root, all) {
            let ticks = p.ticks + p.child_ticks;
            if p.pid == root {
                cpu.dockerd += ticks;
            } else if p.comm.starts_with("containerd") {
                cpu.containerd += ticks;
            } else {
                cpu.other += ticks;
            }
        }
        cpu
    }

    /// Reads `/proc` now.
    pub fn read(root: u32) -> Result<EngineCpu> {
        let all = read_processes(std::path::Path::new("/proc"))?;
        anyhow::ensure!(
            all.iter().any(|p| p.pid == root),
            "the nested engine's process {root} is gone"
        );
        Ok(EngineCpu::of_tree(root, &all))
    }

    /// What was used between `before` and `self`.
    pub fn since(self, before: EngineCpu) -> EngineCpu {
        EngineCpu {
            dockerd: self.dockerd.saturating_sub(before.dockerd),
            containerd: self.containerd.saturating_sub(before.containerd),
            other: self.other.saturating_sub(before.other),
        }
    }

    pub fn plus(self, other: EngineCpu) -> EngineCpu {
        EngineCpu {
            dockerd: self.dockerd + other.dockerd,
            containerd: self.containerd + other.containerd,
            other: self.other + other.other,
        }
    }

    pub fn total_seconds(self) -> f64 {
        (self.dockerd + self.containerd + self.other) as f64 / CLOCK_TICKS_PER_SECOND
    }
}

/// One commit the probe made.
#[derive(Debug, Clone, Copy)]
pub struct CommitSample {
    pub started: Instant,
    pub latency: Duration,
}

/// The latencies of the samples that started in `[from, until]`.
pub fn started_within(samples: &[CommitSample], from: Instant, until: Instant) -> Vec<Duration> {
    samples
        .iter()
        .filter(|s| s.started >= from && s.started <= until)
        .map(|s| s.latency)
        .collect()
}

/// Failed commits in a row after which the probe gives up.
const PROBE_FAILURES_IN_A_ROW: usize = 5;

/// A closed loop of `POST /commit?container=<id>&repo=probe&tag=latest` on
/// its own connection, one every `period` (or at once when a commit took
/// longer): a stand-in for the CI jobs that share the engine with a sweep.
/// Each commit leaves the previous `probe:latest` dangling and
/// unlabelled: a decoy the janitor must keep.
pub struct CommitProbe {
    samples: tokio::sync::watch::Receiver<Vec<CommitSample>>,
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl std::fmt::Debug for CommitProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitProbe").finish_non_exhaustive()
    }
}

impl CommitProbe {
    pub async fn start(
        socket: &std::path::Path,
        container: &str,
        period: Duration,
    ) -> Result<CommitProbe> {
        let mut connection = RawConnection::open(socket).await?;
        let uri = format!("/commit?container={container}&repo=probe&tag=latest");
        let (sender, samples) = tokio::sync::watch::channel(Vec::new());
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let mut failed_in_a_row = 0;
            loop {
                let started = Instant::now();
                let (status, body) = tokio::select! {
                    r = connection.send(hyper::Method::POST, &uri) => r?,
                    () = stop.cancelled() => return Ok(()),
                };
                let latency = started.elapsed();
                if status == 201 {
                    failed_in_a_row = 0;
                } else {
                    // The containerd store fails a commit that races its GC
                    // ("lease does not exist"); a router retries, and the
                    // time it waited still counts. A probe that cannot
                    // commit at all stops.
                    failed_in_a_row += 1;
                    let body = String::from_utf8_lossy(&body);
                    if failed_in_a_row >= PROBE_FAILURES_IN_A_ROW {
                        bail!(
                            "the probe's commit answered {status} {failed_in_a_row} times in a row: {body}"
                        );
                    }
                    eprintln!(
                        "cascade-bench: a probe commit answered {status} (counted, retried): {}",
                        body.trim()
                    );
                }
                sender.send_modify(|s| s.push(CommitSample { started, latency }));
                tokio::select! {
                    () = tokio::time::sleep_until((started + period).into()) => {}
                    () = stop.cancelled() => return Ok(()),
                }
            }
        });
        Ok(CommitProbe {
            samples,
            cancel,
            task,
        })
    }

    /// Waits until `n` commits that started at or after `from` finished.
    /// Fails if the probe stopped (its error says why) or after `limit`.
    pub async fn wait_for(&mut self, from: Instant, n: usize, limit: Duration) -> Result<()> {
        let waited = tokio::time::timeout(
            limit,
            self.samples
                .wait_for(|s| s.iter().rev().take_while(|c| c.started >= from).count() >= n),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => {
                // The sender is gone: the probe's task ended with an error.
                let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
                task.await??;
                bail!("the commit probe stopped")
            }
            Err(_) => bail!("the commit probe made fewer than {n} commits in {limit:?}"),
        }
    }

    /// Every commit so far.
    pub fn samples(&self) -> Vec<CommitSample> {
        self.samples.borrow().clone()
    }

    /// Stops the loop (a commit in flight is abandoned) and returns every
    /// finished commit.
    pub async fn stop(self) -> Result<Vec<CommitSample>> {
        self.cancel.cancel();
        let samples = self.samples.borrow().clone();
        self.task.await??;
        Ok(samples)
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
    fn percentile_is_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 99.0), Some(198.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&values, 101.0), None);
    }

    #[test]
    fn latency_sorts_before_it_ranks() {
        let samples: Vec<Duration> = [30, 10, 20, 40].map(Duration::from_millis).to_vec();
        let l = Latency::of(&samples).expect("samples");
        assert_eq!(
            (l.samples, l.p50_ms, l.p99_ms, l.max_ms),
            (4, 20.0, 40.0, 40.0)
        );
        assert!(Latency::of(&[]).is_none());
    }

    #[test]
    fn a_stat_line_parses_even_with_parentheses_in_the_name() -> Result<()> {
        let line =
            "4242 (containerd) S 4200 4242 4242 0 -1 4194560 1 0 0 0 150 25 7 3 20 0 12 0 100 0 0";
        let p = ProcStat::parse(line)?;
        assert_eq!(
            p,
            ProcStat {
                pid: 4242,
                comm: "containerd".into(),
                ppid: 4200,
                ticks: 175,
                child_ticks: 10,
            }
        );
        let odd = ProcStat::parse("7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 1 2 20 0")?;
        assert_eq!(
            (odd.comm.as_str(), odd.ppid, odd.ticks, odd.child_ticks),
            ("a) b (c)", 1, 11, 3)
        );
        let error = ProcStat::parse("7 (x) R 1 2 3")
            .expect_err("too short")
            .to_string();
        assert!(error.contains("utime"), "{error}");
        assert!(ProcStat::parse("garbage").is_err());
        Ok(())
    }

    fn stat(pid: u32, comm: &str, ppid: u32, ticks: u64, child_ticks: u64) -> String {
        format!("{pid} ({comm}) S {ppid} 0 0 0 -1 0 0 0 0 0 {ticks} 0 {child_ticks} 0 20 0 1 0")
    }

    #[test]
    fn the_engine_tree_is_found_in_a_proc_listing() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let write = |pid: u32, line: String| -> Result<()> {
            std::fs::create_dir(dir.path().join(pid.to_string()))?;
            std::fs::write(dir.path().join(pid.to_string()).join("stat"), line)?;
            Ok(())
        };
        write(1, stat(1, "systemd", 0, 1000, 0))?;
        write(90, stat(90, "containerd-shim", 1, 5, 0))?; // the host's shim
        write(100, stat(100, "dockerd", 90, 300, 20))?; // the nested engine
        write(101, stat(101, "containerd", 100, 200, 0))?;
        write(102, stat(102, "containerd-shim", 101, 7, 0))?;
        write(103, stat(103, "runc", 102, 3, 0))?;
        write(200, stat(200, "dockerd", 1, 9999, 0))?; // the host's engine
        std::fs::create_dir(dir.path().join("self"))?; // not a pid: skipped
        std::fs::create_dir(dir.path().join("104"))?; // exited while read: skipped
        let all = read_processes(dir.path())?;
        assert_eq!(all.len(), 7);
        let mut tree: Vec<u32> = process_tree(100, &all).iter().map(|p| p.pid).collect();
        tree.sort_unstable();
        assert_eq!(tree, [100, 101, 102, 103]);
        assert_eq!(
            EngineCpu::of_tree(100, &all),
            EngineCpu {
                dockerd: 320,
                containerd: 207,
                other: 3,
            }
        );
        assert!(process_tree(999, &all).is_empty());
        Ok(())
    }

    #[test]
    fn engine_cpu_differences_and_sums() {
        let before = EngineCpu {
            dockerd: 100,
            containerd: 50,
            other: 0,
        };
        let after = EngineCpu {
            dockerd: 250,
            containerd: 80,
            other: 20,
        };
        let used = after.since(before);
        assert_eq!((used.dockerd, used.containerd, used.other), (150, 30, 20));
        assert_eq!(used.total_seconds(), 2.0);
        assert_eq!(used.plus(used).total_seconds(), 4.0);
    }

    #[test]
    fn only_commits_that_started_in_the_window_count() {
        let t0 = Instant::now();
        let at = |ms: u64, lat: u64| CommitSample {
            started: t0 + Duration::from_millis(ms),
            latency: Duration::from_millis(lat),
        };
        let samples = [at(0, 5), at(50, 900), at(100, 6), at(150, 7), at(200, 8)];
        let inside = started_within(
            &samples,
            t0 + Duration::from_millis(50),
            t0 + Duration::from_millis(150),
        );
        assert_eq!(inside, [900, 6, 7].map(Duration::from_millis));
    }

    #[test]
    fn filters_are_encoded() {
        assert_eq!(
            percent_encode("{\"a\":[\"b=c\"]}"),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
