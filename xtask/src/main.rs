//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `dind-image --engine 20.10|26.1|28.5|podman-4.3|podman-5.4|podman-5.8`:
//!   builds the nested-engine image of one engine (no registry: see
//!   `dind.rs`).
//! - `safety [--engine E]`: runs the real-engine suite in `integration/` on
//!   one engine of the matrix, or on all eight (five Docker, three Podman).
//! - `ci`: everything CI checks, in order: fmt, clippy, unit tests, the
//!   Prometheus alert rules (promtool), the image, the Debian package
//!   (lintian), safety on every engine, a 2-minute soak with every fault
//!   on 20.10, and a smoke pass of the benchmarks.
//! - `deb`: builds the Debian package and checks it with lintian (see
//!   `deb.rs`).
//! - `socket-proxy [--check]`: writes the socket proxy's allow-list
//!   (`deploy/socket-proxy/haproxy.cfg`) and the README's endpoint list
//!   from cascade-engine's `ENDPOINTS`, or checks they are current.
//! - `demo`: shows a newcomer what the janitor removes and keeps, on a
//!   small zoo of images in a nested engine.
//! - `seed`: loads thousands of fixture images into a nested engine.
//! - `bench-compare --engine E`: times the janitor against `docker image
//!   prune`, the one-at-a-time loop and a raw list request on one engine of
//!   the matrix (see `docs/BENCHMARKS.md`).
//! - `bench-gentle --engine E`: commit latency on that engine while each
//!   of them sweeps.
//! - `soak --engine E --minutes M [--rate R] [--fault F ...]`: the daemon
//!   under a router's churn and mid-sweep faults on one nested engine, with
//!   an auditor of everything that must survive (`integration::soak`;
//!   docs/RELIABILITY.md).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};

