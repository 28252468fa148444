//! One pass: list → verify → age check → remove → classify → report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade_classify::{Disposition, Severity};
use cascade_scope::{ImageFacts, OutOfScope, Scope};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::docker::{DockerError, DockerImages, ImageStore, ListedImage};
use crate::pace::{Concurrency, RemovalOutcome, RemovalPace};
use crate::sentry_report;

/// Default minimum age: an image younger than this may be a step of a build
/// that is still running.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(10 * 60);
/// Default removal concurrency: adaptive, up to the store's maximum
/// (`pace::PaceLimits::for_store`), so the engine's other clients keep their
/// latency while a sweep runs (issue 12). `--concurrency 4` was the fixed
/// default before: the fastest setting measured on Docker 20.10 (10,000
/// images: 5.4 s at 4, 7.3 s at 8, 10.6 s at 1).
pub const DEFAULT_CONCURRENCY: Concurrency = Concurrency::AUTO;
/// Default deadline of every single Docker call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Skew between the engine's clock and this host's worth an info line.
const CLOCK_SKEW_WORTH_A_LINE: i64 = 60;

/// What one sweep does.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub scope: Scope,
    /// Images younger than this are kept (`0s` keeps none for age). Age is
    /// measured on the engine's clock (`DockerImages::engine_time`).
    pub min_age: Duration,
    /// Removals in flight at once: fixed, or adaptive to the engine's
    /// latency (`pace.rs`).
    pub concurrency: Concurrency,
    /// Deadline of each Docker call; a call that exceeds it is a transient failure.
    pub call_timeout: Duration,
    /// Plan only: list and verify, remove nothing. A dry run also lists
    /// every labelled image, to say why the ones not in scope are kept.
    pub dry_run: bool,
    /// Measure the space reclaimed as the growth of free space on the
    /// filesystem of the engine's data root, when that is visible from this
    /// process (`DockerImages::local_data_root`). Otherwise, or when off, it
    /// is the sum of the removed images' sizes (an upper bound).
    pub measure_reclaimed: bool,
    /// Names what is swept (the engine's address) in every log line of a
    /// pass, as the `engine` field of a `sweep` span; empty: no span field.
    pub engine: String,
}

impl Default for SweepConfig {
    fn default() -> SweepConfig {
        SweepConfig {
            scope: Scope::default(),
            min_age: DEFAULT_MIN_AGE,
            concurrency: DEFAULT_CONCURRENCY,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            dry_run: false,
            measure_reclaimed: true,
            engine: String::new(),
        }
    }
}

/// An image the report talks about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ImageRef {
    /// The image ID, `sha256:` and 64 hex digits.
    pub id: String,
    /// The engine's `Size` of the image (shared layers counted in full).
    pub size_bytes: u64,
    /// Seconds since the image was created, at the time of the scan.
    pub age_seconds: u64,
}

/// Why an image the engine listed was not removed, when that is normal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Our own check disagreed with the engine's filter. `[ref:scope_invariant]`
    FailedVerification { detail: String },
    /// Younger than the minimum age: maybe a step of a running build.
    TooYoung,
    /// A container uses it (seen before removal, or a 409 from the engine).
    InUse,
    /// Already removed by someone else (404).
    Gone,
    /// The sweep was asked to stop before this image's turn.
    Cancelled,
    /// Labelled but tagged: only untagged images are in scope (plan only).
    Tagged,
    /// Labelled and untagged, but other images are built on it, so the
    /// engine does not call it dangling (plan only).
    HasChildren,
    /// Classic store: inspected again right before its removal, the image
    /// no longer passed the scope check (tagged since the listing, most
    /// likely), so it was not removed. `[ref:scope_invariant]`
    Changed { detail: String },
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::FailedVerification { .. } => "failed_verification",
            SkipReason::TooYoung => "too_young",
            SkipReason::InUse => "in_use",
            SkipReason::Gone => "gone",
            SkipReason::Cancelled => "cancelled",
            SkipReason::Tagged => "tagged",
            SkipReason::HasChildren => "has_children",
            SkipReason::Changed { .. } => "changed",
        }
    }
}

