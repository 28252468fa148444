//! The soak behind `cargo xtask soak`: the real daemon
//! (`cascade-janitor run`) sweeps a nested engine every few seconds while a
//! churn does what a router host does to it, an auditor checks that
//! nothing that must survive is lost, and faults hit in the middle of
//! sweeps.
//!
//! - [`churn`]: the operations and their rate;
//! - [`ledger`]: every image the churn made and why it must survive;
//! - [`audit`]: removals judged against the ledger, the engine checked
//!   against it;
//! - [`supervisor`]: the daemon, its log, its restarts, `/proc` samples;
//! - [`faults`]: engine SIGKILL, engine SIGSTOP, daemon SIGKILL.
//!
//! [`run`] returns the [`Figures`]; [`Figures::problems`] says what fails
//! the soak. Everything runs against a nested engine, never the host's.

pub mod audit;
pub mod churn;
pub mod faults;
pub mod ledger;
pub mod supervisor;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use bollard::query_parameters::ListImagesOptionsBuilder;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::NestedEngine;
use crate::fixtures;
use audit::{AuditFigures, Auditor};
use churn::{Churn, ChurnStats};
use faults::{Fault, FaultContext, FaultRecord};
use ledger::Ledger;
use supervisor::{DaemonConfig, Handle, Sample};

/// The daemon's resident memory may grow this much over its first
/// reading (taken after its first successful pass) at any moment of the
/// soak, restarts included.
pub const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;
/// Its open fds may grow this much over the first reading.
pub const FD_GROWTH_BOUND: u64 = 16;
/// How often the ledger is checked against the engine.
const CHECK_EVERY: Duration = Duration::from_secs(3);
/// How often `/proc/<pid>` is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// `cargo xtask soak`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// An engine of the matrix (`cargo xtask safety --engine`)
    #[arg(long, default_value = "20.10")]
    pub engine: String,
    /// How long the churn runs
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// Churn operations per second (a router host: a few)
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// A fault to inject mid-sweep; repeatable, each once, spread evenly
    /// over the run
    #[arg(long, value_enum)]
    pub fault: Vec<Fault>,
    /// The daemon's --interval
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// The daemon's --min-age
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub min_age: Duration,
    /// The daemon's --timeout (a stopped engine stays stopped 3 s longer);
    /// default 5s on Docker, 30s on Podman, whose `/info` waits for its
    /// storage lock behind the churn's commits (seen over 5 s under churn)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The churn's random seed (default: the clock), printed with the figures
    #[arg(long)]
    pub seed: Option<u64>,
    /// The cascade-janitor binary
    #[arg(long)]
    pub janitor: PathBuf,
    /// Also write the figures as JSON here
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the daemon's whole log (JSON lines) here
    #[arg(long)]
    pub daemon_log: Option<PathBuf>,
}

/// First, largest and last `/proc` readings of the daemon.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Span {
    pub first: u64,
    pub max: u64,
    pub last: u64,
}

impl Span {
    fn add(&mut self, value: u64, first: bool) {
        if first {
            self.first = value;
        }
        self.max = self.max.max(value);
        self.last = value;
    }
}

/// Everything a soak measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub engine: String,
    pub started: String,
    pub minutes: f64,
    pub rate: f64,
    pub seed: u64,
    pub interval_ms: u64,
    pub min_age_ms: u64,
    pub timeout_ms: u64,
    pub churn: ChurnStats,
    pub audit: AuditFigures,
    /// Labelled dangling images older than `--min-age` and unused, left
    /// after the churn stopped and two more passes ended.
    pub left_in_scope: u64,
    pub rss_kib: Span,
    pub fds: Span,
    pub threads: Span,
    pub restarts: u64,
    pub faults: Vec<FaultRecord>,
    /// Problems that are not the auditor's (a fault that did not end).
    pub errors: Vec<String>,
}

