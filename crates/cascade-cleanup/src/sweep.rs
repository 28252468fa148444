//! One pass: list → verify → age check → remove → classify → report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade_classify::{Disposition, Severity};
use cascade_scope::{ImageFacts, OutOfScope, REMOVAL_REPOSITORY, Scope};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::docker::{DockerError, DockerImages, ListedImage, RemovalAnswer};
use crate::engine::{DANGLING_PREFIX, EngineSummary, ImageStore};
use crate::pace::{Concurrency, RemovalOutcome, RemovalPace};
use crate::parents::{ImageTree, bare};
use crate::proven::{Admission, RemovalMethod, RemovalStrategy};
use crate::sentry_report;

/// Default minimum age: an image younger than this may be a step of a build
/// that is still running.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(10 * 60);
/// Default removal concurrency: adaptive, up to the store's maximum
/// (`pace::PaceLimits::for_store`), so the engine's other clients keep their
/// latency while a sweep runs (docs/BENCHMARKS.md, "Gentleness"). Of the
/// fixed settings, 4 is the fastest measured on Docker 20.10 (10,000
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
    /// The engine's address as logs, spans, metrics and Sentry name it: the
    /// `engine` field of the `sweep` span over every log line of a pass, and
    /// the `engine` extra of its Sentry events; empty: no span field.
    pub engine_label: String,
    /// Remove on an engine no row of the proven-engine table admits, with
    /// the most careful strategy of its implementation. Off: such an engine
    /// is refused for removal (a plan still works). `[ref:proven_engines]`
    pub allow_unproven_engine: bool,
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
            engine_label: String::new(),
            allow_unproven_engine: false,
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
    /// Tagged again since the listing: the engine only took the janitor's
    /// removal name off it, and kept the image. `[ref:scope_invariant]`
    Changed { detail: String },
    /// The engine would also delete this image's parent (Podman before
    /// 4.6 ignores `noprune`), and that parent does not pass every rule
    /// itself: an unlabelled base, a tagged-looking one, a young or a used
    /// one. `[ref:scope_invariant]`
    WouldRemoveParent { parent: String, detail: String },
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
            SkipReason::WouldRemoveParent { .. } => "would_remove_parent",
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
    /// The engine, as the pass identified it; null when it could not.
    pub engine: Option<EngineSummary>,
    /// Set when removal on this engine is refused (no row of the proven
    /// engines admits it): nothing was removed. A plan states it as well,
    /// and still lists what a pass would remove if it were allowed.
    pub refused: Option<String>,
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

    /// True when the scan failed, removal was refused (not in a plan), or
    /// a removal failed for a reason that is not "in use" or "gone".
    pub fn has_failures(&self) -> bool {
        self.scan_error.is_some()
            || !self.failed.is_empty()
            || (self.refused.is_some() && !self.dry_run)
    }
}

/// The dangling-image sweep. Passes of one sweep never overlap, whoever
/// starts them (the loop, `run_now`, an event trigger).
pub struct DanglingImageSweep {
    docker: Arc<dyn DockerImages>,
    config: SweepConfig,
    pass: tokio::sync::Mutex<()>,
    /// Images this sweep sent a removal for lately, so that the engine's
    /// events about them start no early sweep ([`Self::caused`]).
    recent: std::sync::Mutex<std::collections::VecDeque<(String, Instant)>>,
    /// The engine the last pass identified, to log when it changes (an
    /// engine upgraded or replaced under a running daemon).
    last_engine: std::sync::Mutex<Option<crate::engine::EngineIdentity>>,
}

/// How long the events of a removal are recognised as the janitor's own:
/// an engine sends them within milliseconds of its answer.
const OWN_EVENT_WINDOW: Duration = Duration::from_secs(120);

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
    /// Tagged again since the listing: the engine took only the removal
    /// name off it.
    Changed(String),
    /// The removal was sent; the engine's answer.
    Done(Result<RemovalAnswer, DockerError>),
}

/// What a pass does with one listed image.
enum Verdict {
    Remove(ImageRef),
    Skip(Skipped),
}