/// A labelled image that is kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Skipped {
    #[serde(flatten)]
    pub image: ImageRef,
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A removal that failed for a reason an operator must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Failed {
    #[serde(flatten)]
    pub image: ImageRef,
    /// `transient` (timeouts, 5xx an engine recovers from, connection
    /// failures) or `unexpected` (anything else).
    #[serde(serialize_with = "disposition_name")]
    #[schemars(with = "String")]
    pub kind: Disposition,
    /// The engine's or the client's error message.
    pub message: String,
}

/// What one sweep did. Serialised as the `--output json` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SweepReport {
    /// True for a plan (`--dry-run`): nothing was removed.
    pub dry_run: bool,
    /// Images the engine returned for the scope's filters.
    pub listed: usize,
    /// Removed (empty in a dry run).
    pub removed: Vec<ImageRef>,
    /// What a real run would try to remove (dry run only).
    pub would_remove: Vec<ImageRef>,
    /// Labelled images that are kept, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Removals that failed (not counting in use and gone, which are kept).
    pub failed: Vec<Failed>,
    /// Set when the scan itself failed; nothing was removed then.
    pub scan_error: Option<String>,
    /// Space the removals freed; how it was obtained is `reclaimed_source`.
    pub reclaimed_bytes: u64,
    pub reclaimed_source: ReclaimedSource,
    /// Sum of the engine's `Size` of the removed images. Layers shared with
    /// other images are counted in each, so this is an upper bound.
    pub removed_image_bytes: u64,
    /// How many removals were kept in flight, and the pauses made for the
    /// engine's other clients; null when no removal was started.
    pub removal_pace: Option<RemovalPace>,
    /// Seconds the pass took.
    #[serde(serialize_with = "as_seconds")]
    #[schemars(with = "f64")]
    pub duration: Duration,
}

/// How `reclaimed_bytes` was obtained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReclaimedSource {
    /// Free space of the filesystem holding the engine's data root, measured
    /// before and after the removals. Exact for what the removals freed,
    /// unless something else wrote to or freed space on that filesystem
    /// meanwhile (it never goes below zero).
    Filesystem,
    /// The data root is not visible from here: the sum of the removed
    /// images' sizes, an upper bound (shared layers count in each image).
    #[default]
    ImageSizes,
    /// Containerd store: the sum of the removed images' sizes as that store
    /// counts them, compressed content plus unpacked snapshots. An estimate,
    /// not a measurement: its data is not under `DockerRootDir`, content or
    /// snapshots shared with other images count in each, and containerd's
    /// garbage collector frees the content after the removal, not with it.
    ContainerdImageSizes,
}

impl ReclaimedSource {
    pub fn describe(&self) -> &'static str {
        match self {
            ReclaimedSource::Filesystem => {
                "measured as the growth of free space on the engine's data filesystem"
            }
            ReclaimedSource::ImageSizes => {
                "sum of the removed images' sizes; an upper bound, shared layers count in each"
            }
            ReclaimedSource::ContainerdImageSizes => {
                "an estimate: sum of the removed images' sizes on the containerd store (compressed content plus snapshots, shared ones counted in each), freed by containerd's garbage collector"
            }
        }
    }
}

/// What watches one pass as it goes: a progress bar, periodic log lines.
/// Every method has a no-op default.
pub trait SweepProgress: Send + Sync {
    /// The verified removal set is known: `images` images of `bytes` in all.
    fn started(&self, _images: usize, _bytes: u64) {}
    /// One removal attempt ended; `removed` is false when the image was kept
    /// (in use, gone, cancelled) or the removal failed.
    fn advanced(&self, _image: &ImageRef, _removed: bool) {}
    /// The pass is over.
    fn finished(&self, _report: &SweepReport) {}
}

/// No progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl SweepProgress for NoProgress {}

fn disposition_name<S: serde::Serializer>(d: &Disposition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

pub(crate) fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl SweepReport {
    pub fn skipped_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason.as_str()).or_default() += 1;
        }
        counts
    }

    pub fn failed_by_kind(&self) -> BTreeMap<Disposition, usize> {
        let mut counts = BTreeMap::new();
        for f in &self.failed {
            *counts.entry(f.kind).or_default() += 1;
        }
        counts
    }

    /// True when the scan failed or a removal failed for a reason that is not
    /// "in use" or "gone".
    pub fn has_failures(&self) -> bool {
        self.scan_error.is_some() || !self.failed.is_empty()
    }
}

