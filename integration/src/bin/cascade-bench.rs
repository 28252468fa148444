//! `cascade-bench`: seeding, the side-by-side comparison and the
//! gentleness benchmark behind `cargo xtask seed`, `cargo xtask
//! bench-compare` and `cargo xtask bench-gentle`.
//!
//! Everything runs against a nested engine: `seed` starts one unless it is
//! given `--docker-host`, and refuses the host engine's own socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use integration::NestedEngine;
use integration::bench::probe::{self, CommitProbe};
use integration::bench::procfs::{self, CLOCK_TICKS_PER_SECOND, EngineCpu};
use integration::bench::raw;
use integration::bench::seed::{self, SeedSet, count_ours, label_filter};
use integration::bench::stats::{Latency, Summary};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "cascade-bench",
    about = "Seeding and benchmarks against a nested engine"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Redraw the SVG from a compare.json that `compare` wrote
    Chart {
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        svg: PathBuf,
    },
    /// Load N labelled dangling images and M unlabelled ones into a nested engine
    Seed(seed::SeedArgs),
    /// Time the contenders side by side on one nested engine
    Compare(CompareArgs),
    /// Commit latency on the engine while each contender sweeps
    Gentle(GentleArgs),
}

#[derive(clap::Args)]
struct GentleArgs {
    /// The engine of the matrix: 20.10, 26.1-classic, 26.1-containerd,
    /// 28.5-classic, 28.5-containerd
    #[arg(long, env = "CASCADE_TEST_ENGINE", default_value = "20.10")]
    engine: String,
    /// Labelled dangling images each removing phase sweeps
    #[arg(long, default_value_t = 2_000)]
    images: usize,
    /// Unlabelled dangling images loaded beside them
    #[arg(long, default_value_t = 1_000)]
    decoys: usize,
    /// One janitor phase per value, passed verbatim to `--concurrency`
    #[arg(long, value_delimiter = ',', default_value = "4")]
    concurrency: Vec<String>,
    /// Rounds; each runs every phase once, in a rotated order
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Commits the idle phase waits for in each round
    #[arg(long, default_value_t = 200)]
    idle_samples: usize,
    /// Time between the starts of two commits (closed loop: a slower
    /// commit delays the next)
    #[arg(long, default_value_t = 50)]
    period_ms: u64,
    /// The release `cascade-janitor` binary
    #[arg(long)]
    janitor: PathBuf,
    /// Where the JSON results go
    #[arg(long)]
    json: PathBuf,
    /// Where the Markdown table goes (it is also printed)
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// The engine of the matrix: 20.10, 26.1-classic, 26.1-containerd,
    /// 28.5-classic, 28.5-containerd
    #[arg(long, env = "CASCADE_TEST_ENGINE", default_value = "20.10")]
    engine: String,
    /// The size the ratios and targets are read at
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Unlabelled dangling images loaded beside every size
    #[arg(long, default_value_t = 1_000)]
    decoys: usize,
    /// Image counts to measure (comma-separated); `--images` is added
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Rounds at `--images`; each round runs every contender once
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rounds at the other sizes (they feed the chart and the per-image
    /// trend; fewer keeps the whole run short)
    #[arg(long, default_value_t = 1)]
    other_runs: usize,
    /// Also time `cascade-janitor prune --concurrency V` for these V,
    /// passed verbatim (`1,4,8,auto`)
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<String>,
    /// The release `cascade-janitor` binary
    #[arg(long)]
    janitor: PathBuf,
    /// Another `cascade-janitor` build (e.g. before a change), timed as
    /// `baseline prune` beside the others
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Where the JSON results go
    #[arg(long)]
    json: PathBuf,
    /// Where the chart goes
    #[arg(long)]
    svg: PathBuf,
    /// Where the Markdown tables go (they are also printed)
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Skip the idle-daemon measurement
    #[arg(long)]
    no_idle: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.task {
        Task::Chart { json, svg } => {
            let results: Results = serde_json::from_slice(&std::fs::read(&json)?)?;
            std::fs::write(&svg, chart(&results))?;
            Ok(())
        }
        Task::Seed(args) => runtime.block_on(seed::run(args)),
        Task::Compare(args) => runtime.block_on(compare(args)),
        Task::Gentle(args) => runtime.block_on(gentle(args)),
    }
}

/// One contender's result for one run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Sample {
    seconds: f64,
    /// CPU the nested engine used meanwhile (user + system): dockerd, its
    /// containerd and every other process under it.
    engine_cpu_seconds: f64,
    /// The same, split by process (clock ticks).
    #[serde(default)]
    engine_cpu: Option<EngineCpu>,
    /// CPU the contender's process used, when it is a process we time.
    client_cpu_seconds: Option<f64>,
    /// Peak resident memory of the process, when it is a process.
    peak_rss_kib: Option<u64>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct ContenderResult {
    name: String,
    command: String,
    #[serde(flatten)]
    summary: Summary,
    /// The median wall time divided by the labelled images.
    #[serde(default)]
    wall_per_image_us: f64,
    peak_rss_kib_max: Option<u64>,
    samples: Vec<Sample>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct SizeResult {
    images: usize,
    decoys: usize,
    /// Time to load the images a removing contender had removed.
    seed_seconds: Option<Summary>,
    contenders: Vec<ContenderResult>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct IdleResult {
    images_swept_first: usize,
    rss_kib: u64,
    cpu_ticks_over_window: u64,
    window_seconds: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct Results {
    /// The engine's version, as it reports it.
    engine: String,
    /// Its name in the matrix (`28.5-containerd`).
    #[serde(default)]
    engine_name: String,
    /// `classic` or `containerd`.
    #[serde(default)]
    store: String,
    /// When the run ended (UTC, RFC 3339).
    #[serde(default)]
    date: String,
    storage_driver: String,
    cpus: usize,
    runs: usize,
    other_runs: usize,
    decoys: usize,
    sizes: Vec<SizeResult>,
    idle: Option<IdleResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Contender {
    RawList,
    DockerPrune,
    /// `podman image prune`, on a Podman engine in place of `DockerPrune`.
    PodmanPrune,
    OneAtATime,
    JanitorDryRun,
    JanitorPrune,
    /// `--concurrency` with this value, verbatim.
    JanitorPruneAt(String),
    BaselinePrune,
}

impl Contender {
    fn name(&self) -> String {
        match self {
            Contender::RawList => "raw GET /images/json".into(),
            Contender::DockerPrune => "docker image prune".into(),
            Contender::PodmanPrune => "podman image prune".into(),
            Contender::OneAtATime => "one-at-a-time loop".into(),
            Contender::JanitorDryRun => "cascade-janitor prune --dry-run".into(),
            Contender::JanitorPrune => "cascade-janitor prune".into(),
            Contender::JanitorPruneAt(n) => format!("cascade-janitor prune --concurrency {n}"),
            Contender::BaselinePrune => "baseline prune".into(),
        }
    }

    fn command(&self) -> String {
        let janitor = "cascade-janitor prune --output json --docker-host $HOST";
        match self {
            Contender::RawList => "GET /images/json?filters={\"dangling\":[\"true\"],\"label\":[\"cascade.managed=true\"]} (fresh connection, body read, not decoded; in-process)".into(),
            Contender::DockerPrune => "DOCKER_HOST=$HOST docker image prune -f --filter label=cascade.managed=true".into(),
            Contender::PodmanPrune => "podman image prune -f --filter label=cascade.managed=true --filter dangling=true (the nested engine's own podman, on its storage: docker exec ENGINE podman --root ... image prune ...)".into(),
            Contender::OneAtATime => "list, then DELETE /images/{id}?force=false&noprune=true one at a time on one keep-alive connection (hyper, in-process)".into(),
            Contender::JanitorDryRun => format!("{janitor} --dry-run"),
            Contender::JanitorPrune => janitor.into(),
            Contender::JanitorPruneAt(n) => format!("{janitor} --concurrency {n}"),
            Contender::BaselinePrune => format!("{janitor} (the --baseline build)"),
        }
    }

    fn removes(&self) -> bool {
        !matches!(self, Contender::RawList | Contender::JanitorDryRun)
    }
}

async fn compare(args: CompareArgs) -> Result<()> {
    if !args.janitor.is_file() {
        bail!(
            "{} is missing; build it with `cargo build --release -p cascade-janitor`",
            args.janitor.display()
        );
    }
    let mut sizes = args.sizes.clone();
    sizes.push(args.images);
    sizes.sort_unstable();
    sizes.dedup();
    let engine_prune = match integration::engine::Engine::named(&args.engine)?.family {
        integration::engine::Family::Docker => Contender::DockerPrune,
        integration::engine::Family::Podman => Contender::PodmanPrune,
    };
    let mut contenders = vec![
        Contender::RawList,
        engine_prune,
        Contender::OneAtATime,
        Contender::JanitorDryRun,
        Contender::JanitorPrune,
    ];
    contenders.extend(
        args.concurrency
            .iter()
            .cloned()
            .map(Contender::JanitorPruneAt),
    );
    if args.baseline.is_some() {
        contenders.push(Contender::BaselinePrune);
    }

    eprintln!("cascade-bench: starting nested engine {}", args.engine);
    let engine = NestedEngine::start_named(&args.engine).await?;
    let info = engine.docker.info().await?;
    let mut results = Results {
        engine: info.server_version.unwrap_or_default(),
        engine_name: engine.engine.name().to_string(),
        store: store_name(&engine).to_string(),
        date: String::new(),
        storage_driver: info.driver.unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        runs: args.runs,
        other_runs: args.other_runs,
        decoys: args.decoys,
        sizes: Vec::new(),
        idle: None,
    };
    let outcome = interruptible(async {
        let root = procfs::engine_pid(&engine).await?;
        // Sizes grow, and each set contains the smaller ones (same names,
        // same epoch): after a sweep, loading the set restores exactly it.
        for &size in &sizes {
            let set = SeedSet::new(size, args.decoys)?;
            results
                .sizes
                .push(measure_size(&engine, root, &set, &contenders, &args).await?);
        }
        if !args.no_idle {
            let set = SeedSet::new(args.images, args.decoys)?;
            results.idle = Some(measure_idle(&engine, &set, &args.janitor).await?);
        }
        anyhow::Ok(())
    })
    .await;
    // The results are written before the host guard's verdict: a guard
    // that fails because something else added images to the host (a build
    // running beside the benchmark) must not lose a measured run.
    let finished = engine.finish().await;
    outcome?;
    results.date = utc_now();

    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&results)?)?;
    if let Some(dir) = args.svg.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.svg, chart(&results))?;
    let tables = table(&results, args.images);
    println!("{tables}");
    if let Some(markdown) = &args.markdown {
        std::fs::write(markdown, &tables)?;
        println!("wrote {}", markdown.display());
    }
    println!("wrote {} and {}", args.json.display(), args.svg.display());
    finished
}

async fn measure_size(
    engine: &NestedEngine,
    root: u32,
    set: &SeedSet,
    contenders: &[Contender],
    args: &CompareArgs,
) -> Result<SizeResult> {
    let mut samples: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
    let mut seeds = Vec::new();
    let runs = if set.images == args.images {
        args.runs
    } else {
        args.other_runs
    };
    for round in 0..runs {
        // Rotate the order each round so no contender always follows the
        // same neighbour (page cache, engine GC).
        for k in 0..contenders.len() {
            let i = (k + round) % contenders.len();
            let contender = &contenders[i];
            let (count, took) = set.restore(&engine.docker).await?;
            if count > 0 {
                eprintln!(
                    "cascade-bench: restored {count} images in {:.2} s",
                    took.as_secs_f64()
                );
                seeds.push(took);
            }
            let janitor = match (contender, &args.baseline) {
                (Contender::BaselinePrune, Some(baseline)) => baseline,
                _ => &args.janitor,
            };
            let sample = run_contender(engine, root, set, contender, janitor).await?;
            eprintln!(
                "cascade-bench: {:>6} images, round {}: {:<44} {:>8.3} s{}",
                set.images,
                round + 1,
                contender.name(),
                sample.seconds,
                sample
                    .peak_rss_kib
                    .map(|k| format!("  peak RSS {:.1} MB", k as f64 / 1024.0))
                    .unwrap_or_default()
            );
            samples.entry(i).or_default().push(sample);
        }
    }
    let contenders = contenders
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let samples = samples.remove(&i).unwrap_or_default();
            let durations: Vec<Duration> = samples
                .iter()
                .map(|s| Duration::from_secs_f64(s.seconds))
                .collect();
            let summary = Summary::of(&durations).expect("at least one run");
            ContenderResult {
                name: c.name(),
                command: c.command(),
                wall_per_image_us: summary.median / set.images.max(1) as f64 * 1e6,
                summary,
                peak_rss_kib_max: samples.iter().filter_map(|s| s.peak_rss_kib).max(),
                samples,
            }
        })
        .collect();
    Ok(SizeResult {
        images: set.images,
        decoys: set.decoys,
        seed_seconds: Summary::of(&seeds),
        contenders,
    })
}