mod deb;
mod dind;
mod image;
mod socket_proxy;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Automation for the cascade-janitor workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build one nested-engine image (cascade-janitor-dind:<image>): 20.10 from the host's dockerd, 26.1 from Debian trixie, 28.5 from sid; podman-4.3, podman-5.4 and podman-5.8 from bookworm, trixie and sid
    DindImage {
        /// The image, or an engine name such as 28.5-containerd (builds that engine's image)
        #[arg(long, default_value = "20.10", value_parser = PossibleValuesParser::new(dind::image_choices()))]
        engine: String,
        /// Rebuild even when the image already exists
        #[arg(long)]
        force: bool,
    },
    /// Run the real-engine suite on one engine, or on all eight (builds missing nested-engine images first)
    Safety {
        /// One engine; default: the eight of the matrix, the five Docker ones then the three Podman ones. Also 28.5-overlay2 (the classic store on overlay2), outside the default eight
        #[arg(long, value_parser = PossibleValuesParser::new(dind::engine_choices()))]
        engine: Option<String>,
    },
    /// Run every check CI runs: fmt, clippy -D warnings, unit tests, alert rules (promtool), the image, the Debian package (lintian), safety suite on every engine, a 2-minute soak with every fault on 20.10, bench smoke pass
    Ci,
    /// Build the static binary and the janitor image (cascade-janitor:local); see docs/deploy.md
    Image(image::ImageArgs),
    /// Load N labelled dangling images and M unlabelled ones into a nested engine (never the host's)
    Seed {
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        #[arg(long, default_value_t = 1_000)]
        decoys: usize,
        /// unix:// socket of a nested engine; without it a nested engine is
        /// started, seeded, and kept until Ctrl-C
        #[arg(long)]
        docker_host: Option<String>,
    },
    /// Build the Debian package target/deb/cascade-janitor_<version>_<arch>.deb (static binary, units, conffile, man pages, completions, the docker-janitor plugin link), then check it with lintian
    Deb {
        /// Skip the lintian check
        #[arg(long)]
        no_lintian: bool,
    },
    /// Write deploy/socket-proxy/haproxy.cfg and README.md's endpoint list from cascade-engine's ENDPOINTS
    SocketProxy {
        /// Only check that the committed files are what the table gives
        #[arg(long)]
        check: bool,
    },
    /// Show a newcomer what the janitor removes and keeps: a small zoo in a nested engine, then doctor, prune --dry-run, prune
    Demo,
    /// Time the janitor against docker image prune, the one-at-a-time loop and a raw list, on one nested engine
    BenchCompare {
        /// An engine of `safety --engine`; default: CASCADE_TEST_ENGINE, else 20.10
        #[arg(long)]
        engine: Option<String>,
        /// The size the ratios and targets are read at
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        /// Unlabelled dangling images loaded beside every size
        #[arg(long, default_value_t = 1_000)]
        decoys: usize,
        /// Image counts to chart, comma-separated (e.g. 1000,5000,10000,20000)
        #[arg(long)]
        sizes: Option<String>,
        /// Rounds at --images (each runs every contender once)
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Rounds at the other sizes
        #[arg(long, default_value_t = 1)]
        other_runs: usize,
        /// Also time `prune --concurrency V` for these V, comma-separated, passed verbatim (e.g. 1,4,8,auto)
        #[arg(long)]
        concurrency: Option<String>,
        /// Skip the idle-daemon measurement
        #[arg(long)]
        no_idle: bool,
        /// Another cascade-janitor binary (e.g. built before a change), timed beside the others
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Commit latency on one nested engine while docker image prune and the janitor sweep (a POST /commit every 50 ms)
    BenchGentle {
        /// An engine of `safety --engine`; default: CASCADE_TEST_ENGINE, else 20.10
        #[arg(long)]
        engine: Option<String>,
        /// Labelled dangling images each removing phase sweeps
        #[arg(long, default_value_t = 2_000)]
        images: usize,
        /// Unlabelled dangling images loaded beside them
        #[arg(long, default_value_t = 1_000)]
        decoys: usize,
        /// One janitor phase per value, comma-separated, passed verbatim to --concurrency (e.g. 1,4,8,auto)
        #[arg(long, default_value = "4")]
        concurrency: String,
        /// Rounds; commits are pooled over them
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Commits the idle phase waits for in each round
        #[arg(long, default_value_t = 200)]
        idle_samples: usize,
    },
    /// The daemon under churn (and faults) on one nested engine, with an auditor; one line of figures, exit 1 on any loss (docs/RELIABILITY.md)
    Soak {
        /// An engine of `safety --engine`
        #[arg(long, default_value = "20.10", value_parser = PossibleValuesParser::new(dind::engine_choices()))]
        engine: String,
        /// How long the churn runs
        #[arg(long, default_value_t = 2.0)]
        minutes: f64,
        /// Churn operations per second
        #[arg(long, default_value_t = 3.0)]
        rate: f64,
        /// A fault injected mid-sweep, once each, spread evenly over the run; repeatable
        #[arg(long, value_parser = PossibleValuesParser::new(SOAK_FAULTS))]
        fault: Vec<String>,
        /// The churn's random seed (default: the clock)
        #[arg(long)]
        seed: Option<u64>,
    },
}