/// One image the pass will try to remove.
#[derive(Debug, Clone)]
struct Candidate {
    image: ImageRef,
    /// It already carries its removal name (a pass before this one tagged
    /// it and did not get to remove it): no tag call.
    named: bool,
    /// The parents the engine will delete with it (Podman before 4.6),
    /// each of which passed every rule: their IDs and what the report says
    /// of them once gone.
    parents: Vec<ImageRef>,
}

/// What a pass found before judging anything.
struct Scan {
    /// Candidates: the untagged labelled images, and images that carry only
    /// their removal name.
    images: Vec<ListedImage>,
    /// Image IDs containers use.
    in_use: HashSet<String>,
    /// Plan only: labelled images that are not candidates (tagged ones,
    /// labelled parents), to say why they are kept.
    others: Vec<ListedImage>,
    /// Images that carry their removal name beside a real tag: someone
    /// tagged them again after a pass had named them. Their removal name
    /// is taken off (the engine only untags it while the tag is there).
    renamed: Vec<ListedImage>,
    /// Every image, when the engine deletes parents with their children.
    tree: Option<Vec<ListedImage>>,
}

impl DanglingImageSweep {
    pub fn new(docker: Arc<dyn DockerImages>, config: SweepConfig) -> DanglingImageSweep {
        DanglingImageSweep {
            docker,
            config,
            pass: tokio::sync::Mutex::new(()),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
            last_engine: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// True when `event` is one this sweep's removals caused: a tag or
    /// untag of a removal name, or (Docker names an untag by the image's
    /// ID) an untag of an image it sent a removal for in the last
    /// [`OWN_EVENT_WINDOW`]. Such events start no early sweep.
    pub fn caused(&self, event: &crate::events::EngineEvent) -> bool {
        if cascade_scope::is_any_removal_name(&event.name) {
            return true;
        }
        if event.action != "untag" {
            return false;
        }
        let id = bare(&event.id);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut recent);
        recent.iter().any(|(sent, _)| sent == id)
    }

    /// Remembers that a removal of `id` is being sent.
    fn note_removal(&self, id: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut recent);
        recent.push_back((bare(id).to_string(), Instant::now()));
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
        let span = if self.config.engine_label.is_empty() {
            tracing::Span::none()
        } else {
            tracing::info_span!("sweep", engine = %self.config.engine_label)
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
        let facts = match self
            .call("asking which engine this is", self.docker.engine_facts())
            .await
        {
            Ok(facts) => facts,
            Err(error) => return self.scan_failed(report, error, started, progress),
        };
        // `[ref:proven_engines]`: what a pass may rely on depends on the engine.
        let admission = Admission::of(&facts.identity, self.config.allow_unproven_engine);
        {
            let mut last = self.last_engine.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(before) = last.as_ref().filter(|b| **b != facts.identity) {
                tracing::info!(
                    before = %before.describe(),
                    now = %facts.identity.describe(),
                    proven = admission.proven().as_deref().unwrap_or("no"),
                    "the engine changed since the last pass"
                );
            }
            *last = Some(facts.identity.clone());
        }
        let strategy = admission.strategy();
        report.engine = Some(EngineSummary::new(
            &facts.identity,
            admission.proven(),
            admission
                .refusal()
                .is_none()
                .then_some(strategy.method.as_str()),
        ));
        match &admission {
            Admission::Refused(unproven) => {
                report.refused = Some(unproven.to_string());
                if !self.config.dry_run {
                    tracing::debug!(%unproven, "removal refused on this engine");
                    sentry_report::unproven_engine(&self.config.engine_label, unproven);
                    report.duration = started.elapsed();
                    progress.finished(&report);
                    return report;
                }
            }
            Admission::Allowed(unproven) if !self.config.dry_run => {
                tracing::warn!(%unproven, "removing on it anyway, as configured, with the most careful strategy");
            }
            _ => {}
        }
        let scan = match self.scan(&strategy).await {
            Ok(scan) => scan,
            Err(error) => return self.scan_failed(report, error, started, progress),
        };
        report.listed = scan.images.len();
        let now = self.engine_now(facts.now);
        let mut to_remove = Vec::new();
        for image in &scan.images {
            match self.verdict(image, &scan.in_use, now) {
                Verdict::Remove(image) => to_remove.push(image),
                Verdict::Skip(skipped) => report.skipped.push(skipped),
            }
        }
        let named: HashSet<&str> = scan
            .images
            .iter()
            .filter(|i| {
                i.repo_tags
                    .iter()
                    .any(|t| cascade_scope::is_removal_name(&i.id, t))
            })
            .map(|i| i.id.as_str())
            .collect();
        let mut candidates: Vec<Candidate> = to_remove
            .into_iter()
            .map(|image| Candidate {
                named: named.contains(image.id.as_str()),
                image,
                parents: Vec::new(),
            })
            .collect();
        if let Some(tree) = &scan.tree {
            candidates = self.guard_parents(candidates, tree, &scan.in_use, now, &mut report);
        }
        report
            .skipped
            .extend(explain_others(&scan.images, scan.others, now));
        if self.config.dry_run {
            report.would_remove = candidates.into_iter().map(|c| c.image).collect();
        } else {
            let root = match candidates.first() {
                Some(first) if self.config.measure_reclaimed => self
                    .call("finding the data root", async {
                        Ok(self.docker.local_data_root(&first.image.id).await)
                    })
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            };
            let free_before = root.as_deref().and_then(free_space_at);
            let store = &facts.identity.store;
            self.remove_all(candidates, &strategy, store, cancel, progress, &mut report)
                .await;
            self.unname(scan.renamed, &scan.in_use, now).await;
            report.removed_image_bytes = report.removed.iter().map(|i| i.size_bytes).sum();
            report.reclaimed_bytes = report.removed_image_bytes;
            let free_after = root.as_deref().and_then(free_space_at);
            if let (Some(before), Some(after)) = (free_before, free_after)
                && !report.removed.is_empty()
            {
                report.reclaimed_bytes = after.saturating_sub(before);
                report.reclaimed_source = ReclaimedSource::Filesystem;
            } else if let ImageStore::Containerd { .. } = store {
                report.reclaimed_source = ReclaimedSource::ContainerdImageSizes;
            }
        }
        report.duration = started.elapsed();
        log_summary(&report);
        progress.finished(&report);
        report
    }

    /// A pass whose scan failed: logged, reported to Sentry, nothing removed.
    fn scan_failed(
        &self,
        mut report: SweepReport,
        error: DockerError,
        started: Instant,
        progress: &dyn SweepProgress,
    ) -> SweepReport {
        tracing::error!(error = %error.message, kind = %error.disposition, "dangling image cleanup: scan failed");
        sentry_report::scan_failed(&error);
        report.scan_error = Some(error.message);
        report.duration = started.elapsed();
        progress.finished(&report);
        report
    }

    /// The label filters the engine is given: every label, or on an engine
    /// that does not AND them only the first (the pass's own check applies
    /// every label either way). `[ref:scope_invariant]`
    fn label_filters(&self, strategy: &RemovalStrategy) -> Vec<String> {
        let mut labels = self.config.scope.label_filters();
        if strategy.one_label_filter {
            labels.truncate(1);
        }
        labels
    }

    /// What the pass judges: see [`Scan`].
    ///
    /// A real pass asks the engine for `dangling=true` and the labels. A
    /// plan asks for the labels only, which returns the same dangling images
    /// plus the tagged labelled ones in one listing (with `all=false` the
    /// engine lists only images without children, and an untagged one of
    /// those is what it calls dangling), and splits them here. A second
    /// listing would cost as much as the first at scale: the engine sizes
    /// every labelled image before it applies `dangling` (docs/BENCHMARKS.md).
    /// Where removals go by removal name, a real pass also lists the images
    /// that carry one (`reference=`): a pass that was stopped, or got a 409,
    /// after naming an image left it so. Either way every candidate goes
    /// through `Scope::check`. `[ref:scope_invariant]`
    async fn scan(&self, strategy: &RemovalStrategy) -> Result<Scan, DockerError> {
        let labels = self.label_filters(strategy);
        let mut renamed = Vec::new();
        let (mut images, others) = if self.config.dry_run {
            let labelled = HashMap::from([("label".to_string(), labels)]);
            let listed = self
                .call("listing images", self.docker.list_images(&labelled))
                .await?;
            let (images, tagged): (Vec<_>, Vec<_>) = self
                .asked_for(strategy, listed)
                .into_iter()
                .partition(|i| cascade_scope::is_untagged(&i.id, &i.repo_tags));
            let others = self.others(&images, tagged).await?;
            (images, others)
        } else {
            let filters = HashMap::from([
                ("dangling".to_string(), vec!["true".to_string()]),
                ("label".to_string(), labels),
            ]);
            let images = self
                .call("listing images", self.docker.list_images(&filters))
                .await?;
            (self.asked_for(strategy, images), Vec::new())
        };
        if strategy.method == RemovalMethod::RemovalName && !self.config.dry_run {
            let named = HashMap::from([(
                "reference".to_string(),
                vec![REMOVAL_REPOSITORY.to_string()],
            )]);
            let listed: HashSet<String> = images.iter().map(|i| i.id.clone()).collect();
            for image in self
                .call("listing images", self.docker.list_images(&named))
                .await?
            {
                let own_name = image
                    .repo_tags
                    .iter()
                    .any(|t| cascade_scope::is_removal_name(&image.id, t));
                if !own_name || listed.contains(&image.id) {
                    continue;
                }
                if cascade_scope::is_untagged(&image.id, &image.repo_tags) {
                    images.push(image);
                } else {
                    renamed.push(image);
                }
            }
        }
        let in_use = if images.is_empty() && renamed.is_empty() {
            HashSet::new()
        } else {
            self.call(
                "listing containers",
                self.docker.images_used_by_containers(),
            )
            .await?
        };
        let tree = if strategy.prunes_parents && !images.is_empty() {
            Some(
                self.call("listing every image", self.docker.list_all_images())
                    .await?,
            )
        } else {
            None
        };
        Ok(Scan {
            images,
            in_use,
            others,
            renamed,
            tree,
        })
    }

    /// What the listing returned for the scope. Where the engine was given
    /// only the first label (`one_label_filter`), images without the others
    /// were asked for knowingly, and are dropped here rather than reported
    /// as an engine's mistake (`failed_verification`); every image left
    /// still goes through `Scope::check`. `[ref:scope_invariant]`
    fn asked_for(&self, strategy: &RemovalStrategy, listed: Vec<ListedImage>) -> Vec<ListedImage> {
        if !strategy.one_label_filter {
            return listed;
        }
        listed
            .into_iter()
            .filter(|i| self.config.scope.check_labels(&i.labels).is_ok())
            .collect()
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
            .map(|i| bare(&i.id))
            .collect();
        let parents: std::collections::BTreeSet<&str> = candidates
            .iter()
            .chain(&tagged)
            .map(|i| i.parent_id.as_str())
            .filter(|p| !p.is_empty() && !listed.contains(bare(p)))
            .collect();
        let mut others = Vec::new();
        for parent in parents {
            // Podman's `ParentId` is bare hex, which it resolves only with
            // the `sha256:` in front.
            let parent = if parent.contains(':') {
                parent.to_string()
            } else {
                format!("sha256:{parent}")
            };
            let inspected = self
                .call(
                    "inspecting a parent image",
                    self.docker.inspect_image(&parent),
                )
                .await?;
            // Ours by its labels; `explain_others` says tagged or has children.
            if let Some(image) =
                inspected.filter(|i| self.config.scope.check_labels(&i.labels).is_ok())
            {
                others.push(image);
            }
        }
        others.extend(tagged);
        Ok(others)
    }

    /// Our own check of one listed image; see `[ref:scope_invariant]`.
    fn verdict(&self, image: &ListedImage, in_use: &HashSet<String>, now: i64) -> Verdict {
        let image_ref = image_ref(image, now);
        let reason = match self.rules(image, in_use, now) {
            Ok(()) => return Verdict::Remove(image_ref),
            Err(SkipReason::FailedVerification { detail }) => {
                tracing::warn!(image_id = %image.id, reason = %detail, "engine listed an image outside the scope; skipped");
                SkipReason::FailedVerification { detail }
            }
            Err(reason) => {
                tracing::debug!(image_id = %image.id, reason = reason.as_str(), "kept");
                reason
            }
        };
        Verdict::Skip(Skipped {
            image: image_ref,
            reason,
        })
    }

    /// Every rule an image must pass to be removed: in scope, old enough,
    /// used by no container.
    fn rules(
        &self,
        image: &ListedImage,
        in_use: &HashSet<String>,
        now: i64,
    ) -> Result<(), SkipReason> {
        let facts = ImageFacts {
            id: &image.id,
            labels: &image.labels,
            repo_tags: &image.repo_tags,
        };
        if let Err(why) = self.config.scope.check(&facts) {
            return Err(skip_reason_for(why));
        }
        if image.created < 0 {
            // No engine dates an image before 1970 but from a zero or
            // garbled time: its age is unknown, so it is never old enough.
            return Err(SkipReason::FailedVerification {
                detail: format!(
                    "its creation time ({}) is before 1970, so its age is unknown",
                    image.created
                ),
            });
        }
        let age = image_ref(image, now).age_seconds;
        if Duration::from_secs(age) < self.config.min_age {
            return Err(SkipReason::TooYoung);
        }
        if in_use.contains(&image.id) || in_use.contains(bare(&image.id)) {
            return Err(SkipReason::InUse);
        }
        Ok(())
    }

    /// On an engine that deletes a removed image's parents (`parents.rs`):
    /// the parents this pass's removals would take must each pass every
    /// rule; an image whose removal would take one that does not is kept
    /// (`would_remove_parent`). `[ref:scope_invariant]`
    fn guard_parents(
        &self,
        candidates: Vec<Candidate>,
        all: &[ListedImage],
        in_use: &HashSet<String>,
        now: i64,
        report: &mut SweepReport,
    ) -> Vec<Candidate> {
        let tree = ImageTree::new(all);
        let removed: std::collections::BTreeSet<&str> =
            candidates.iter().map(|c| c.image.id.as_str()).collect();
        let pruned = tree.pruned(&removed);
        let mut refused = std::collections::BTreeSet::new();
        let mut why = HashMap::new();
        for parent in &pruned {
            let Some(image) = tree.image(parent) else {
                continue;
            };
            if let Err(reason) = self.rules(image, in_use, now) {
                refused.insert(*parent);
                why.insert(*parent, reason);
            }
        }
        let blocked = tree.blocked(&removed, &pruned, &refused);
        let blocked: HashMap<String, String> = blocked
            .into_iter()
            .map(|(id, parent)| (id.to_string(), parent.to_string()))
            .collect();
        let kept_pruned = tree.pruned(
            &candidates
                .iter()
                .map(|c| c.image.id.as_str())
                .filter(|id| !blocked.contains_key(*id))
                .collect(),
        );
        let mut kept = Vec::new();
        for mut candidate in candidates {
            if let Some(parent) = blocked.get(&candidate.image.id) {
                let detail = match why.get(parent.as_str()) {
                    Some(SkipReason::FailedVerification { detail }) => detail.clone(),
                    Some(reason) => reason.as_str().replace('_', " "),
                    None => String::new(),
                };
                tracing::info!(image_id = %candidate.image.id, %parent, %detail, "kept: the engine would also delete its parent, which is not removable");
                report.skipped.push(Skipped {
                    image: candidate.image,
                    reason: SkipReason::WouldRemoveParent {
                        parent: format!("sha256:{parent}"),
                        detail,
                    },
                });
                continue;
            }
            // The parents this removal may take (whichever removal goes
            // last takes a shared one): expected in the engine's answer.
            let mut at = bare(&candidate.image.id).to_string();
            while let Some(parent) = tree
                .image(&at)
                .map(|i| bare(&i.parent_id).to_string())
                .filter(|p| kept_pruned.contains(p.as_str()))
            {
                if let Some(image) = tree.image(&parent) {
                    candidate.parents.push(image_ref(image, now));
                }
                at = parent;
            }
            kept.push(candidate);
        }
        kept
    }

    async fn remove_all(
        &self,
        images: Vec<Candidate>,
        strategy: &RemovalStrategy,
        store: &ImageStore,
        cancel: &CancellationToken,
        progress: &dyn SweepProgress,
        report: &mut SweepReport,
    ) {
        if images.is_empty() {
            return;
        }
        progress.started(
            images.len(),
            images.iter().map(|c| c.image.size_bytes).sum(),
        );
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
                let Some(candidate) = pending.next() else {
                    break;
                };
                if cancel.is_cancelled() {
                    self.record(candidate, Removal::Cancelled, store, progress, report);
                    continue;
                }
                pacer.started();
                started_any = true;
                running.push(async move {
                    let sent = Instant::now();
                    let outcome = self.remove_one(&candidate, strategy.method).await;
                    (candidate, outcome, sent.elapsed())
                });
            }
            if running.is_empty() && resume_at.is_none() {
                break;
            }
            tokio::select! {
                Some((candidate, outcome, latency)) = running.next(), if !running.is_empty() => {
                    // Every start is matched by one end, whatever the
                    // outcome: burst mode waits for a whole burst's answers.
                    let sample = match &outcome {
                        Removal::Done(Err(e)) if e.disposition == Disposition::Transient => RemovalOutcome::Overloaded,
                        _ => RemovalOutcome::Answered,
                    };
                    pacer.finished(Instant::now(), latency, sample);
                    self.record(candidate, outcome, store, progress, report);
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
        candidate: Candidate,
        outcome: Removal,
        store: &ImageStore,
        progress: &dyn SweepProgress,
        report: &mut SweepReport,
    ) {
        let Candidate { image, parents, .. } = candidate;
        let removed = matches!(&outcome, Removal::Done(Ok(_)));
        progress.advanced(&image, removed);
        match outcome {
            Removal::Cancelled => report.skipped.push(Skipped {
                image,
                reason: SkipReason::Cancelled,
            }),
            Removal::Changed(detail) => {
                tracing::info!(image_id = %image.id, %detail, "tagged again since the listing; kept");
                report.skipped.push(Skipped {
                    image,
                    reason: SkipReason::Changed { detail },
                });
            }
            Removal::Done(Ok(answer)) => {
                tracing::debug!(image_id = %image.id, size = image.size_bytes, "removed");
                let expected: HashSet<&str> = std::iter::once(bare(&image.id))
                    .chain(parents.iter().map(|p| bare(&p.id)))
                    .collect();
                // Podman lists the images it deleted, and nothing else:
                // another ID there is an image the pass never checked.
                // Docker also lists the layers a removal freed (classic)
                // or the image's content digests (containerd).
                let lists_images_only = matches!(store, ImageStore::ContainersStorage { .. });
                let unexpected: Vec<&String> = answer
                    .deleted
                    .iter()
                    .filter(|d| lists_images_only && !expected.contains(bare(d)))
                    .collect();
                if !unexpected.is_empty() {
                    let ids = unexpected
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    tracing::error!(image_id = %image.id, deleted = %ids, "the engine deleted images the janitor did not ask for");
                    sentry_report::unexpected_deletion(&self.config.engine_label, &image.id, &ids);
                }
                report.removed.push(image);
                // Parents the engine deleted with it, each checked before.
                report
                    .removed
                    .extend(parents.into_iter().filter(|p| answer.deleted(&p.id)));
            }
            Removal::Done(Err(error)) => record_removal_failure(image, error, report),
        }
    }

    /// Takes the removal name off images that carry a real tag beside it,
    /// when they pass every other rule (so that if the tag went away
    /// meanwhile, the engine deletes an image this pass would remove
    /// anyway). Anything that fails is left for the next pass, at debug.
    async fn unname(&self, images: Vec<ListedImage>, in_use: &HashSet<String>, now: i64) {
        for image in images {
            let untagged = ListedImage {
                repo_tags: Vec::new(),
                ..image.clone()
            };
            if self.rules(&untagged, in_use, now).is_err() {
                continue;
            }
            let Some(name) = cascade_scope::removal_name(&image.id) else {
                continue;
            };
            match self
                .call("removing a removal name", self.docker.remove_image(&name))
                .await
            {
                Ok(_) => {
                    tracing::info!(image_id = %image.id, "took the janitor's removal name off an image tagged again");
                }
                Err(error) => {
                    tracing::debug!(image_id = %image.id, error = %error.message, "could not take the removal name off; next pass");
                }
            }
        }
    }

    /// The engine's clock (`GET /info`, read once per pass): ages are the
    /// engine's `Created` against the engine's own time, so clock skew
    /// between this host and a remote engine cannot make a seconds-old
    /// snapshot look old. This host's clock only when the engine does not
    /// say.
    fn engine_now(&self, engine: Option<i64>) -> i64 {
        let here = unix_now();
        let Some(now) = engine else {
            return here;
        };
        let skew = now - here;
        if skew.abs() > CLOCK_SKEW_WORTH_A_LINE {
            tracing::info!(
                skew_seconds = skew,
                "the engine's clock differs from this host's; ages use the engine's"
            );
        }
        now
    }

    /// Removes one verified image so that an image tagged again since the
    /// listing is never taken with its tag `[ref:scope_invariant]`:
    ///
    /// - removal name (`[ref:removal_name]`): the image is tagged with its
    ///   removal name, then that name is deleted. The engine deletes the
    ///   image only if that name is its only one when it handles the
    ///   `DELETE`; with another name it only untags ours (`changed`), and
    ///   while a container uses it, it answers 409 (`in_use`, and the name
    ///   stays until a later pass).
    /// - dangling name (containerd store): the engine resolves
    ///   `moby-dangling@<digest>` only while the image is still dangling
    ///   (404 once tagged: `gone`).
    async fn remove_one(&self, candidate: &Candidate, method: RemovalMethod) -> Removal {
        let id = &candidate.image.id;
        let name = match method {
            RemovalMethod::DanglingName => format!("{DANGLING_PREFIX}{id}"),
            RemovalMethod::RemovalName => {
                let Some(name) = cascade_scope::removal_name(id) else {
                    return Removal::Done(Err(DockerError {
                        disposition: Disposition::Unexpected,
                        status: None,
                        message: format!(
                            "image ID `{id}` is not sha256 hex, so it cannot be given a removal name; kept"
                        ),
                    }));
                };
                if !candidate.named {
                    let tag = name.rsplit_once(':').map_or("", |(_, tag)| tag);
                    if let Err(error) = self
                        .call(
                            "naming an image for its removal",
                            self.docker.tag_image(id, REMOVAL_REPOSITORY, tag),
                        )
                        .await
                    {
                        return Removal::Done(Err(error));
                    }
                }
                name
            }
        };
        self.note_removal(id);
        match self
            .call("removing an image", self.docker.remove_image(&name))
            .await
        {
            Ok(answer) if method == RemovalMethod::RemovalName && !answer.deleted(id) => {
                Removal::Changed(
                    "tagged again since the listing: the engine took only the janitor's removal name off it"
                        .to_string(),
                )
            }
            outcome => Removal::Done(outcome),
        }
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

fn forget_old(recent: &mut std::collections::VecDeque<(String, Instant)>) {
    while recent
        .front()
        .is_some_and(|(_, at)| at.elapsed() > OWN_EVENT_WINDOW)
    {
        recent.pop_front();
    }
    if recent.is_empty() {
        // A pass of 10,000 removals must not hold their IDs' room for good.
        recent.shrink_to_fit();
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

/// Labelled images the candidate listing did not return, and why they are
/// kept: a real tag, or (untagged) images built on them. Plan only.
fn explain_others(candidates: &[ListedImage], others: Vec<ListedImage>, now: i64) -> Vec<Skipped> {
    let listed: HashSet<&str> = candidates.iter().map(|i| i.id.as_str()).collect();
    others
        .into_iter()
        .filter(|image| !listed.contains(image.id.as_str()))
        .map(|image| {
            let reason = if cascade_scope::is_untagged(&image.id, &image.repo_tags) {
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

/// The summary line, only when something was removed; a quiet pass logs at
/// debug, so an idle daemon's log stays quiet.
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