async fn run_contender(
    engine: &NestedEngine,
    root: u32,
    set: &SeedSet,
    contender: &Contender,
    janitor: &Path,
) -> Result<Sample> {
    let host = engine.host();
    let expect = set.images;
    // `docker image prune` is counted by listing before and after, outside
    // the measured window: what it prints is not one line per image on
    // every store (26.1's containerd store prints two digests per image).
    let ours_before = match contender {
        Contender::DockerPrune | Contender::PodmanPrune => count_ours(&engine.docker).await?,
        _ => expect,
    };
    let engine_before = EngineCpu::read(root)?;
    let mut client_cpu_seconds = None;
    let started = Instant::now();
    let (seconds, peak_rss_kib) = match contender {
        Contender::RawList => {
            let bytes = raw::raw_list(&engine.socket).await?;
            let seconds = started.elapsed().as_secs_f64();
            if bytes < expect * 100 {
                bail!("raw list returned only {bytes} bytes for {expect} images");
            }
            (seconds, None)
        }
        Contender::OneAtATime => {
            let removed = raw::one_at_a_time(&engine.socket).await?;
            let seconds = started.elapsed().as_secs_f64();
            check_count("one-at-a-time loop", removed, expect)?;
            (seconds, None)
        }
        Contender::DockerPrune => {
            docker_prune(&host).await?;
            (started.elapsed().as_secs_f64(), None)
        }
        Contender::PodmanPrune => {
            podman_prune(engine).await?;
            (started.elapsed().as_secs_f64(), None)
        }
        Contender::JanitorDryRun
        | Contender::JanitorPrune
        | Contender::JanitorPruneAt(_)
        | Contender::BaselinePrune => {
            let rss_file = tempfile::NamedTempFile::new()?;
            let mut command = tokio::process::Command::new("/usr/bin/time");
            command
                .arg("-f")
                .arg("%M %U %S")
                .arg("-o")
                .arg(rss_file.path())
                .arg(janitor);
            janitor_prune_args(&mut command, &host);
            match contender {
                Contender::JanitorDryRun => {
                    command.arg("--dry-run");
                }
                Contender::JanitorPruneAt(value) => {
                    command.args(["--concurrency", value]);
                }
                _ => {}
            }
            let out = checked_output(&mut command, &contender.name()).await?;
            let seconds = started.elapsed().as_secs_f64();
            let field = if *contender == Contender::JanitorDryRun {
                "would_remove"
            } else {
                "removed"
            };
            check_count(&contender.name(), reported(&out.stdout, field)?, expect)?;
            // `/usr/bin/time` writes "peak-KiB user-s system-s" last.
            let usage = std::fs::read_to_string(rss_file.path())?;
            let fields: Vec<&str> = usage
                .trim()
                .lines()
                .last()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let rss = fields.first().and_then(|v| v.parse().ok());
            let cpu: Option<f64> = fields
                .get(1..3)
                .and_then(|f| Some(f[0].parse::<f64>().ok()? + f[1].parse::<f64>().ok()?));
            client_cpu_seconds = cpu;
            (seconds, rss)
        }
    };
    let engine_cpu = EngineCpu::read(root)?.since(engine_before);
    if contender.removes() {
        let left = count_ours(&engine.docker).await?;
        if matches!(contender, Contender::DockerPrune | Contender::PodmanPrune) {
            check_count(
                &contender.name(),
                ours_before - left.min(ours_before),
                expect,
            )?;
        }
        if left != 0 {
            bail!("{} left {left} labelled dangling images", contender.name());
        }
    }
    Ok(Sample {
        seconds,
        engine_cpu_seconds: engine_cpu.total_seconds(),
        engine_cpu: Some(engine_cpu),
        client_cpu_seconds,
        peak_rss_kib,
    })
}