/// The dangling-image sweep. Passes of one sweep never overlap, whoever
/// starts them (the loop, `run_now`, an event trigger).
pub struct DanglingImageSweep {
    docker: Arc<dyn DockerImages>,
    config: SweepConfig,
    pass: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DanglingImageSweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DanglingImageSweep")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one removal attempt ended.
enum Removal {
    /// The pass was cancelled before this image's turn.
    Cancelled,
    /// Classic store: the fresh inspect failed the scope check.
    Changed(String),
    /// The removal was sent; the engine's answer.
    Done(Result<(), DockerError>),
}

enum Verdict {
    Remove(ImageRef),
    Skip(Skipped),
}

impl DanglingImageSweep {
    pub fn new(docker: Arc<dyn DockerImages>, config: SweepConfig) -> DanglingImageSweep {
        DanglingImageSweep {
            docker,
            config,
            pass: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// Runs one pass. Never fails: a failed scan is logged, reported and
    /// returned in the report. Once `cancel` fires, no further removal starts;
    /// removals already sent are awaited.
    pub async fn run(&self, cancel: &CancellationToken) -> SweepReport {
        self.run_with_progress(cancel, &NoProgress).await
    }

    /// [`run`](Self::run), telling `progress` how it goes.
    pub async fn run_with_progress(
        &self,
        cancel: &CancellationToken,
        progress: &dyn SweepProgress,
    ) -> SweepReport {
        use tracing::Instrument;
        let span = if self.config.engine.is_empty() {
            tracing::Span::none()
        } else {
            tracing::info_span!("sweep", engine = %self.config.engine)
        };
        self.run_pass(cancel, progress).instrument(span).await
    }

    async fn run_pass(
        &self,
        cancel: &CancellationToken,
        progress: &dyn SweepProgress,
    ) -> SweepReport {
        let _pass = self.pass.lock().await;
        let started = Instant::now();
        let mut report = SweepReport {
            dry_run: self.config.dry_run,
            ..SweepReport::default()
        };
        let (images, in_use, others) = match self.scan().await {
            Ok(scan) => scan,
            Err(error) => {
                tracing::error!(error = %error.message, kind = %error.disposition, "dangling image cleanup: scan failed");
                sentry_report::scan_failed(&error);
                report.scan_error = Some(error.message);
                report.duration = started.elapsed();
                progress.finished(&report);
                return report;
            }
        };
        report.listed = images.len();
        let now = if images.is_empty() && others.is_empty() {
            unix_now()
        } else {
            self.engine_now().await
        };
        let mut to_remove = Vec::new();
        for image in &images {
            match self.verdict(image, &in_use, now) {
                Verdict::Remove(image) => to_remove.push(image),
                Verdict::Skip(skipped) => report.skipped.push(skipped),
            }
        }
        report.skipped.extend(explain_others(&images, others, now));
        if self.config.dry_run {
            report.would_remove = to_remove;
        } else {
            let root = match to_remove.first() {
                Some(first) if self.config.measure_reclaimed => self
                    .call("finding the data root", async {
                        Ok(self.docker.local_data_root(&first.id).await)
                    })
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            };
            let free_before = root.as_deref().and_then(free_space_at);
            let store = if to_remove.is_empty() {
                None
            } else {
                match self
                    .call("asking the engine's image store", self.docker.image_store())
                    .await
                {
                    Ok(store) => Some(store),
                    Err(error) => {
                        // Without the store, no removal can be made safe
                        // against a re-tag: remove nothing this pass.
                        tracing::error!(error = %error.message, kind = %error.disposition, "dangling image cleanup: scan failed");
                        sentry_report::scan_failed(&error);
                        report.scan_error = Some(error.message);
                        to_remove.clear();
                        None
                    }
                }
            };
            if let Some(store) = &store {
                self.remove_all(to_remove, store, cancel, progress, &mut report)
                    .await;
            }
            report.removed_image_bytes = report.removed.iter().map(|i| i.size_bytes).sum();
            report.reclaimed_bytes = report.removed_image_bytes;
            let free_after = root.as_deref().and_then(free_space_at);
            if let (Some(before), Some(after)) = (free_before, free_after)
                && !report.removed.is_empty()
            {
                report.reclaimed_bytes = after.saturating_sub(before);
                report.reclaimed_source = ReclaimedSource::Filesystem;
            } else if let Some(ImageStore::Containerd { .. }) = store {
                report.reclaimed_source = ReclaimedSource::ContainerdImageSizes;
            }
        }
        report.duration = started.elapsed();
        log_summary(&report);
        progress.finished(&report);
        report
    }

    /// The candidates, the images containers use, and (dry run only) the
    /// labelled images that are not candidates: see [`Self::others`].
    ///
    /// A real pass asks the engine for `dangling=true` and every label. A
    /// plan asks for the labels only, which returns the same dangling images
    /// plus the tagged labelled ones in one listing (with `all=false` the
    /// engine lists only images without children, and an untagged one of
    /// those is what it calls dangling), and splits them here. A second
    /// listing would cost as much as the first at scale: the engine sizes
    /// every labelled image before it applies `dangling` (docs/BENCHMARKS.md).
    /// Either way every candidate goes through `Scope::check`.
    /// `[ref:scope_invariant]`
    async fn scan(&self) -> Result<Scan, DockerError> {
        let (images, others) = if self.config.dry_run {
            let labelled =
                HashMap::from([("label".to_string(), self.config.scope.label_filters())]);
            let listed = self
                .call("listing images", self.docker.list_images(&labelled))
                .await?;
            let (images, tagged): (Vec<_>, Vec<_>) = listed
                .into_iter()
                .partition(|i| cascade_scope::is_untagged(&i.repo_tags));
            let others = self.others(&images, tagged).await?;
            (images, others)
        } else {
            let filters = self.config.scope.docker_filters();
            let images = self
                .call("listing images", self.docker.list_images(&filters))
                .await?;
            (images, Vec::new())
        };
        let in_use = if images.is_empty() {
            HashSet::new()
        } else {
            self.call(
                "listing containers",
                self.docker.images_used_by_containers(),
            )
            .await?
        };
        Ok((images, in_use, others))
    }

    /// Labelled images a plan explains though they are not candidates: the
    /// tagged ones, and the labelled images other listed images are built on
    /// (their `ParentId`s, inspected one by one; one level up, since
    /// bollard's inspect model has no parent).
    async fn others(
        &self,
        candidates: &[ListedImage],
        tagged: Vec<ListedImage>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        let listed: HashSet<&str> = candidates
            .iter()
            .chain(&tagged)
            .map(|i| i.id.as_str())
            .collect();
        let parents: std::collections::BTreeSet<&str> = candidates
            .iter()
            .chain(&tagged)
            .map(|i| i.parent_id.as_str())
            .filter(|p| !p.is_empty() && !listed.contains(p))
            .collect();
        let mut others = Vec::new();
        for parent in parents {
            let inspected = self
                .call(
                    "inspecting a parent image",
                    self.docker.inspect_image(parent),
                )
                .await?;
            // Ours by its labels; `explain_others` says tagged or has children.
            if let Some(image) = inspected.filter(|i| {
                self.config
                    .scope
                    .check(&ImageFacts {
                        labels: &i.labels,
                        repo_tags: &[],
                    })
                    .is_ok()
            }) {
                others.push(image);
            }
        }
        others.extend(tagged);
        Ok(others)
    }

    /// Our own check of one listed image; see `[ref:scope_invariant]`.
    fn verdict(&self, image: &ListedImage, in_use: &HashSet<String>, now: i64) -> Verdict {
        let image_ref = image_ref(image, now);
        let age = image_ref.age_seconds;
        let facts = ImageFacts {
            labels: &image.labels,
            repo_tags: &image.repo_tags,
        };
        let reason = if let Err(why) = self.config.scope.check(&facts) {
            tracing::warn!(image_id = %image.id, reason = %why, "engine listed an image outside the scope; skipped");
            skip_reason_for(why)
        } else if Duration::from_secs(age) < self.config.min_age {
            tracing::debug!(image_id = %image.id, age_seconds = age, "younger than the minimum age; kept");
            SkipReason::TooYoung
        } else if in_use.contains(&image.id) {
            tracing::debug!(image_id = %image.id, "used by a container; kept");
            SkipReason::InUse
        } else {
            return Verdict::Remove(image_ref);
        };
        Verdict::Skip(Skipped {
            image: image_ref,
            reason,
        })
    }

    async fn remove_all(
        &self,
        images: Vec<ImageRef>,
        store: &ImageStore,
        cancel: &CancellationToken,
        progress: &dyn SweepProgress,
        report: &mut SweepReport,
    ) {
        progress.started(images.len(), images.iter().map(|i| i.size_bytes).sum());
        let mut pacer = self.config.concurrency.pacer(store);
        let mut pending = images.into_iter().peekable();
        let mut running = FuturesUnordered::new();
        let mut started_any = false;
        loop {
            // Start what the window and any pause allow. Once cancelled, the
            // rest is reported as such at once, pause or not.
            let mut resume_at = None;
            // Nothing left to start: no pause to sit out either.
            while running.len() < pacer.window() && pending.peek().is_some() {
                if !cancel.is_cancelled() {
                    resume_at = pacer.resume_at(Instant::now());
                    if resume_at.is_some() {
                        break;
                    }
                }
                let Some(image) = pending.next() else { break };
                if cancel.is_cancelled() {
                    self.record(image, Removal::Cancelled, progress, report);
                    continue;
                }
                pacer.started();
                started_any = true;
                running.push(async move {
                    let sent = Instant::now();
                    let outcome = self.remove_one(&image.id, store).await;
                    (image, outcome, sent.elapsed())
                });
            }
            if running.is_empty() && resume_at.is_none() {
                break;
            }
            tokio::select! {
                Some((image, outcome, latency)) = running.next(), if !running.is_empty() => {
                    // Every start is matched by one end, whatever the
                    // outcome: burst mode waits for a whole burst's answers.
                    let sample = match &outcome {
                        Removal::Done(Err(e)) if e.disposition == Disposition::Transient => RemovalOutcome::Overloaded,
                        _ => RemovalOutcome::Answered,
                    };
                    pacer.finished(Instant::now(), latency, sample);
                    self.record(image, outcome, progress, report);
                }
                () = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {}
                () = cancel.cancelled(), if resume_at.is_some() => {}
            }
        }
        if started_any {
            report.removal_pace = Some(pacer.summary());
        }
    }

    /// One removal attempt's end, into the report and the progress.
    fn record(
        &self,
        image: ImageRef,
        outcome: Removal,
        progress: &dyn SweepProgress,
        report: &mut SweepReport,
    ) {
        progress.advanced(&image, matches!(outcome, Removal::Done(Ok(()))));
        match outcome {
            Removal::Cancelled => report.skipped.push(Skipped {
                image,
                reason: SkipReason::Cancelled,
            }),
            Removal::Changed(detail) => report.skipped.push(Skipped {
                image,
                reason: SkipReason::Changed { detail },
            }),
            Removal::Done(Ok(())) => {
                tracing::debug!(image_id = %image.id, size = image.size_bytes, "removed");
                report.removed.push(image);
            }
            Removal::Done(Err(error)) => record_removal_failure(image, error, report),
        }
    }

    /// The engine's clock, read once per pass: ages are the engine's
    /// `Created` against the engine's own time, so clock skew between this
    /// host and a remote engine cannot make a seconds-old snapshot look old.
    /// This host's clock only when the engine does not say.
    async fn engine_now(&self) -> i64 {
        match self
            .call("reading the engine's clock", self.docker.engine_time())
            .await
        {
            Ok(Some(now)) => {
                let skew = now - unix_now();
                if skew.abs() > CLOCK_SKEW_WORTH_A_LINE {
                    tracing::info!(
                        skew_seconds = skew,
                        "the engine's clock differs from this host's; ages use the engine's"
                    );
                }
                now
            }
            Ok(None) => unix_now(),
            Err(error) => {
                tracing::warn!(error = %error.message, "cannot read the engine's clock; ages use this host's");
                unix_now()
            }
        }
    }

    /// Removes one verified image so that an image tagged again since the
    /// listing is never taken with its tag `[ref:scope_invariant]`:
    ///
    /// - containerd store: by its dangling name, which the engine resolves
    ///   only while the image is still dangling (404 once tagged: `gone`);
    /// - classic store (no conditional delete exists): inspected again and
    ///   checked with `Scope::check` on the fresh facts right before the
    ///   `DELETE`. What remains is the window between the inspect's answer
    ///   and the `DELETE`'s arrival: one round trip.
    async fn remove_one(&self, id: &str, store: &ImageStore) -> Removal {
        if let ImageStore::Classic { .. } = store {
            let fresh = match self
                .call("re-checking an image", self.docker.inspect_image(id))
                .await
            {
                Ok(Some(fresh)) => fresh,
                Ok(None) => {
                    return Removal::Done(Err(DockerError::status(
                        404,
                        format!("No such image: {id} (gone before its removal)"),
                    )));
                }
                Err(error) => return Removal::Done(Err(error)),
            };
            let facts = ImageFacts {
                labels: &fresh.labels,
                repo_tags: &fresh.repo_tags,
            };
            if let Err(why) = self.config.scope.check(&facts) {
                tracing::info!(image_id = %id, reason = %why, "changed since the listing; kept");
                return Removal::Changed(why.to_string());
            }
        }
        let name = store.removal_name(id);
        Removal::Done(
            self.call("removing an image", self.docker.remove_image(&name))
                .await,
        )
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, DockerError>>,
    ) -> Result<T, DockerError> {
        let limit = self.config.call_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::timed_out(what, limit)),
        }
    }
}

fn free_space_at(path: &std::path::Path) -> Option<u64> {
    match crate::disk::free_space(path) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "cannot measure free space; reporting image sizes");
            None
        }
    }
}

