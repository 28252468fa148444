//! Tests of the telemetry, one submodule per module they pin; the
//! helpers here build reports and read expositions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cascade_classify::Disposition;
use cascade_cleanup::{Failed, ImageRef, SkipReason, Skipped, SweepReport};

use crate::*;

mod health;
mod metrics;
mod panics;
mod server;
mod telemetry;

const E1: &str = "unix:///var/run/docker.sock";
const E2: &str = "tcp://127.0.0.1:2375";
/// The manual clock's wall time at offset zero.
const WALL_BASE: u64 = 1_700_000_000;

/// A clock that moves only when told to.
#[derive(Debug)]
struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }
    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_BASE) + self.offset()
    }
}

/// A liveness probe the test flips.
fn probe(alive: &Arc<AtomicBool>) -> AliveProbe {
    let alive = Arc::clone(alive);
    Arc::new(move || alive.load(Ordering::SeqCst))
}

fn always_alive() -> AliveProbe {
    Arc::new(|| true)
}

fn image(n: u64, size: u64) -> ImageRef {
    ImageRef {
        id: format!("sha256:{n:064x}"),
        size_bytes: size,
        age_seconds: 3600,
    }
}

fn skipped(n: u64, reason: SkipReason) -> Skipped {
    Skipped {
        image: image(n, 1),
        reason,
    }
}

fn failed(n: u64, kind: Disposition) -> Failed {
    Failed {
        image: image(n, 1),
        kind,
        message: "boom".into(),
    }
}

/// Listed 7: removed 2 (100 + 250 bytes), skipped 5.
/// What a pass at `--concurrency n` reports of its window.
fn fixed_pace(n: usize) -> cascade_cleanup::RemovalPace {
    let mut window_mean = cascade_cleanup::pace::WindowMean::default();
    window_mean.add(n);
    cascade_cleanup::RemovalPace {
        mode: cascade_cleanup::pace::PaceMode::Fixed,
        window_max: n,
        window_mean,
        pauses: 0,
        paused: Duration::ZERO,
    }
}

fn success_report() -> SweepReport {
    SweepReport {
        listed: 7,
        removed: vec![image(1, 100), image(2, 250)],
        skipped: vec![
            skipped(3, SkipReason::TooYoung),
            skipped(4, SkipReason::TooYoung),
            skipped(5, SkipReason::InUse),
            skipped(6, SkipReason::Gone),
            skipped(
                7,
                SkipReason::FailedVerification {
                    detail: "label `cascade.managed` is `True`, not `true`".into(),
                },
            ),
        ],
        reclaimed_bytes: 350,
        duration: Duration::from_millis(1500),
        removal_pace: Some(fixed_pace(4)),
        ..SweepReport::default()
    }
}

/// Listed 4: removed 1 (10 bytes), 2 transient failures, 1 unexpected.
fn partial_report() -> SweepReport {
    SweepReport {
        listed: 4,
        removed: vec![image(1, 10)],
        failed: vec![
            failed(2, Disposition::Transient),
            failed(3, Disposition::Transient),
            failed(4, Disposition::Unexpected),
        ],
        reclaimed_bytes: 10,
        duration: Duration::from_secs(42),
        ..SweepReport::default()
    }
}

fn scan_failed_report() -> SweepReport {
    SweepReport {
        scan_error: Some("listing images: connection refused".into()),
        duration: Duration::from_millis(5),
        ..SweepReport::default()
    }
}

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of an exposition (comments skipped). Panics on a
/// line it does not understand, so a malformed page fails the test.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("numeric value");
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split("\",")
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the one sample with exactly this name and label set; `None`
/// when absent. Panics when two samples match.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} appears twice:\n{text}");
    found.first().copied()
}

fn v(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"))
}

/// [`v`] of engine `E1`'s sample that also carries `label`.
fn v1(text: &str, name: &str, label: (&str, &str)) -> f64 {
    v(text, name, &[("engine", E1), label])
}

fn telemetry(stale_after: Duration) -> (Arc<Telemetry>, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let t = Telemetry::with_clock(stale_after, Arc::clone(&clock) as Arc<dyn Clock>);
    (t, clock)
}

const HOUR: Duration = Duration::from_secs(3600);