/// `docker image prune -f --filter label=cascade.managed=true` against
/// `host`. The caller counts what it removed by listing.
async fn docker_prune(host: &str) -> Result<()> {
    let mut command = tokio::process::Command::new("docker");
    command
        .args(["image", "prune", "-f", "--filter", &label_filter()])
        .env("DOCKER_HOST", host)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    checked_output(&mut command, "docker image prune").await?;
    Ok(())
}

/// `podman image prune -f --filter label=cascade.managed=true --filter
/// dangling=true`, run by the nested Podman engine's own binary on its own
/// storage (the image's entrypoint up to `system service` holds the storage
/// flags), so it competes with the service as a host's CLI would. Its CPU
/// runs outside the engine's process tree: the table's engine CPU for it
/// is the service's share only.
async fn podman_prune(engine: &NestedEngine) -> Result<()> {
    let mut inspect = tokio::process::Command::new("docker");
    inspect.args([
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}",
        engine.container_id(),
    ]);
    let out = checked_output(&mut inspect, "docker inspect of the Podman engine").await?;
    let entrypoint: Vec<String> = serde_json::from_slice(&out.stdout)
        .context("the Podman engine's container has no entrypoint")?;
    let podman: Vec<String> = entrypoint
        .into_iter()
        .take_while(|arg| arg != "system")
        .filter(|arg| !arg.starts_with("--log-level"))
        .collect();
    let label = label_filter();
    let mut command = tokio::process::Command::new("docker");
    command
        .args(["exec", engine.container_id()])
        .args(&podman)
        .args([
            "image",
            "prune",
            "-f",
            "--filter",
            &label,
            "--filter",
            "dangling=true",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    checked_output(&mut command, "podman image prune").await?;
    Ok(())
}

/// Runs `command` to its end; an exit other than 0 is an error naming
/// `what`, with its status and standard error.
async fn checked_output(
    command: &mut tokio::process::Command,
    what: &str,
) -> Result<std::process::Output> {
    let out = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `prune --output json --docker-host HOST` after the janitor's path, run
/// as the benchmarks run it: no Sentry, warnings only, no input.
fn janitor_prune_args(command: &mut tokio::process::Command, host: &str) {
    command
        .args(["prune", "--output", "json", "--docker-host", host])
        .env_remove("SENTRY_DSN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
}

/// How many images the janitor's JSON report lists under `field`.
fn reported(stdout: &[u8], field: &str) -> Result<usize> {
    let report: serde_json::Value =
        serde_json::from_slice(stdout).context("the janitor's JSON report")?;
    Ok(report[field].as_array().map_or(0, Vec::len))
}

fn check_count(who: &str, got: usize, expect: usize) -> Result<()> {
    if got != expect {
        bail!("{who} handled {got} images, expected {expect}: the seed did not restore the set");
    }
    Ok(())
}

/// Starts `cascade-janitor run`, lets its first sweep remove the set, then
/// reads its resident memory and CPU ticks over a quiet window.
async fn measure_idle(engine: &NestedEngine, set: &SeedSet, janitor: &Path) -> Result<IdleResult> {
    set.restore(&engine.docker).await?;
    let mut child = tokio::process::Command::new(janitor)
        .args(["run", "--interval", "1h", "--docker-host", &engine.host()])
        .env_remove("SENTRY_DSN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting cascade-janitor run")?;
    let pid = child.id().context("pid")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_ours(&engine.docker).await? != 0 {
        if Instant::now() > deadline {
            bail!("the daemon did not sweep the set within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the pass finish and settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = Duration::from_secs(20);
    let before = procfs::cpu_ticks(pid)?;
    tokio::time::sleep(window).await;
    let after = procfs::cpu_ticks(pid)?;
    let rss_kib = procfs::rss_kib(pid)?;
    child.kill().await?;
    Ok(IdleResult {
        images_swept_first: set.images,
        rss_kib,
        cpu_ticks_over_window: after.saturating_sub(before),
        window_seconds: window.as_secs_f64(),
    })
}

/// What runs during one phase of the gentleness benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    DockerPrune,
    /// `cascade-janitor prune --concurrency <value>`.
    Janitor(String),
}

impl Phase {
    fn name(&self) -> String {
        match self {
            Phase::Idle => "idle".into(),
            Phase::DockerPrune => "docker image prune".into(),
            Phase::Janitor(c) => format!("cascade-janitor prune --concurrency {c}"),
        }
    }
}

/// One phase of one round.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct PhaseRun {
    round: usize,
    /// From the sweep's start (or the idle window's) to its exit.
    seconds: f64,
    engine_cpu: EngineCpu,
    /// Time to restore the seed before the phase (not part of it).
    restore_seconds: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct PhaseResult {
    name: String,
    /// Commit latency over every round, pooled.
    latency: Option<Latency>,
    /// Wall time of the sweep (of the window, for idle).
    wall: Summary,
    /// Engine CPU over the phase divided by its wall time, pooled.
    engine_cpu_per_second: f64,
    runs: Vec<PhaseRun>,
    /// Every commit latency, milliseconds.
    latencies_ms: Vec<f64>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct GentleResults {
    engine: String,
    engine_name: String,
    store: String,
    storage_driver: String,
    date: String,
    images: usize,
    decoys: usize,
    rounds: usize,
    period_ms: u64,
    cpus: usize,
    phases: Vec<PhaseResult>,
}

/// How long a phase may wait for the probe's commits before the run is
/// called broken.
const PROBE_LIMIT: Duration = Duration::from_secs(300);

async fn gentle(args: GentleArgs) -> Result<()> {
    if !args.janitor.is_file() {
        bail!(
            "{} is missing; build it with `cargo build --release -p cascade-janitor`",
            args.janitor.display()
        );
    }
    if args.rounds == 0 || args.images == 0 {
        bail!("--rounds and --images must be at least 1");
    }
    let mut phases = vec![Phase::Idle, Phase::DockerPrune];
    phases.extend(args.concurrency.iter().cloned().map(Phase::Janitor));

    eprintln!("cascade-bench: starting nested engine {}", args.engine);
    let engine = NestedEngine::start_named(&args.engine).await?;
    let info = engine.docker.info().await?;
    let engine_name = engine.engine.name().to_string();
    let store = store_name(&engine).to_string();
    let outcome = interruptible(measure_gentle(&engine, &phases, &args)).await;
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
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        phases,
    };
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&results)?)?;
    let table = gentle_table(&results);
    println!("{table}");
    if let Some(markdown) = &args.markdown {
        std::fs::write(markdown, &table)?;
        println!("wrote {}", markdown.display());
    }
    println!("wrote {}", args.json.display());
    // After the results (see `compare`).
    finished
}

async fn measure_gentle(
    engine: &NestedEngine,
    phases: &[Phase],
    args: &GentleArgs,
) -> Result<Vec<PhaseResult>> {
    let root = procfs::engine_pid(engine).await?;
    let host = engine.host();
    let set = SeedSet::new(args.images, args.decoys)?;
    // The probe's container: from a tagged image of its own, unlabelled,
    // so nothing it makes is ever in the janitor's scope.
    integration::fixtures::load(
        &engine.docker,
        &[integration::fixtures::ImageSpec::new("probe-base").tagged("probe-base:latest")],
    )
    .await?;
    let container =
        integration::fixtures::create_container(&engine.docker, "probe-base:latest").await?;
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
                Phase::DockerPrune => {
                    docker_prune(&host).await?;
                }
                Phase::Janitor(concurrency) => {
                    let removed = janitor_prune(&args.janitor, &host, concurrency).await?;
                    check_count(&phase.name(), removed, set.images)?;
                }
            }
            let until = Instant::now();
            let engine_cpu = EngineCpu::read(root)?.since(cpu_before);
            if *phase == Phase::DockerPrune {
                // Counted by listing, after the measured window.
                let left = count_ours(&engine.docker).await?;
                let removed = set.images - left.min(set.images);
                check_count("docker image prune", removed, set.images)?;
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
    Ok(phases
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
            PhaseResult {
                name: phase.name(),
                latency: Latency::of(&latencies),
                wall: Summary::of(&walls).expect("at least one round"),
                engine_cpu_per_second: if wall > 0.0 { cpu / wall } else { 0.0 },
                runs,
                latencies_ms: latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            }
        })
        .collect())
}

/// `cascade-janitor prune --concurrency <value>`; returns how many images
/// its report says it removed.
async fn janitor_prune(janitor: &Path, host: &str, concurrency: &str) -> Result<usize> {
    let mut command = tokio::process::Command::new(janitor);
    janitor_prune_args(&mut command, host);
    command.args(["--concurrency", concurrency]);
    let what = format!("cascade-janitor prune --concurrency {concurrency}");
    let out = checked_output(&mut command, &what).await?;
    reported(&out.stdout, "removed")
}

/// The Markdown table of a gentleness run.
fn gentle_table(results: &GentleResults) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#### Engine {}: Docker {}, {} store ({}), N = {} labelled dangling images + {} decoys, measured {}\n",
        results.engine_name,
        results.engine,
        results.store,
        results.storage_driver,
        results.images,
        results.decoys,
        results.date.get(..10).unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "A `POST /commit` every {} ms on its own connection; {} round(s), commits pooled over the rounds; {} CPUs.\n",
        results.period_ms, results.rounds, results.cpus
    );
    let _ = writeln!(
        out,
        "| phase | commits | commit p50 | commit p99 | commit max | phase wall, median (min-max) | engine CPU per second |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in &results.phases {
        let latency = match &p.latency {
            Some(l) => format!(
                "{} | {:.1} ms | {:.1} ms{} | {:.1} ms",
                l.samples,
                l.p50_ms,
                l.p99_ms,
                if l.samples < 200 {
                    " (< 200 commits)"
                } else {
                    ""
                },
                l.max_ms
            ),
            None => "0 | | |".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {latency} | {:.2} s ({:.2}-{:.2}) | {:.2} s |",
            p.name, p.wall.median, p.wall.min, p.wall.max, p.engine_cpu_per_second
        );
    }
    out
}