impl Figures {
    /// Whatever fails the soak, one line each; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .audit
            .losses
            .iter()
            .map(|l| format!("loss: {l}"))
            .collect();
        if self.rss_kib.max > self.rss_kib.first + RSS_GROWTH_BOUND_KIB {
            out.push(format!(
                "the daemon's RSS grew from {} KiB to {} KiB (bound: first + {} KiB)",
                self.rss_kib.first, self.rss_kib.max, RSS_GROWTH_BOUND_KIB
            ));
        }
        if self.fds.max > self.fds.first + FD_GROWTH_BOUND {
            out.push(format!(
                "the daemon's open fds grew from {} to {} (bound: first + {FD_GROWTH_BOUND})",
                self.fds.first, self.fds.max
            ));
        }
        for exit in &self.audit.unexpected_exits {
            out.push(format!("the daemon died outside a fault: {exit}"));
        }
        for fault in &self.faults {
            if fault.recovery_ms.is_none() {
                out.push(format!(
                    "no successful pass within {} ms after {} was over",
                    fault.bound_ms,
                    fault.fault.name()
                ));
            }
        }
        if self.audit.passes == 0 {
            out.push("the daemon never completed a pass".into());
        }
        out.extend(self.errors.iter().cloned());
        out
    }

    /// Per 1,000 of `of`, to one decimal.
    fn per_mille(count: usize, of: u64) -> String {
        if of == 0 {
            return "n/a".into();
        }
        format!("{:.1}", count as f64 * 1000.0 / of as f64)
    }

    /// The one line of figures.
    pub fn line(&self) -> String {
        let a = &self.audit;
        let c = &self.churn;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|f| {
                format!(
                    "{}:{}{}{}",
                    f.fault.name(),
                    f.recovery_ms
                        .map_or("none".to_string(), |ms| format!("{ms}ms")),
                    if f.mid_sweep { "" } else { "(not mid-sweep)" },
                    f.recovery_after_operator_ms
                        .map_or(String::new(), |ms| format!("(after operator: {ms}ms)"))
                )
            })
            .collect();
        format!(
            "soak engine={} minutes={} rate={}/s seed={} ops={} op_errors={} made_dangling={} removed={} \
             protected_checked={} checks={}/{} losses={} window_losses={} (per 1000 re-tags: {} of {}) \
             engine_window={} (per 1000 creates: {} of {}) mount_window={} (of {} mounts) \
             kept_tagged_again={} kept_in_use={} left_in_scope={} \
             rss_kib={}/{}/{} fds={}/{}/{} threads={}/{}/{} passes={} failed_passes={} restarts={} \
             recovery=[{}]",
            self.engine,
            self.minutes,
            self.rate,
            self.seed,
            c.ops,
            c.op_errors,
            c.made_dangling,
            a.removed,
            a.protected_checked,
            a.checks,
            a.checks + a.checks_failed,
            a.losses.len(),
            a.window_losses.len(),
            Self::per_mille(a.window_losses.len(), c.retags_on_dangling),
            c.retags_on_dangling,
            a.engine_window.len(),
            Self::per_mille(a.engine_window.len(), c.creates_on_dangling),
            c.creates_on_dangling,
            a.mount_window.len(),
            c.mounts_on_dangling,
            a.kept_tagged_again,
            a.kept_in_use,
            self.left_in_scope,
            self.rss_kib.first,
            self.rss_kib.max,
            self.rss_kib.last,
            self.fds.first,
            self.fds.max,
            self.fds.last,
            self.threads.first,
            self.threads.max,
            self.threads.last,
            a.passes,
            a.failed_passes,
            self.restarts,
            faults.join(" "),
        )
    }
}