/// `soak --fault` values (`integration::soak::faults::Fault`).
const SOAK_FAULTS: [&str; 3] = ["engine-kill", "engine-stop", "janitor-kill"];

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::DindImage { engine, force } => dind::dind_image(dind::version_of(&engine)?, force),
        Task::Safety { engine } => {
            let engines = match engine {
                Some(engine) => {
                    let name = dind::engine_named(&engine).with_context(|| {
                        format!(
                            "unknown engine `{engine}`; use one of {}",
                            dind::engine_names()
                        )
                    })?;
                    vec![name]
                }
                None => dind::ENGINES.to_vec(),
            };
            safety(&engines)
        }
        Task::Ci => ci(),
        Task::Image(args) => image::image(&args, &workspace_root()),
        Task::Deb { no_lintian } => {
            let package = deb::deb(&workspace_root())?;
            if no_lintian {
                Ok(())
            } else {
                deb::lintian(&package)
            }
        }
        Task::SocketProxy { check } => socket_proxy::socket_proxy(&workspace_root(), check),
        Task::Demo => demo(),
        Task::Seed {
            images,
            decoys,
            docker_host,
        } => {
            let mut args = vec![
                "seed".to_string(),
                format!("--images={images}"),
                format!("--decoys={decoys}"),
            ];
            if let Some(host) = docker_host {
                args.push(format!("--docker-host={host}"));
            } else {
                dind::dind_image("20.10", false)?;
            }
            bench_tool(&args)
        }
        Task::BenchCompare {
            engine,
            images,
            decoys,
            sizes,
            runs,
            other_runs,
            concurrency,
            no_idle,
            baseline,
        } => {
            // Checked first: a typo should not cost a release build.
            let baseline = baseline
                .map(|b| {
                    std::fs::canonicalize(&b)
                        .with_context(|| format!("--baseline {}: no such file", b.display()))
                })
                .transpose()?;
            let (engine, root, out) = prepare_bench(engine.as_deref())?;
            let mut args = vec![
                "compare".to_string(),
                format!("--engine={engine}"),
                format!("--images={images}"),
                format!("--decoys={decoys}"),
                format!("--runs={runs}"),
                format!("--other-runs={other_runs}"),
                janitor_flag(&root),
                output(&out, "json", "compare", engine, "json"),
                output(&out, "svg", "compare", engine, "svg"),
                output(&out, "markdown", "compare", engine, "md"),
            ];
            if let Some(sizes) = sizes {
                args.push(format!("--sizes={sizes}"));
            }
            if let Some(levels) = concurrency {
                args.push(format!("--concurrency={levels}"));
            }
            if no_idle {
                args.push("--no-idle".to_string());
            }
            if let Some(baseline) = baseline {
                args.push(format!("--baseline={}", baseline.display()));
            }
            bench_tool(&args)
        }
        Task::Soak {
            engine,
            minutes,
            rate,
            fault,
            seed,
        } => soak(&engine, minutes, rate, &fault, seed),
        Task::BenchGentle {
            engine,
            images,
            decoys,
            concurrency,
            rounds,
            idle_samples,
        } => {
            let (engine, root, out) = prepare_bench(engine.as_deref())?;
            bench_tool(&[
                "gentle".to_string(),
                format!("--engine={engine}"),
                format!("--images={images}"),
                format!("--decoys={decoys}"),
                format!("--concurrency={concurrency}"),
                format!("--rounds={rounds}"),
                format!("--idle-samples={idle_samples}"),
                janitor_flag(&root),
                output(&out, "json", "gentle", engine, "json"),
                output(&out, "markdown", "gentle", engine, "md"),
            ])
        }
    }
}

/// The engine a benchmark runs on: `--engine`, else `CASCADE_TEST_ENGINE`,
/// else 20.10, as its name in the matrix (`20.10-classic` is `20.10`).
fn bench_engine(flag: Option<&str>, env: Option<&str>) -> Result<&'static str> {
    let wanted = flag.or(env).unwrap_or("20.10");
    dind::engine_named(wanted).with_context(|| {
        format!(
            "unknown engine `{wanted}` (from {}); use one of {}",
            if flag.is_some() {
                "--engine"
            } else {
                "CASCADE_TEST_ENGINE"
            },
            dind::engine_names()
        )
    })
}

/// The janitor the benchmarks time: a release build, as operators run it.
fn release_janitor() -> Result<()> {
    step(
        "build cascade-janitor (release)",
        cargo(&["build", "--locked", "--release", "-p", "cascade-janitor"]),
    )
}

/// `cascade-demo` (integration/src/bin) with the debug janitor: a newcomer
/// should not wait for a release build.
fn demo() -> Result<()> {
    dind::dind_image("20.10", false)?;
    step(
        "build cascade-janitor",
        cargo(&["build", "--locked", "-p", "cascade-janitor"]),
    )?;
    let janitor = workspace_root().join("target/debug/cascade-janitor");
    let mut command = integration_bin("cascade-demo", false);
    command.arg(format!("--janitor={}", janitor.display()));
    step("cascade-demo", command)
}

/// Runs `cascade-bench` (integration/src/bin), built with `--release` so
/// the in-process contenders are measured optimised.
/// What both benchmarks need first: the engine (`--engine`, else
/// `CASCADE_TEST_ENGINE`), its nested-engine image, and the release janitor;
/// returns the engine, the workspace root and `target/bench`.
fn prepare_bench(engine: Option<&str>) -> Result<(&'static str, PathBuf, PathBuf)> {
    let engine = bench_engine(engine, std::env::var("CASCADE_TEST_ENGINE").ok().as_deref())?;
    dind::dind_image(dind::version_of(engine)?, false)?;
    release_janitor()?;
    let root = workspace_root();
    let out = root.join("target/bench");
    Ok((engine, root, out))
}