/// Runs `work`, or stops at Ctrl-C: the caller then still removes its
/// nested engine, and dropping `work` kills the processes it started.
async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C); the nested engine is removed"),
    }
}

fn store_name(engine: &NestedEngine) -> &'static str {
    match engine.engine.store {
        integration::engine::Store::Classic => "classic",
        integration::engine::Store::Containerd => "containerd",
        integration::engine::Store::ContainersStorage => "containers-storage",
    }
}

/// Now, UTC, RFC 3339 to the second.
fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn median_of(size: &SizeResult, name: &str) -> Option<f64> {
    size.contenders
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.summary.median)
}

/// The Markdown table `docs/BENCHMARKS.md` carries, and the targets.
fn table(results: &Results, main: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#### Engine {}: Docker {}, {} store ({}), N = {main} labelled dangling images + {} decoys, measured {}\n",
        if results.engine_name.is_empty() {
            "?"
        } else {
            &results.engine_name
        },
        results.engine,
        if results.store.is_empty() {
            "?"
        } else {
            &results.store
        },
        results.storage_driver,
        results.decoys,
        results.date.get(..10).unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "{} CPUs, {} runs per contender at {main} images ({} at the other sizes), medians (min-max), seconds\n",
        results.cpus, results.runs, results.other_runs
    );
    let _ = write!(out, "| contender |");
    for s in &results.sizes {
        let _ = write!(out, " {} images |", s.images);
    }
    let _ = write!(out, "\n| --- |");
    for _ in &results.sizes {
        let _ = write!(out, " --- |");
    }
    out.push('\n');
    let names: Vec<String> = results.sizes[0]
        .contenders
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for name in &names {
        let _ = write!(out, "| {name} |");
        for s in &results.sizes {
            match s.contenders.iter().find(|c| &c.name == name) {
                Some(c) => {
                    let _ = write!(
                        out,
                        " {:.3} ({:.3}-{:.3}) |",
                        c.summary.median, c.summary.min, c.summary.max
                    );
                }
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    let _ = write!(out, "| seed (docker load), for reference |");
    for s in &results.sizes {
        match &s.seed_seconds {
            Some(seed) => {
                let _ = write!(out, " {:.3} |", seed.median);
            }
            None => out.push_str(" |"),
        }
    }
    out.push('\n');

    if let Some(size) = results.sizes.iter().find(|s| s.images == main) {
        let _ = writeln!(
            out,
            "\nWhere the time goes at {main} images (medians over the runs, per labelled image):\n"
        );
        let _ = writeln!(
            out,
            "| contender | wall | engine CPU (dockerd + containerd) | of which containerd | client process CPU |\n| --- | --- | --- | --- | --- |"
        );
        let per = |secs: f64| format!("{:.0} µs", secs / size.images.max(1) as f64 * 1e6);
        for c in &size.contenders {
            let mut engine: Vec<f64> = c.samples.iter().map(|s| s.engine_cpu_seconds).collect();
            let mut containerd: Vec<f64> = c
                .samples
                .iter()
                .filter_map(|s| s.engine_cpu)
                .map(|cpu| cpu.containerd as f64 / CLOCK_TICKS_PER_SECOND)
                .collect();
            let mut client: Vec<f64> = c
                .samples
                .iter()
                .filter_map(|s| s.client_cpu_seconds)
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                c.name,
                per(c.summary.median),
                per(median(&mut engine)),
                if containerd.is_empty() {
                    "?".to_string()
                } else {
                    per(median(&mut containerd))
                },
                if client.is_empty() {
                    "in-process".to_string()
                } else {
                    per(median(&mut client))
                }
            );
        }
    }

    if let Some(size) = results.sizes.iter().find(|s| s.images == main) {
        let m = |n: &str| median_of(size, n).unwrap_or(f64::NAN);
        let sweep = m("cascade-janitor prune");
        // The engine's own prune: Docker's, or Podman's on a Podman engine.
        let prune = m("docker image prune").min(m("podman image prune"));
        let lap = m("one-at-a-time loop");
        let dry = m("cascade-janitor prune --dry-run");
        let floor = m("raw GET /images/json");
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "\nTargets at {main} images + {} decoys (ratios of medians):\n",
            size.decoys
        );
        let _ = writeln!(out, "| target | measured | |\n| --- | --- | --- |");
        let r = sweep / prune;
        let _ = writeln!(
            out,
            "| sweep ≤ 0.6 × docker image prune | {r:.2} × ({sweep:.2} s / {prune:.2} s) | {} |",
            verdict(r <= 0.6)
        );
        let r = sweep / lap;
        let _ = writeln!(
            out,
            "| sweep ≤ 0.45 × one-at-a-time | {r:.2} × ({sweep:.2} s / {lap:.2} s) | {} |",
            verdict(r <= 0.45)
        );
        let r = dry / floor;
        let _ = writeln!(
            out,
            "| dry run ≤ 1.3 × raw list | {r:.2} × ({dry:.3} s / {floor:.3} s) | {} |",
            verdict(r <= 1.3)
        );
        let (small, large) = (results.sizes.first(), results.sizes.last());
        if let (Some(small), Some(large)) = (small, large)
            && small.images != large.images
        {
            let per = |s: &SizeResult| {
                median_of(s, "cascade-janitor prune").unwrap_or(f64::NAN) / s.images as f64
            };
            let r = per(large) / per(small);
            let _ = writeln!(
                out,
                "| per-image sweep time at {} at most 1.25 × that at {} | {r:.2} × ({:.0} µs / {:.0} µs) | {} |",
                large.images,
                small.images,
                per(large) * 1e6,
                per(small) * 1e6,
                verdict(r <= 1.25)
            );
        }
        if let Some(rss) = size
            .contenders
            .iter()
            .find(|c| c.name == "cascade-janitor prune")
            .and_then(|c| c.peak_rss_kib_max)
        {
            let mb = rss as f64 / 1024.0;
            let _ = writeln!(
                out,
                "| prune peak RSS < 50 MB | {mb:.1} MB (max of runs) | {} |",
                verdict(mb < 50.0)
            );
        }
        if let Some(idle) = &results.idle {
            let mb = idle.rss_kib as f64 / 1024.0;
            let _ = writeln!(
                out,
                "| run daemon idle < 15 MB, no CPU | {mb:.1} MB, {} CPU ticks in {:.0} s after sweeping {} | {} |",
                idle.cpu_ticks_over_window,
                idle.window_seconds,
                idle.images_swept_first,
                verdict(mb < 15.0 && idle.cpu_ticks_over_window == 0)
            );
        }
    }
    out
}

