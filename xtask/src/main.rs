//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `dind-image`: builds the local Docker-in-Docker image the safety suite
//!   starts its nested engines from (no registry is needed: the host's own
//!   engine binaries and their shared libraries are imported as a rootfs).
//! - `safety`: runs the real-engine safety suite in `integration/`.
//! - `ci`: everything CI checks, in order: fmt, clippy, unit tests, the
//!   Prometheus alert rules (promtool), safety, and a smoke pass of the
//!   benchmarks.
//! - `demo`: shows a newcomer what the janitor removes and keeps, on a
//!   small zoo of images in a nested engine.
//! - `seed`: loads thousands of fixture images into a nested engine.
//! - `bench-compare`: times the janitor against `docker image prune`, the
//!   one-at-a-time loop and a raw list request (see `docs/BENCHMARKS.md`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod image;

/// The image the safety suite starts nested engines from.
const DIND_IMAGE: &str = "cascade-janitor-dind:local";

/// Engine binaries the nested engine needs, as DOCKER.md lists them. They
/// are looked up where Debian's docker.io and Docker's docker-ce put them.
const ENGINE_BINARIES: &[&str] = &[
    "dockerd",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "docker-init",
    "docker-proxy",
];
const BINARY_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/libexec/docker",
];

fn find_binary(name: &str) -> Result<PathBuf> {
    BINARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found in {BINARY_DIRS:?}; install Debian's docker.io (apt-get install docker.io)"))
}

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
    /// Build the local Docker-in-Docker image (cascade-janitor-dind:local) from the host's dockerd
    DindImage {
        /// Rebuild even when the image already exists
        #[arg(long)]
        force: bool,
    },
    /// Run the real-engine safety suite (builds the nested-engine image first when missing)
    Safety,
    /// Run every check CI runs: fmt, clippy -D warnings, unit tests, alert rules (promtool), safety suite, bench smoke pass
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
    /// Show a newcomer what the janitor removes and keeps: a small zoo in a nested engine, then doctor, prune --dry-run, prune
    Demo,
    /// Time the janitor against docker image prune, the one-at-a-time loop and a raw list, on one nested engine
    BenchCompare {
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
        /// Also time `prune --concurrency N` for these N, comma-separated
        #[arg(long)]
        concurrency: Option<String>,
        /// Skip the idle-daemon measurement
        #[arg(long)]
        no_idle: bool,
        /// Another cascade-janitor binary (e.g. built before a change), timed beside the others
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::DindImage { force } => dind_image(force),
        Task::Safety => safety(false),
        Task::Ci => ci(),
        Task::Image(args) => image::image(&args, &workspace_root()),
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
                dind_image(false)?;
            }
            bench_tool(&args)
        }
        Task::BenchCompare {
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
            dind_image(false)?;
            step(
                "build cascade-janitor (release)",
                cargo(&["build", "--locked", "--release", "-p", "cascade-janitor"]),
            )?;
            let root = workspace_root();
            let mut args = vec![
                "compare".to_string(),
                format!("--images={images}"),
                format!("--decoys={decoys}"),
                format!("--runs={runs}"),
                format!("--other-runs={other_runs}"),
                format!(
                    "--janitor={}",
                    root.join("target/release/cascade-janitor").display()
                ),
                format!(
                    "--json={}",
                    root.join("target/bench/compare.json").display()
                ),
                format!("--svg={}", root.join("docs/benchmarks.svg").display()),
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
    }
}

/// `cascade-demo` (integration/src/bin) with the debug janitor: a newcomer
/// should not wait for a release build.
fn demo() -> Result<()> {
    dind_image(false)?;
    step(
        "build cascade-janitor",
        cargo(&["build", "--locked", "-p", "cascade-janitor"]),
    )?;
    let janitor = workspace_root().join("target/debug/cascade-janitor");
    let mut command = cargo(&[
        "run",
        "--quiet",
        "--locked",
        "-p",
        "integration",
        "--bin",
        "cascade-demo",
        "--",
    ]);
    command.arg(format!("--janitor={}", janitor.display()));
    step("cascade-demo", command)
}

/// Runs `cascade-bench` (integration/src/bin), built with `--release` so
/// the in-process contenders are measured optimised.
fn bench_tool(args: &[String]) -> Result<()> {
    let mut command = cargo(&[
        "run",
        "--quiet",
        "--locked",
        "--release",
        "-p",
        "integration",
        "--bin",
        "cascade-bench",
        "--",
    ]);
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
    safety(true)?;
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

/// The real-engine suite. `require_image`: fail, not skip, the image test
/// when `cascade-janitor:local` is missing.
fn safety(require_image: bool) -> Result<()> {
    dind_image(false)?;
    // The suite drives the binary end to end; build it first.
    step(
        "build cascade-janitor",
        cargo(&["build", "--locked", "-p", "cascade-janitor"]),
    )?;
    let mut suite = cargo(&[
        "nextest",
        "run",
        "--locked",
        "-p",
        "integration",
        "--no-fail-fast",
        "--test-threads",
        "2",
    ]);
    if require_image {
        suite.env("JANITOR_TEST_REQUIRE_IMAGE", "1");
    }
    step("safety suite", suite)
}

fn bench_smoke() -> Result<()> {
    // Each benchmark once, in the test profile (no release build): proves
    // they still run; timings are for `cargo bench` and `bench-compare`.
    let mut smoke = cargo(&["test", "--locked", "-p", "integration", "--benches"]);
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
    c
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

fn dind_image(force: bool) -> Result<()> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match info {
        Ok(out) if out.status.success() => {}
        _ => bail!("no Docker engine answers `docker info`; start dockerd (see .ci/run) and retry"),
    }
    if !force && image_exists(DIND_IMAGE)? {
        eprintln!("xtask: {DIND_IMAGE} already exists (use --force to rebuild)");
        return Ok(());
    }
    let files = rootfs_files()?;
    let dockerd = find_binary("dockerd")?;
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(true);
    for dir in [
        "tmp",
        "run",
        "run/dind",
        "var/lib/docker",
        "etc",
        "proc",
        "sys",
        "dev",
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        archive.append_data(&mut header, dir, std::io::empty())?;
    }
    for file in &files {
        let inside = file.strip_prefix("/").expect("absolute");
        archive
            .append_path_with_name(file, inside)
            .with_context(|| format!("cannot add {}", file.display()))?;
    }
    let rootfs = archive.into_inner()?;
    eprintln!(
        "xtask: importing {} files ({} bytes) as {DIND_IMAGE}",
        files.len(),
        rootfs.len()
    );
    let mut child = Command::new("docker")
        .args([
            "import",
            "--change",
            &format!(
                r#"ENTRYPOINT ["{}","--storage-driver=vfs","--iptables=false","--ip6tables=false","--bridge=none"]"#,
                dockerd.display()
            ),
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "-",
            DIND_IMAGE,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run `docker import`")?;
    child.stdin.take().expect("piped").write_all(&rootfs)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("docker import failed ({status})");
    }
    eprintln!("xtask: built {DIND_IMAGE}");
    Ok(())
}

/// The engine binaries plus every shared library `ldd` lists for them.
fn rootfs_files() -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for name in ENGINE_BINARIES {
        let path = find_binary(name)?;
        let out = Command::new("ldd")
            .arg(&path)
            .output()
            .context("cannot run ldd")?;
        files.insert(path);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let candidate = line
                .split("=>")
                .last()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            if candidate.starts_with('/') {
                files.insert(PathBuf::from(candidate));
            }
        }
    }
    Ok(files)
}