/// `--<flag>=target/bench/<kind>-<engine>.<ext>`: where a benchmark writes.
fn output(out: &Path, flag: &str, kind: &str, engine: &str, ext: &str) -> String {
    format!(
        "--{flag}={}",
        out.join(format!("{kind}-{engine}.{ext}")).display()
    )
}

/// `--janitor=` the release binary `release_janitor` built.
fn janitor_flag(root: &Path) -> String {
    format!(
        "--janitor={}",
        root.join("target/release/cascade-janitor").display()
    )
}

/// `cascade-soak` (integration/src/bin) with the debug janitor, the one
/// the safety suite drives; figures go to `target/soak/soak-<engine>.json`.
fn soak(engine: &str, minutes: f64, rate: f64, faults: &[String], seed: Option<u64>) -> Result<()> {
    let engine = dind::engine_named(engine).with_context(|| {
        format!(
            "unknown engine `{engine}`; use one of {}",
            dind::engine_names()
        )
    })?;
    dind::dind_image(dind::version_of(engine)?, false)?;
    step(
        "build cascade-janitor",
        cargo(&["build", "--locked", "-p", "cascade-janitor"]),
    )?;
    let root = workspace_root();
    let out = root.join("target/soak");
    std::fs::create_dir_all(&out)?;
    let mut command = integration_bin("cascade-soak", false);
    command.args([
        format!("--engine={engine}"),
        format!("--minutes={minutes}"),
        format!("--rate={rate}"),
        format!(
            "--janitor={}",
            root.join("target/debug/cascade-janitor").display()
        ),
        format!(
            "--json={}",
            out.join(format!("soak-{engine}.json")).display()
        ),
        format!(
            "--daemon-log={}",
            out.join(format!("daemon-{engine}.log")).display()
        ),
    ]);
    command.args(faults.iter().map(|f| format!("--fault={f}")));
    if let Some(seed) = seed {
        command.arg(format!("--seed={seed}"));
    }
    step(&format!("soak on {engine}"), command)
}

/// `cargo run` of one of `integration`'s binaries (`src/bin`), arguments
/// to follow; `release` for the benchmarks, measured optimised.
fn integration_bin(bin: &str, release: bool) -> Command {
    let mut args = vec!["run", "--quiet", "--locked"];
    if release {
        args.push("--release");
    }
    args.extend(["-p", "integration", "--bin", bin, "--"]);
    cargo(&args)
}

fn bench_tool(args: &[String]) -> Result<()> {
    let mut command = integration_bin("cascade-bench", true);
    command.args(args);
    step("cascade-bench", command)
}

