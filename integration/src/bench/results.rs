//! The results each benchmark writes to `target/bench/*.json`, as typed
//! structs: `compare` writes [`Results`], `gentle` writes
//! [`GentleResults`]. `cascade-bench chart` reads a [`Results`] back.
//!
//! Each contender's result carries its key ([`Contender`], a phase's
//! [`Phase`]), which every lookup uses, beside its `name`, which is only
//! shown.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::contender::{Contender, Phase};
use super::procfs::EngineCpu;
use super::stats::{Latency, Summary};

/// One contender's result for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub seconds: f64,
    /// CPU the nested engine used meanwhile (user + system): dockerd, its
    /// containerd and every other process under it.
    pub engine_cpu_seconds: f64,
    /// The same, split by process (clock ticks).
    #[serde(default)]
    pub engine_cpu: Option<EngineCpu>,
    /// CPU the contender's process used, when it is a process we time.
    pub client_cpu_seconds: Option<f64>,
    /// Peak resident memory of the process, when it is a process.
    pub peak_rss_kib: Option<u64>,
}

/// One contender at one size, over its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContenderResult {
    /// [`Contender::name`] on the measured engine: shown, never looked up.
    pub name: String,
    /// The key every lookup uses.
    pub contender: Contender,
    pub command: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// The median wall time divided by the labelled images.
    #[serde(default)]
    pub wall_per_image_us: f64,
    pub peak_rss_kib_max: Option<u64>,
    pub samples: Vec<Sample>,
}

/// Every contender at one size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    pub images: usize,
    pub decoys: usize,
    /// Time to load the images a removing contender had removed.
    pub seed_seconds: Option<Summary>,
    pub contenders: Vec<ContenderResult>,
}

impl SizeResult {
    /// `contender`'s result at this size, if it ran.
    pub fn get(&self, contender: &Contender) -> Option<&ContenderResult> {
        self.contenders.iter().find(|c| c.contender == *contender)
    }

    /// `contender`'s median wall time, seconds.
    pub fn median(&self, contender: &Contender) -> Option<f64> {
        self.get(contender).map(|c| c.summary.median)
    }
}

/// The `run` daemon after its first sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    pub images_swept_first: usize,
    pub rss_kib: u64,
    pub cpu_ticks_over_window: u64,
    pub window_seconds: f64,
}

/// What `compare` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The engine's version, as it reports it.
    pub engine: String,
    /// Its name in the matrix (`28.5-containerd`).
    #[serde(default)]
    pub engine_name: String,
    /// `classic` or `containerd`.
    #[serde(default)]
    pub store: String,
    /// When the run ended (UTC, RFC 3339).
    #[serde(default)]
    pub date: String,
    pub storage_driver: String,
    pub cpus: usize,
    pub runs: usize,
    pub other_runs: usize,
    pub decoys: usize,
    pub sizes: Vec<SizeResult>,
    pub idle: Option<IdleResult>,
}

impl Results {
    /// The results at `images` labelled images, if that size ran.
    pub fn size(&self, images: usize) -> Option<&SizeResult> {
        self.sizes.iter().find(|s| s.images == images)
    }

    /// Reads a `compare` JSON file.
    pub fn read(path: &Path) -> Result<Results> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not the JSON of `cascade-bench compare` (a file written before contenders were keyed has no `contender` field: run `compare` again)",
                path.display()
            )
        })
    }
}

/// One phase of one round of the gentleness benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRun {
    pub round: usize,
    /// From the sweep's start (or the idle window's) to its exit.
    pub seconds: f64,
    pub engine_cpu: EngineCpu,
    /// Time to restore the seed before the phase (not part of it).
    pub restore_seconds: f64,
}

/// One phase over every round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    /// [`Phase::name`]: shown, never looked up.
    pub name: String,
    /// The key.
    pub phase: Phase,
    /// Commit latency over every round, pooled.
    pub latency: Option<Latency>,
    /// Wall time of the sweep (of the window, for idle).
    pub wall: Summary,
    /// Engine CPU over the phase divided by its wall time, pooled.
    pub engine_cpu_per_second: f64,
    pub runs: Vec<PhaseRun>,
    /// Every commit latency, milliseconds.
    pub latencies_ms: Vec<f64>,
}

/// What `gentle` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GentleResults {
    pub engine: String,
    pub engine_name: String,
    pub store: String,
    pub storage_driver: String,
    pub date: String,
    pub images: usize,
    pub decoys: usize,
    pub rounds: usize,
    pub period_ms: u64,
    pub cpus: usize,
    pub phases: Vec<PhaseResult>,
}

/// Writes `value` as pretty JSON to `path`, creating its folder.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}
