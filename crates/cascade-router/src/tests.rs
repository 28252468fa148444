//! The janitor's supervision on paused time: loops built from a config run
//! on schedule with their telemetry, a loop that dies is noticed at once,
//! and `stop` reports every loop's outcome.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use cascade_cleanup::{DockerError, EngineEvent, ListedImage};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use super::*;

const E1: &str = "unix:///run/one.sock";
const E2: &str = "unix:///run/two.sock";

/// An engine with nothing to remove that records when each pass listed;
/// with `hang`, listings never answer (a pass that outlives any deadline).
#[derive(Default)]
struct Recording {
    lists: Mutex<Vec<Instant>>,
    hang: bool,
}

impl Recording {
    fn since(&self, origin: Instant) -> Vec<Duration> {
        let lists = self.lists.lock().expect("lists");
        lists.iter().map(|t| *t - origin).collect()
    }
}

#[async_trait]
impl DockerImages for Recording {
    async fn list_images(
        &self,
        _: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        self.lists.lock().expect("lists").push(Instant::now());
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(Vec::new())
    }
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        Ok(HashSet::new())
    }
    async fn remove_image(&self, _: &str) -> Result<(), DockerError> {
        Ok(())
    }
}

struct NoEvents;

impl EngineEvents for NoEvents {
    fn subscribe(&self, _: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        futures_util::stream::pending().boxed()
    }
}

/// A janitor over one `Recording` engine per entry of `engines`.
fn janitor(engines: &[(&str, &Arc<Recording>)]) -> Janitor {
    let mut config = JanitorConfig::new(engines.iter().map(|(host, _)| *host));
    config.interval = Duration::from_secs(60);
    config.min_gap = Duration::from_secs(1);
    config.events = None;
    config.stop_deadline = Duration::from_secs(5);
    let by_host: HashMap<&str, Arc<Recording>> = engines
        .iter()
        .map(|(host, e)| (*host, Arc::clone(e)))
        .collect();
    Janitor::with_clients(config, |engine| {
        Ok::<_, std::convert::Infallible>(EngineClients {
            images: Arc::clone(&by_host[engine.host.as_str()]) as Arc<dyn DockerImages>,
            events: Arc::new(NoEvents),
        })
    })
    .expect("infallible")
}

fn report(name: &str, outcome: LoopOutcome) -> LoopReport {
    LoopReport {
        name: name.to_string(),
        outcome,
    }
}

fn alive(janitor: &Janitor) -> Vec<bool> {
    let health = janitor.telemetry().health();
    health.engines.iter().map(|e| e.alive).collect()
}

#[tokio::test(start_paused = true)]
async fn every_engine_loop_runs_on_schedule_with_its_telemetry() {
    let (one, two) = (
        Arc::new(Recording::default()),
        Arc::new(Recording::default()),
    );
    let mut janitor = janitor(&[(E1, &one), (E2, &two)]);
    assert_eq!(janitor.loop_names(), [E1, E2]);
    assert_eq!(alive(&janitor), [false, false], "not alive before start");
    let origin = Instant::now();
    assert!(janitor.start());
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(alive(&janitor), [true, true]);
    assert_eq!(
        janitor.stop().await,
        [
            report(E1, LoopOutcome::Clean),
            report(E2, LoopOutcome::Clean)
        ]
    );
    assert_eq!(
        alive(&janitor),
        [false, false],
        "the probe follows the task"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    for engine in [&one, &two] {
        assert_eq!(
            engine.since(origin),
            [0, 60, 120].map(Duration::from_secs),
            "a pass at start and every interval, none after stop"
        );
    }
    let text = janitor.telemetry().render();
    for host in [E1, E2] {
        let line =
            format!("cascade_janitor_sweeps_total{{engine=\"{host}\",result=\"success\"}} 3");
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn start_twice_keeps_one_set_of_loops_and_stop_is_idempotent() {
    let one = Arc::new(Recording::default());
    let mut janitor = janitor(&[(E1, &one)]);
    assert_eq!(janitor.stop().await, [], "stop before start is a no-op");
    let origin = Instant::now();
    assert!(janitor.start());
    assert!(!janitor.start(), "second start does nothing");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(janitor.stop().await, [report(E1, LoopOutcome::Clean)]);
    assert_eq!(janitor.stop().await, []);
    assert!(janitor.start(), "cycles work");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(janitor.stop().await, [report(E1, LoopOutcome::Clean)]);
    assert_eq!(
        one.since(origin),
        [0, 30].map(Duration::from_secs),
        "one pass per start: one timer"
    );
}

#[tokio::test(start_paused = true)]
async fn a_loop_that_dies_is_noticed_at_once_and_reported_at_stop() {
    let one = Arc::new(Recording::default());
    let mut janitor = janitor(&[(E1, &one)])
        .with_loop("snapshot-eviction", |_| async {
            tokio::time::sleep(Duration::from_secs(7)).await;
            panic!("eviction bug");
        })
        .with_loop("orphan-containers", |_| async {});
    let origin = Instant::now();
    janitor.start();
    assert_eq!(
        janitor.wait_for_failure().await,
        report("orphan-containers", LoopOutcome::EndedEarly)
    );
    assert_eq!(origin.elapsed(), Duration::ZERO, "noticed when it ended");
    assert_eq!(
        janitor.wait_for_failure().await,
        report(
            "snapshot-eviction",
            LoopOutcome::Panicked("eviction bug".into())
        )
    );
    assert_eq!(
        origin.elapsed(),
        Duration::from_secs(7),
        "noticed when it panicked, not at a polling tick"
    );
    assert_eq!(
        janitor.stop().await,
        [
            report(E1, LoopOutcome::Clean),
            report(
                "snapshot-eviction",
                LoopOutcome::Panicked("eviction bug".into())
            ),
            report("orphan-containers", LoopOutcome::EndedEarly),
        ],
        "every loop's outcome, the dead ones included, in start order"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_abandons_loops_past_the_deadline_and_says_so() {
    let stuck = Arc::new(Recording {
        hang: true,
        ..Recording::default()
    });
    let fine = Arc::new(Recording::default());
    let mut janitor = janitor(&[(E1, &stuck), (E2, &fine)]);
    janitor.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    assert_eq!(
        janitor.stop().await,
        [
            report(E1, LoopOutcome::DeadlineExceeded),
            report(E2, LoopOutcome::Clean)
        ]
    );
    assert_eq!(
        stopping.elapsed(),
        Duration::from_secs(5),
        "the stop deadline"
    );
    assert_eq!(alive(&janitor), [false, false]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_janitor_ends_its_loops() {
    let one = Arc::new(Recording::default());
    let origin = Instant::now();
    let mut janitor = janitor(&[(E1, &one)]);
    janitor.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(janitor);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(one.since(origin), [Duration::ZERO]);
}