fn ci() -> Result<()> {
    step(
        "cargo fmt --check",
        cargo(&["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "unit tests",
        cargo(&[
            "nextest",
            "run",
            "--locked",
            "--workspace",
            "--exclude",
            "integration",
            "--no-fail-fast",
        ]),
    )?;
    alert_rules()?;
    // The hardened-image test runs for real in CI, not skipped.
    image::image(&image::ImageArgs::default(), &workspace_root())?;
    // So is the package, checked by lintian before the suite installs it.
    deb::lintian(&deb::deb(&workspace_root())?)?;
    safety(dind::ENGINES)?;
    // Two minutes of churn with each fault once, on the engine the host
    // runs: losses, growth or a death outside a fault fail CI.
    soak("20.10", 2.0, 3.0, &SOAK_FAULTS.map(String::from), None)?;
    bench_smoke()
}

/// `promtool check rules` and `promtool test rules` on deploy/prometheus:
/// the alerts parse and each fires, and stays quiet, when its test says.
fn alert_rules() -> Result<()> {
    let dir = workspace_root().join("deploy/prometheus");
    for (name, args) in [
        ("promtool check rules", ["check", "rules", "alerts.yaml"]),
        ("promtool test rules", ["test", "rules", "alerts.test.yaml"]),
    ] {
        let mut promtool = Command::new("promtool");
        promtool.args(args).current_dir(&dir);
        step(name, promtool).map_err(|e| {
            e.context("promtool ships in Debian's `prometheus` package (.ci/run installs it)")
        })?;
    }
    Ok(())
}

/// The outcome of one engine's suite.
struct EngineRun {
    engine: &'static str,
    passed: usize,
    failed: usize,
    gaps: Vec<String>,
    wall: Duration,
    ok: bool,
}

/// The real-engine suite, once per engine, one engine after the other (a
/// nested engine is itself busy: two suites at once on 2 cores only trade
/// one wait for another).
fn safety(engines: &[&'static str]) -> Result<()> {
    let mut versions: Vec<&str> = Vec::new();
    for engine in engines {
        let version = dind::version_of(engine)?;
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    for version in &versions {
        dind::dind_image(version, false)?;
    }
    // integration/tests/image.rs runs the janitor's own image: build it
    // when missing (`ci` and `cargo xtask image` rebuild it from the tree).
    if !image_exists(image::JANITOR_IMAGE)? {
        image::image(&image::ImageArgs::default(), &workspace_root())?;
    }
    // integration/tests/package.rs installs the Debian package: build it
    // when missing (`ci` and `cargo xtask deb` rebuild it from the tree).
    if !deb::package_path(&workspace_root())?.exists() {
        deb::deb(&workspace_root())?;
    }
    // integration/tests/compose.rs brings deploy/compose.yaml up with
    // Debian's Compose v2.
    dind::compose_plugin()?;
    // The suite drives the binary end to end; build it first.
    step(
        "build cascade-janitor",
        cargo(&["build", "--locked", "-p", "cascade-janitor"]),
    )?;
    // integration/tests/embed.rs runs cascade-embed's example as written.
    step(
        "build cascade-embed's examples/embed.rs",
        cargo(&[
            "build",
            "--locked",
            "-p",
            "cascade-embed",
            "--example",
            "embed",
        ]),
    )?;
    step(
        "build the suite",
        cargo(&[
            "nextest",
            "run",
            "--locked",
            "-p",
            "integration",
            "--no-run",
        ]),
    )?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for (i, engine) in engines.iter().enumerate() {
        runs.push(engine_suite(engine, i == 0)?);
    }
    let total = started.elapsed();
    eprintln!("\nxtask: engine matrix");
    eprintln!(
        "  {:<16} {:>6} {:>6} {:>10} {:>8}",
        "engine", "passed", "failed", "known gaps", "wall"
    );
    for run in &runs {
        eprintln!(
            "  {:<16} {:>6} {:>6} {:>10} {:>7.0}s",
            run.engine,
            run.passed,
            run.failed,
            run.gaps.len(),
            run.wall.as_secs_f64()
        );
    }
    eprintln!("  total wall time {:.0}s", total.as_secs_f64());
    for run in &runs {
        for gap in &run.gaps {
            eprintln!("xtask: engine {}: KNOWN GAP {gap}", run.engine);
        }
    }
    let broken: Vec<String> = runs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("engine {}: {} failed", r.engine, r.failed))
        .collect();
    for line in &broken {
        eprintln!("xtask: {line}");
    }
    if !broken.is_empty() {
        bail!("safety suite failed on {}", broken.join("; "));
    }
    Ok(())
}

/// Test binaries of `integration/` that run with the first engine of a
/// `safety` run only, not once per engine:
/// - those that check the host's own tooling with the deploy files (dpkg
///   and the package, Compose, a Prometheus server, systemd's analyzers),
///   using a nested engine, if any, only as something to point at;
/// - `soak_faults`: minutes per engine (up to 7 on Podman 4.3), and its
///   recovery bound is not met on Podman 4.3 when the machine is loaded
///   (docs/RELIABILITY.md). `safety --engine E` runs it on E.
const HOST_TESTS: [&str; 6] = [
    "compose",
    "kubernetes",
    "package",
    "prometheus",
    "soak_faults",
    "systemd",
];

/// One engine's suite: nextest's output, every line prefixed with the
/// engine, and its summary line read back for the counts. `first`: the
/// first engine of the run, which also runs [`HOST_TESTS`].
fn engine_suite(engine: &'static str, first: bool) -> Result<EngineRun> {
    let version = dind::version_of(engine)?;
    let tag = dind::image_tag(version);
    eprintln!(
        "\nxtask: ===== engine {engine}: {tag} ({}) =====",
        dind::describe(version)?
    );
    let gaps_file = workspace_root()
        .join("target/matrix")
        .join(format!("{engine}.gaps"));
    std::fs::create_dir_all(gaps_file.parent().context("target/matrix")?)?;
    std::fs::write(&gaps_file, "")?;
    let mut suite = cargo(&[
        "nextest",
        "run",
        "--locked",
        "-p",
        "integration",
        "--no-fail-fast",
        "--test-threads",
        &test_threads(),
    ]);
    if !first {
        let binaries: Vec<String> = HOST_TESTS.iter().map(|b| format!("binary({b})")).collect();
        suite.args(["-E", &format!("not ({})", binaries.join(" | "))]);
    }
    suite
        .env("CASCADE_TEST_ENGINE", engine)
        .env("CASCADE_KNOWN_GAPS_FILE", &gaps_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("xtask: safety suite on {engine}: {suite:?}");
    let started = Instant::now();
    let mut child = suite.spawn().context("cannot run cargo nextest")?;
    let stdout = child.stdout.take().context("nextest stdout")?;
    let stderr = child.stderr.take().context("nextest stderr")?;
    let prefix = |stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut summary = None;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[{engine}] {line}");
                if line.trim_start().starts_with("Summary [") {
                    summary = Some(line);
                }
            }
            summary
        })
    };
    let out = prefix(Box::new(stdout));
    let err = prefix(Box::new(stderr));
    let status = child.wait()?;
    let summary = [out, err]
        .into_iter()
        .filter_map(|t| t.join().ok().flatten())
        .next()
        .unwrap_or_default();
    let wall = started.elapsed();
    let count = |word: &str| summary_count(&summary, word);
    let gaps: Vec<String> = std::fs::read_to_string(&gaps_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let failed = count("failed") + count("timed");
    let ok = status.success();
    let run = EngineRun {
        engine,
        passed: count("passed"),
        // A run that failed without a summary (a build error) still counts.
        failed: if ok { failed } else { failed.max(1) },
        gaps,
        wall,
        ok,
    };
    eprintln!(
        "xtask: engine {engine}: {} passed, {} failed, {} known gaps in {:.0}s",
        run.passed,
        run.failed,
        run.gaps.len(),
        wall.as_secs_f64()
    );
    Ok(run)
}

/// The number before `word` in nextest's summary line, e.g. "Summary [
/// 81.2s] 41 tests run: 38 passed, 2 failed, 1 timed out, 0 skipped".
fn summary_count(summary: &str, word: &str) -> usize {
    let words: Vec<&str> = summary.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches(',') == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

/// nextest's parallelism for one engine's suite: `CASCADE_TEST_THREADS`,
/// else 4. Each test mostly waits on its nested engine (a start, a load, a
/// debounce), so on 2 cores 4 at once cut each engine's suite by about 40%
/// against 2 (measured: 26.1-containerd 69 s -> 43 s, 28.5-classic
/// 47 s -> 25 s; README has the matrix).
fn test_threads() -> String {
    std::env::var("CASCADE_TEST_THREADS").unwrap_or_else(|_| "4".into())
}

fn bench_smoke() -> Result<()> {
    // Each benchmark once, in the test profile (no release build): proves
    // they still run; timings are for `cargo bench` and `bench-compare`.
    let mut smoke = cargo(&["test", "--locked", "-p", "benches", "--benches"]);
    smoke.env("CASCADE_BENCH_SIZES", "1000");
    step("benchmark smoke pass", smoke)
}

fn step(name: &str, mut command: Command) -> Result<()> {
    eprintln!("xtask: {name}: {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(args).current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if set_by_cargo_for_xtask(&name) {
            c.env_remove(&*name);
        }
    }
    c
}

/// The variables `cargo xtask` (a `cargo run`) sets for xtask's own
/// package, which the cargo it runs must not see: a build script that
/// reruns when one changes (ring's, on `CARGO_MANIFEST_DIR`) would make a
/// build from here and one from a shell (or from
/// integration/tests/embed.rs, which leaves the same ones out) rebuild
/// each other, once per engine of the matrix.
fn set_by_cargo_for_xtask(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn image_exists(image: &str) -> Result<bool> {
    let status = Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run `docker`; is the Docker CLI installed?")?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextest_summary_counts() {
        let line =
            "     Summary [  81.234s] 41 tests run: 38 passed, 2 failed, 1 timed out, 0 skipped";
        assert_eq!(summary_count(line, "passed"), 38);
        assert_eq!(summary_count(line, "failed"), 2);
        assert_eq!(summary_count(line, "timed"), 1);
        let clean = "     Summary [  38.346s] 26 tests run: 26 passed, 0 skipped";
        assert_eq!(summary_count(clean, "passed"), 26);
        assert_eq!(summary_count(clean, "failed"), 0);
    }

    #[test]
    fn the_bench_engine_comes_from_the_flag_then_the_environment() {
        assert_eq!(
            bench_engine(Some("28.5-containerd"), Some("26.1-classic")).expect("known"),
            "28.5-containerd"
        );
        assert_eq!(
            bench_engine(None, Some("26.1-classic")).expect("known"),
            "26.1-classic"
        );
        assert_eq!(bench_engine(None, None).expect("default"), "20.10");
        assert_eq!(
            bench_engine(Some("20.10-classic"), None).expect("alias"),
            "20.10"
        );
        let error = bench_engine(None, Some("28.5")).expect_err("a version is not an engine");
        let error = error.to_string();
        assert!(error.contains("CASCADE_TEST_ENGINE"), "{error}");
        assert!(error.contains("28.5-containerd"), "{error}");
        let error = bench_engine(Some("27-x"), None)
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("--engine"), "{error}");
    }

    #[test]
    fn engine_names_map_to_image_versions() {
        assert_eq!(dind::version_of("28.5-containerd").expect("known"), "28.5");
        assert_eq!(dind::version_of("26.1").expect("known"), "26.1");
        assert_eq!(dind::version_of("20.10").expect("known"), "20.10");
        let error = dind::version_of("27.0-classic")
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("28.5-containerd"), "{error}");
        for engine in dind::ENGINES.iter().chain(dind::EXTRA_ENGINES) {
            dind::version_of(engine).expect("every engine has an image");
            assert_eq!(dind::engine_named(engine), Some(*engine));
        }
        assert_eq!(dind::engine_named("20.10-classic"), Some("20.10"));
        assert!(
            !dind::ENGINES.contains(&"28.5-overlay2"),
            "not in the CI matrix"
        );
        assert_eq!(dind::engine_named("28.5-overlay"), None);
    }

    #[test]
    fn podman_engines_are_in_the_matrix_after_the_docker_ones() {
        let podman = ["podman-4.3", "podman-5.4", "podman-5.8"];
        assert_eq!(dind::ENGINES.len(), 8);
        assert_eq!(&dind::ENGINES[5..], podman, "Docker first, then Podman");
        for engine in podman {
            assert_eq!(dind::engine_named(engine), Some(engine));
            // One store, so the engine's name is its image's.
            assert_eq!(dind::version_of(engine).expect("known"), engine);
            assert_eq!(
                dind::family_of(engine).expect("known"),
                dind::Family::Podman
            );
        }
        for engine in &dind::ENGINES[..5] {
            let image = dind::version_of(engine).expect("known");
            assert_eq!(dind::family_of(image).expect("known"), dind::Family::Docker);
        }
        assert_eq!(dind::engine_named("podman-4"), None);
        assert_eq!(dind::engine_named("podman"), None);
        let error = dind::version_of("podman-6.1")
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("podman-5.8"), "{error}");
    }

    #[test]
    fn the_flags_accept_exactly_the_engines_of_the_one_list() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from([&["cargo xtask"], args].concat());
        for engine in dind::ENGINES.iter().chain(dind::EXTRA_ENGINES) {
            let Ok(Cli {
                task: Task::Safety { engine: Some(got) },
            }) = parse(&["safety", "--engine", engine])
            else {
                panic!("safety --engine {engine} is refused");
            };
            assert_eq!(got, *engine);
            assert!(
                parse(&["dind-image", "--engine", engine]).is_ok(),
                "dind-image --engine {engine}"
            );
        }
        for (image, _) in dind::VERSIONS {
            assert!(
                parse(&["dind-image", "--engine", image]).is_ok(),
                "dind-image --engine {image}"
            );
        }
        assert!(parse(&["safety", "--engine", "20.10-classic"]).is_ok());
        // An image is not an engine where it has two stores.
        assert!(parse(&["safety", "--engine", "28.5"]).is_err());
        assert!(parse(&["safety", "--engine", "podman-6.1"]).is_err());
        assert!(parse(&["dind-image", "--engine", "podman-6.1"]).is_err());
    }
}