type Scan = (Vec<ListedImage>, HashSet<String>, Vec<ListedImage>);

/// Labelled images the candidate listing did not return, and why they are
/// kept: a real tag, or (untagged) images built on them. Plan only.
fn explain_others(candidates: &[ListedImage], others: Vec<ListedImage>, now: i64) -> Vec<Skipped> {
    let listed: HashSet<&str> = candidates.iter().map(|i| i.id.as_str()).collect();
    others
        .into_iter()
        .filter(|image| !listed.contains(image.id.as_str()))
        .map(|image| {
            let reason = if cascade_scope::is_untagged(&image.repo_tags) {
                SkipReason::HasChildren
            } else {
                SkipReason::Tagged
            };
            Skipped {
                image: image_ref(&image, now),
                reason,
            }
        })
        .collect()
}

fn image_ref(image: &ListedImage, now: i64) -> ImageRef {
    ImageRef {
        id: image.id.clone(),
        size_bytes: u64::try_from(image.size).unwrap_or(0),
        age_seconds: u64::try_from(now.saturating_sub(image.created)).unwrap_or(0),
    }
}

fn skip_reason_for(why: OutOfScope) -> SkipReason {
    SkipReason::FailedVerification {
        detail: why.to_string(),
    }
}

fn record_removal_failure(image: ImageRef, error: DockerError, report: &mut SweepReport) {
    let kind = error.disposition;
    match kind.severity() {
        Severity::Debug => {
            tracing::debug!(image_id = %image.id, kind = %kind, error = %error.message, "not removed")
        }
        Severity::Warn => {
            tracing::warn!(image_id = %image.id, kind = %kind, error = %error.message, "failed to remove dangling image")
        }
    }
    if kind.is_reported() {
        sentry_report::removal_failed(&image.id, &error);
    }
    match kind {
        Disposition::InUse => report.skipped.push(Skipped {
            image,
            reason: SkipReason::InUse,
        }),
        Disposition::Gone => report.skipped.push(Skipped {
            image,
            reason: SkipReason::Gone,
        }),
        Disposition::Transient | Disposition::Unexpected => report.failed.push(Failed {
            image,
            kind,
            message: error.message,
        }),
    }
}

/// The summary line, only when something was removed (the original rule);
/// a quiet pass logs at debug.
fn log_summary(report: &SweepReport) {
    if !report.removed.is_empty() {
        tracing::info!(
            removed = report.removed.len(),
            reclaimed_bytes = report.reclaimed_bytes,
            skipped = report.skipped.len(),
            failed = report.failed.len(),
            duration_ms = report.duration.as_millis() as u64,
            "dangling image cleanup: removed {} images, reclaimed {} bytes",
            report.removed.len(),
            report.reclaimed_bytes,
        );
    } else {
        tracing::debug!(
            listed = report.listed,
            skipped = report.skipped.len(),
            failed = report.failed.len(),
            dry_run = report.dry_run,
            "dangling image cleanup: nothing removed"
        );
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