/// Time against image count, one line per contender (medians, with a
/// min-max bar), as a self-contained SVG.
fn chart(results: &Results) -> String {
    use std::fmt::Write;
    const W: f64 = 760.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 270.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 50.0;
    const COLORS: &[&str] = &[
        "#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#b07aa1", "#9c755f", "#edc948",
    ];
    let max_x = results.sizes.iter().map(|s| s.images).max().unwrap_or(1) as f64;
    let max_y = results
        .sizes
        .iter()
        .flat_map(|s| s.contenders.iter().map(|c| c.summary.max))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let y_step = nice_step(max_y / 5.0);
    let y_top = (max_y / y_step).ceil() * y_step;
    let px = |x: f64| LEFT + x / max_x * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_top * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14">Time per run against labelled dangling images (+{} decoys), median and min-max</text>"#,
        results.decoys
    );
    let mut y = 0.0;
    while y <= y_top + y_step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{y} s</text>"##,
            W - RIGHT,
            py(y),
            py(y),
            LEFT - 6.0,
            py(y) + 4.0
        );
        y += y_step;
    }
    for s in &results.sizes {
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 5.0,
            H - BOTTOM + 18.0,
            s.images,
            x = px(s.images as f64)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">labelled dangling images</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    let names: Vec<&str> = results
        .sizes
        .first()
        .map(|s| s.contenders.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, &Summary)> = results
            .sizes
            .iter()
            .filter_map(|s| {
                s.contenders
                    .iter()
                    .find(|c| c.name == *name)
                    .map(|c| (s.images as f64, &c.summary))
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, s)| format!("{:.1},{:.1}", px(*x), py(s.median)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (x, s) in &points {
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}"/><circle cx="{x:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                py(s.min),
                py(s.max),
                py(s.median),
                x = px(*x)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT + 15.0,
            W - RIGHT + 35.0,
            W - RIGHT + 40.0,
            ly + 4.0,
            xml_escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(secs: &[f64]) -> Summary {
        let d: Vec<Duration> = secs.iter().map(|s| Duration::from_secs_f64(*s)).collect();
        Summary::of(&d).expect("samples")
    }

    fn contender(name: &str, secs: f64, engine_cpu: EngineCpu) -> ContenderResult {
        ContenderResult {
            name: name.into(),
            command: String::new(),
            summary: summary(&[secs]),
            wall_per_image_us: 0.0,
            peak_rss_kib_max: None,
            samples: vec![Sample {
                seconds: secs,
                engine_cpu_seconds: engine_cpu.total_seconds(),
                engine_cpu: Some(engine_cpu),
                client_cpu_seconds: None,
                peak_rss_kib: None,
            }],
        }
    }

    #[test]
    fn the_compare_table_names_the_engine_and_splits_engine_cpu() {
        let cpu = EngineCpu {
            dockerd: 150,
            containerd: 50,
            other: 0,
        };
        let results = Results {
            engine: "28.5.2".into(),
            engine_name: "28.5-containerd".into(),
            store: "containerd".into(),
            date: "2026-11-29T11:20:00Z".into(),
            storage_driver: "overlayfs".into(),
            cpus: 2,
            runs: 1,
            other_runs: 1,
            decoys: 100,
            sizes: vec![SizeResult {
                images: 2000,
                decoys: 100,
                seed_seconds: Some(summary(&[30.0])),
                contenders: vec![contender("docker image prune", 4.0, cpu)],
            }],
            idle: None,
        };
        let table = table(&results, 2000);
        assert!(
            table.starts_with("#### Engine 28.5-containerd: Docker 28.5.2, containerd store (overlayfs), N = 2000 labelled dangling images + 100 decoys, measured 2026-11-29\n"),
            "{table}"
        );
        // 4 s / 2000 images = 2000 µs wall; 2 s engine CPU = 1000 µs, of
        // which containerd 0.5 s = 250 µs.
        assert!(
            table.contains("| docker image prune | 2000 µs | 1000 µs | 250 µs | in-process |"),
            "{table}"
        );
        assert!(
            table.contains("| seed (docker load), for reference | 30.000 |"),
            "{table}"
        );
    }

    #[test]
    fn the_gentle_table_flags_a_p99_from_few_commits() {
        let phase = |name: &str, latencies: &[u64], wall: f64, cpu: u64| PhaseResult {
            name: name.into(),
            latency: Latency::of(
                &latencies
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect::<Vec<_>>(),
            ),
            wall: summary(&[wall]),
            engine_cpu_per_second: cpu as f64 / wall,
            runs: Vec::new(),
            latencies_ms: Vec::new(),
        };
        let idle: Vec<u64> = (1..=200).collect();
        let results = GentleResults {
            engine: "20.10.24".into(),
            engine_name: "20.10".into(),
            store: "classic".into(),
            storage_driver: "vfs".into(),
            date: "2026-11-29T11:20:00Z".into(),
            images: 500,
            decoys: 1000,
            rounds: 1,
            period_ms: 50,
            cpus: 2,
            phases: vec![
                phase("idle", &idle, 10.0, 1),
                phase("docker image prune", &[40, 10, 30, 20], 0.5, 1),
                phase("cascade-janitor prune --concurrency 4", &[], 0.25, 1),
            ],
        };
        let table = gentle_table(&results);
        assert!(table.starts_with("#### Engine 20.10: Docker 20.10.24, classic store (vfs), N = 500 labelled dangling images + 1000 decoys, measured 2026-11-29\n"), "{table}");
        assert!(
            table.contains(
                "| idle | 200 | 100.0 ms | 198.0 ms | 200.0 ms | 10.00 s (10.00-10.00) | 0.10 s |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| docker image prune | 4 | 20.0 ms | 40.0 ms (< 200 commits) | 40.0 ms | 0.50 s (0.50-0.50) | 2.00 s |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| cascade-janitor prune --concurrency 4 | 0 | | | | 0.25 s (0.25-0.25) | 4.00 s |"
            ),
            "{table}"
        );
    }
}
