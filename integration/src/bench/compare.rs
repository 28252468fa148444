//! `cascade-bench compare` (`cargo xtask bench-compare`): every
//! [`Contender`] side by side on one nested engine, at several sizes, in
//! rounds that rotate their order, each meeting the identical seed.
//! Writes [`Results`] as JSON, the SVG chart and the Markdown tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::contender::{self, Contender, check_count, checked_output, janitor_prune_args};
use super::procfs::{self, EngineCpu};
use super::results::{ContenderResult, IdleResult, Results, Sample, SizeResult, write_json};
use super::seed::{SeedSet, count_ours};
use super::stats::Summary;
use super::{cpus, interruptible, raw, render, store_name, utc_now};
use crate::NestedEngine;

/// Flags of `cascade-bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The engine of the matrix: 20.10, 26.1-classic, 26.1-containerd,
    /// 28.5-classic, 28.5-containerd
    #[arg(long, env = "CASCADE_TEST_ENGINE", default_value = "20.10")]
    pub engine: String,
    /// The size the ratios and targets are read at
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Unlabelled dangling images loaded beside every size
    #[arg(long, default_value_t = 1_000)]
    pub decoys: usize,
    /// Image counts to measure (comma-separated); `--images` is added
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Rounds at `--images`; each round runs every contender once
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Rounds at the other sizes (they feed the chart and the per-image
    /// trend; fewer keeps the whole run short)
    #[arg(long, default_value_t = 1)]
    pub other_runs: usize,
    /// Also time `cascade-janitor prune --concurrency V` for these V,
    /// passed verbatim (`1,4,8,auto`)
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<String>,
    /// The release `cascade-janitor` binary
    #[arg(long)]
    pub janitor: PathBuf,
    /// Another `cascade-janitor` build (e.g. before a change), timed as
    /// `baseline prune` beside the others
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Where the JSON results go
    #[arg(long)]
    pub json: PathBuf,
    /// Where the chart goes
    #[arg(long)]
    pub svg: PathBuf,
    /// Where the Markdown tables go (they are also printed)
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Skip the idle-daemon measurement
    #[arg(long)]
    pub no_idle: bool,
}

/// `cascade-bench compare`.
pub async fn run(args: CompareArgs) -> Result<()> {
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
    // Checked before an engine starts: a typo should not cost a start.
    crate::engine::MatrixEngine::named(&args.engine)?;
    let contenders = Contender::lineup(&args.concurrency, args.baseline.is_some());

    eprintln!("cascade-bench: starting nested engine {}", args.engine);
    let engine = NestedEngine::start_named(&args.engine).await?;
    let info = engine.docker.info().await?;
    let mut results = Results {
        engine: info.server_version.unwrap_or_default(),
        engine_name: engine.engine.name().to_string(),
        store: store_name(&engine).to_string(),
        date: String::new(),
        storage_driver: info.driver.unwrap_or_default(),
        cpus: cpus(),
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

    write_json(&args.json, &results)?;
    if let Some(dir) = args.svg.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.svg, render::chart(&results))?;
    let tables = render::compare_tables(&results, args.images);
    println!("{tables}");
    if let Some(markdown) = &args.markdown {
        std::fs::write(markdown, &tables)?;
        println!("wrote {}", markdown.display());
    }
    println!("wrote {} and {}", args.json.display(), args.svg.display());
    finished
}

/// `cascade-bench chart`: the SVG again, from the JSON `compare` wrote.
pub fn redraw_chart(json: &Path, svg: &Path) -> Result<()> {
    let results = Results::read(json)?;
    std::fs::write(svg, render::chart(&results))?;
    Ok(())
}

/// Every contender at the size of `set`, in rounds that rotate their order.
async fn measure_size(
    engine: &NestedEngine,
    root: u32,
    set: &SeedSet,
    contenders: &[Contender],
    args: &CompareArgs,
) -> Result<SizeResult> {
    let family = engine.engine.family;
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
                contender.name(family),
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
            let summary = Summary::of(&durations).context("a contender without a run")?;
            Ok(ContenderResult {
                name: c.name(family),
                contender: c.clone(),
                command: c.command(family),
                wall_per_image_us: summary.median / set.images.max(1) as f64 * 1e6,
                summary,
                peak_rss_kib_max: samples.iter().filter_map(|s| s.peak_rss_kib).max(),
                samples,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SizeResult {
        images: set.images,
        decoys: set.decoys,
        seed_seconds: Summary::of(&seeds),
        contenders,
    })
}

/// One run of `contender` against the restored `set`: its wall time, the
/// engine's CPU meanwhile, and for a process its CPU and peak memory.
/// Checks it handled exactly the set, and that a removing one left none.
async fn run_contender(
    engine: &NestedEngine,
    root: u32,
    set: &SeedSet,
    contender: &Contender,
    janitor: &Path,
) -> Result<Sample> {
    let family = engine.engine.family;
    let name = contender.name(family);
    let host = engine.host();
    let expect = set.images;
    // The engine's own prune is counted by listing before and after,
    // outside the measured window (`contender::engine_prune`).
    let ours_before = match contender {
        Contender::EnginePrune => count_ours(&engine.docker).await?,
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
            check_count(&name, removed, expect)?;
            (seconds, None)
        }
        Contender::EnginePrune => {
            contender::engine_prune(engine, family).await?;
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
            let out = checked_output(&mut command, &name).await?;
            let seconds = started.elapsed().as_secs_f64();
            let field = if *contender == Contender::JanitorDryRun {
                "would_remove"
            } else {
                "removed"
            };
            check_count(&name, contender::reported(&out.stdout, field)?, expect)?;
            let (rss, cpu) = time_usage(&std::fs::read_to_string(rss_file.path())?);
            client_cpu_seconds = cpu;
            (seconds, rss)
        }
    };
    let engine_cpu = EngineCpu::read(root)?.since(engine_before);
    if contender.removes() {
        let left = count_ours(&engine.docker).await?;
        if *contender == Contender::EnginePrune {
            check_count(&name, ours_before - left.min(ours_before), expect)?;
        }
        if left != 0 {
            bail!("{name} left {left} labelled dangling images");
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

/// Peak resident KiB and user + system seconds from what `/usr/bin/time -f
/// "%M %U %S"` wrote (its line comes last).
fn time_usage(written: &str) -> (Option<u64>, Option<f64>) {
    let fields: Vec<&str> = written
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let rss = fields.first().and_then(|v| v.parse().ok());
    let cpu = fields
        .get(1..3)
        .and_then(|f| Some(f[0].parse::<f64>().ok()? + f[1].parse::<f64>().ok()?));
    (rss, cpu)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_line_of_usr_bin_time_is_read_last() {
        assert_eq!(
            time_usage("Command exited with non-zero status 1\n12345 0.50 0.25\n"),
            (Some(12345), Some(0.75))
        );
        assert_eq!(time_usage(""), (None, None));
    }
}
