//! `cascade-bench gentle` (`cargo xtask bench-gentle`): what a sweep does
//! to the engine's other users. The [`CommitProbe`] commits all along;
//! each round runs every [`Phase`] once, in a rotated order, and a phase's
//! commits are those that started inside it. Writes [`GentleResults`] as
//! JSON and the Markdown table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::contender::{self, Phase, check_count};
use super::probe::{self, CommitProbe};
use super::procfs::{self, EngineCpu};
use super::results::{GentleResults, PhaseResult, PhaseRun, write_json};
use super::seed::{SeedSet, count_ours};
use super::stats::{Latency, Summary};
use super::{cpus, interruptible, render, store_name, utc_now};
use crate::NestedEngine;
use crate::fixtures::{self, ImageSpec};

/// Flags of `cascade-bench gentle`.
#[derive(Debug, clap::Args)]
pub struct GentleArgs {
    /// The engine of the matrix: 20.10, 26.1-classic, 26.1-containerd,
    /// 28.5-classic, 28.5-containerd
    #[arg(long, env = "CASCADE_TEST_ENGINE", default_value = "20.10")]
    pub engine: String,
    /// Labelled dangling images each removing phase sweeps
    #[arg(long, default_value_t = 2_000)]
    pub images: usize,
    /// Unlabelled dangling images loaded beside them
    #[arg(long, default_value_t = 1_000)]
    pub decoys: usize,
    /// One janitor phase per value, passed verbatim to `--concurrency`
    #[arg(long, value_delimiter = ',', default_value = "4")]
    pub concurrency: Vec<String>,
    /// Rounds; each runs every phase once, in a rotated order
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Commits the idle phase waits for in each round
    #[arg(long, default_value_t = 200)]
    pub idle_samples: usize,
    /// Time between the starts of two commits (closed loop: a slower
    /// commit delays the next)
    #[arg(long, default_value_t = 50)]
    pub period_ms: u64,
    /// The release `cascade-janitor` binary
    #[arg(long)]
    pub janitor: PathBuf,
    /// Where the JSON results go
    #[arg(long)]
    pub json: PathBuf,
    /// Where the Markdown table goes (it is also printed)
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// How long a phase may wait for the probe's commits before the run is
/// called broken.
const PROBE_LIMIT: Duration = Duration::from_secs(300);

/// `cascade-bench gentle`.
pub async fn run(args: GentleArgs) -> Result<()> {
    if !args.janitor.is_file() {
        bail!(
            "{} is missing; build it with `cargo build --release -p cascade-janitor`",
            args.janitor.display()
        );
    }
    if args.rounds == 0 || args.images == 0 {
        bail!("--rounds and --images must be at least 1");
    }
    let mut phases = vec![Phase::Idle, Phase::EnginePrune];
    phases.extend(args.concurrency.iter().cloned().map(Phase::Janitor));

    eprintln!("cascade-bench: starting nested engine {}", args.engine);
    let engine = NestedEngine::start_named(&args.engine).await?;
    let info = engine.docker.info().await?;
    let engine_name = engine.engine.name().to_string();
    let store = store_name(&engine).to_string();
    let outcome = interruptible(measure(&engine, &phases, &args)).await;
    let finished = engine.finish().await;
    let phases = outcome?;
    let results = GentleResults {
        engine: info.server_version.unwrap_or_default(),
        engine_name,
        store,
        storage_driver: info.driver.unwrap_or_default(),
        date: utc_now(),
        images: args.images,
        decoys: args.decoys,
        rounds: args.rounds,
        period_ms: args.period_ms,
        cpus: cpus(),
        phases,
    };
    write_json(&args.json, &results)?;
    let table = render::gentle_table(&results);
    println!("{table}");
    if let Some(markdown) = &args.markdown {
        std::fs::write(markdown, &table)?;
        println!("wrote {}", markdown.display());
    }
    println!("wrote {}", args.json.display());
    // After the results (see `compare::run`).
    finished
}

/// Every round of every phase, with the probe committing throughout.
async fn measure(
    engine: &NestedEngine,
    phases: &[Phase],
    args: &GentleArgs,
) -> Result<Vec<PhaseResult>> {
    let root = procfs::engine_pid(engine).await?;
    let host = engine.host();
    let set = SeedSet::new(args.images, args.decoys)?;
    // The probe's container: from a tagged image of its own, unlabelled,
    // so nothing it makes is ever in the janitor's scope.
    fixtures::load(
        &engine.docker,
        &[ImageSpec::new("probe-base").tagged("probe-base:latest")],
    )
    .await?;
    let container = fixtures::create_container(&engine.docker, "probe-base:latest").await?;
    let (loaded, took) = set.restore(&engine.docker).await?;
    eprintln!(
        "cascade-bench: seeded {loaded} images in {:.2} s",
        took.as_secs_f64()
    );
    let mut probe = CommitProbe::start(
        &engine.socket,
        &container,
        Duration::from_millis(args.period_ms),
    )
    .await?;
    let mut windows: Vec<Vec<(Instant, Instant)>> = vec![Vec::new(); phases.len()];
    let mut runs: Vec<Vec<PhaseRun>> = vec![Vec::new(); phases.len()];
    for round in 0..args.rounds {
        for k in 0..phases.len() {
            let i = (k + round) % phases.len();
            let phase = &phases[i];
            let (count, restore) = if *phase == Phase::Idle {
                (0, Duration::ZERO)
            } else {
                set.restore(&engine.docker).await?
            };
            if count > 0 {
                eprintln!(
                    "cascade-bench: restored {count} images in {:.2} s",
                    restore.as_secs_f64()
                );
            }
            // One commit that started after the restore finished: the
            // probe is running and no commit slowed by the restore is
            // counted in the phase.
            probe.wait_for(Instant::now(), 1, PROBE_LIMIT).await?;
            let cpu_before = EngineCpu::read(root)?;
            let from = Instant::now();
            match phase {
                Phase::Idle => probe.wait_for(from, args.idle_samples, PROBE_LIMIT).await?,
                Phase::EnginePrune => contender::docker_prune(&host).await?,
                Phase::Janitor(concurrency) => {
                    let removed =
                        contender::janitor_prune(&args.janitor, &host, concurrency).await?;
                    check_count(&phase.name(), removed, set.images)?;
                }
            }
            let until = Instant::now();
            let engine_cpu = EngineCpu::read(root)?.since(cpu_before);
            if *phase == Phase::EnginePrune {
                // Counted by listing, after the measured window.
                let left = count_ours(&engine.docker).await?;
                let removed = set.images - left.min(set.images);
                check_count(&phase.name(), removed, set.images)?;
            }
            let run = PhaseRun {
                round: round + 1,
                seconds: (until - from).as_secs_f64(),
                engine_cpu,
                restore_seconds: restore.as_secs_f64(),
            };
            let commits = probe::started_within(&probe.samples(), from, until).len();
            eprintln!(
                "cascade-bench: round {}: {:<44} {:>8.3} s, {commits} commits, engine CPU {:.2} s",
                round + 1,
                phase.name(),
                run.seconds,
                engine_cpu.total_seconds()
            );
            windows[i].push((from, until));
            runs[i].push(run);
        }
    }
    let samples = probe.stop().await?;
    phases
        .iter()
        .zip(windows)
        .zip(runs)
        .map(|((phase, windows), runs)| {
            let latencies: Vec<Duration> = windows
                .iter()
                .flat_map(|(from, until)| probe::started_within(&samples, *from, *until))
                .collect();
            let walls: Vec<Duration> = runs
                .iter()
                .map(|r| Duration::from_secs_f64(r.seconds))
                .collect();
            let cpu: f64 = runs.iter().map(|r| r.engine_cpu.total_seconds()).sum();
            let wall: f64 = runs.iter().map(|r| r.seconds).sum();
            Ok(PhaseResult {
                name: phase.name(),
                phase: phase.clone(),
                latency: Latency::of(&latencies),
                wall: Summary::of(&walls).context("a phase without a round")?,
                engine_cpu_per_second: if wall > 0.0 { cpu / wall } else { 0.0 },
                runs,
                latencies_ms: latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            })
        })
        .collect()
}