/// Runs a soak on a nested engine it starts and removes.
pub async fn run(args: &SoakArgs) -> Result<Figures> {
    let engine = NestedEngine::start_named(&args.engine).await?;
    let outcome = soak_on(&engine, args).await;
    // A frozen engine cannot be removed cleanly: resume it first.
    let _ = engine.signal_engine("SIGCONT").await;
    let finished = engine.finish_long().await;
    let mut figures = outcome?;
    if let Err(e) = finished {
        figures.errors.push(format!("{e:#}"));
    }
    Ok(figures)
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The soak on `engine`.
pub async fn soak_on(engine: &NestedEngine, args: &SoakArgs) -> Result<Figures> {
    let started = SystemTime::now();
    let seed = args.seed.unwrap_or_else(|| {
        started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let timeout = args.timeout.unwrap_or(match engine.engine.family {
        crate::engine::Family::Docker => Duration::from_secs(5),
        crate::engine::Family::Podman => Duration::from_secs(30),
    });
    let ledger = Arc::new(Mutex::new(Ledger::new(args.min_age)));
    let churn = Arc::new(
        Churn::setup(
            engine.docker.clone(),
            engine.engine,
            Arc::clone(&ledger),
            seed,
        )
        .await
        .context("setting up the churn")?,
    );
    let handle = Arc::new(Handle::default());
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let stop_daemon = CancellationToken::new();
    let config = DaemonConfig {
        janitor: args.janitor.clone(),
        docker_host: engine.host(),
        interval: args.interval,
        min_age: args.min_age,
        call_timeout: timeout,
        log: args.daemon_log.clone(),
    };
    let supervisor = tokio::spawn(supervisor::supervise(
        config,
        Arc::clone(&handle),
        events_tx,
        stop_daemon.clone(),
    ));

    // The auditor: daemon events, the settle queue, periodic checks and
    // /proc samples, on one task that owns it.
    let auditor = Arc::new(tokio::sync::Mutex::new(Auditor::new(Arc::clone(&ledger))));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let (removals_tx, removals_rx) = watch::channel(0_u64);
    let stop_audit = CancellationToken::new();
    let audit_task = {
        let auditor = Arc::clone(&auditor);
        let samples = Arc::clone(&samples);
        let handle = Arc::clone(&handle);
        let docker = engine.docker.clone();
        let stop = stop_audit.clone();
        tokio::spawn(async move {
            let mut check = tokio::time::interval(CHECK_EVERY);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sample = tokio::time::interval(SAMPLE_EVERY);
            let mut judge = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    event = events_rx.recv() => match event {
                        Some(event) => {
                            if matches!(event, supervisor::DaemonEvent::Removed { .. }) {
                                removals_tx.send_modify(|n| *n += 1);
                            }
                            auditor.lock().await.on_event(event);
                        }
                        None => break,
                    },
                    _ = judge.tick() => auditor.lock().await.judge_due(false),
                    _ = check.tick() => {
                        // Every report received so far first: a removal
                        // whose log line is still queued is not "missing".
                        let mut a = auditor.lock().await;
                        while let Ok(event) = events_rx.try_recv() {
                            if matches!(event, supervisor::DaemonEvent::Removed { .. }) {
                                removals_tx.send_modify(|n| *n += 1);
                            }
                            a.on_event(event);
                        }
                        a.check(&docker).await;
                    }
                    _ = sample.tick() => {
                        let pid = handle.pid();
                        let passed = auditor.lock().await.figures.passes > 0;
                        if pid != 0 && passed
                            && let Some(s) = supervisor::sample(std::path::Path::new("/proc"), pid)
                        {
                            locked(&samples).push(s);
                        }
                    }
                }
            }
            // What the daemon said before it stopped.
            while let Ok(event) = events_rx.try_recv() {
                auditor.lock().await.on_event(event);
            }
        })
    };

    // The churn runs for the whole soak; faults hit at even intervals.
    let stop_churn = CancellationToken::new();
    let churn_task = tokio::spawn(Arc::clone(&churn).run(args.rate, stop_churn.clone()));
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let run_start = tokio::time::Instant::now();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut ctx = FaultContext {
        engine,
        daemon: Arc::clone(&handle),
        removals: removals_rx,
        call_timeout: timeout,
    };
    for (i, fault) in args.fault.iter().enumerate() {
        let at = duration.mul_f64((i + 1) as f64 / (args.fault.len() + 1) as f64);
        tokio::time::sleep_until(run_start + at).await;
        eprintln!(
            "soak: injecting {} (mid-sweep when a removal is reported)",
            fault.name()
        );
        match faults::inject(*fault, &mut ctx).await {
            Ok((injected, mid_sweep, over)) => {
                let longest = auditor.lock().await.figures.longest_pass_ms;
                let bound =
                    faults::recovery_bound(engine.engine.family, Duration::from_millis(longest));
                let recovered = recovered_after(&auditor, over, bound).await;
                let ms = |t: SystemTime| {
                    t.duration_since(injected)
                        .map_or(0, |d| d.as_millis() as u64)
                };
                let mut record = FaultRecord {
                    fault: *fault,
                    mid_sweep,
                    injected,
                    fault_ms: ms(over),
                    recovery_ms: recovered.map(ms),
                    bound_ms: bound.as_millis() as u64,
                    operator: None,
                    recovery_after_operator_ms: None,
                };
                if recovered.is_none() {
                    let error = auditor.lock().await.last_scan_error.clone();
                    if let Some(id) = error.as_deref().and_then(faults::image_to_remove) {
                        // What the engine's error tells an operator to do.
                        locked(&ledger).drop_image(&fixtures::listed_id(&id), SystemTime::now());
                        let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
                            .force(true)
                            .build();
                        let outcome = engine.docker.remove_image(&id, Some(options), None).await;
                        record.operator = Some(format!(
                            "removed the image the engine's list could not read ({id}): {}",
                            outcome.map_or_else(|e| e.to_string(), |_| "done".into())
                        ));
                        let done = SystemTime::now();
                        record.recovery_after_operator_ms =
                            recovered_after(&auditor, done, bound).await.map(ms);
                    }
                }
                eprintln!("soak: {record:?}");
                records.push(record);
            }
            Err(e) => errors.push(format!("{} could not be injected: {e:#}", fault.name())),
        }
    }
    tokio::time::sleep_until(run_start + duration).await;
    stop_churn.cancel();
    let _ = churn_task.await;
    churn.settle(Duration::from_secs(30)).await;
    churn.release_all().await;

    // Two more successful passes, with nothing new, then the last check.
    let quiet = SystemTime::now();
    let waited = crate::wait_until(
        Duration::from_secs(60),
        "two passes after the churn",
        || {
            let auditor = Arc::clone(&auditor);
            async move {
                let a = auditor.lock().await;
                a.figures
                    .ok_pass_ends
                    .iter()
                    .filter(|t| **t > quiet)
                    .count()
                    >= 2
            }
        },
    )
    .await;
    if let Err(e) = waited {
        errors.push(format!("{e:#}"));
    }
    let left_in_scope = left_in_scope(engine, &ledger, quiet, args.min_age).await?;
    auditor.lock().await.stopping = true;
    stop_daemon.cancel();
    supervisor.await.context("the supervisor")??;
    stop_audit.cancel();
    audit_task.await.context("the auditor")?;
    let mut auditor = auditor.lock().await;
    auditor.judge_due(true);
    // Twice: a missing image is a loss only when two checks agree.
    auditor.check(&engine.docker).await;
    auditor.check(&engine.docker).await;

    let mut rss = Span::default();
    let mut fds = Span::default();
    let mut threads = Span::default();
    for (i, s) in locked(&samples).iter().enumerate() {
        rss.add(s.rss_kib, i == 0);
        fds.add(s.fds, i == 0);
        threads.add(s.threads, i == 0);
    }
    let figures = Figures {
        engine: engine.engine.name().to_string(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        minutes: args.minutes,
        rate: args.rate,
        seed,
        interval_ms: args.interval.as_millis() as u64,
        min_age_ms: args.min_age.as_millis() as u64,
        timeout_ms: timeout.as_millis() as u64,
        churn: churn.stats(),
        audit: auditor.figures.clone(),
        left_in_scope,
        rss_kib: rss,
        fds,
        threads,
        restarts: auditor.figures.starts.saturating_sub(1),
        faults: records,
        errors,
    };
    Ok(figures)
}

/// The end of the first successful pass that ended after `over`, polled
/// up to `bound`.
async fn recovered_after(
    auditor: &Arc<tokio::sync::Mutex<Auditor>>,
    over: SystemTime,
    bound: Duration,
) -> Option<SystemTime> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(t) = auditor
            .lock()
            .await
            .figures
            .ok_pass_ends
            .iter()
            .find(|t| **t > over)
        {
            return Some(*t);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Labelled dangling images that were already older than `min_age` when
/// the churn stopped (`quiet`) and that no container of the churn uses:
/// what the two passes since should have removed.
async fn left_in_scope(
    engine: &NestedEngine,
    ledger: &Arc<Mutex<Ledger>>,
    quiet: SystemTime,
    min_age: Duration,
) -> Result<u64> {
    let filters = std::collections::HashMap::from([
        ("dangling", vec!["true"]),
        ("label", vec!["cascade.managed=true"]),
    ]);
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    // Podman 4.3 under load takes longer than the harness's 30 s per call.
    let docker = engine.docker.clone().with_timeout(Duration::from_secs(120));
    let images = docker.list_images(Some(options)).await?;
    let in_use = locked(ledger).in_use();
    let quiet = quiet.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64;
    Ok(images
        .iter()
        .filter(|i| quiet - i.created >= min_age.as_secs() as i64)
        .filter(|i| !in_use.contains(&i.id))
        .count() as u64)
}
