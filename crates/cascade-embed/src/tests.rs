//! The janitor's supervision on paused time: loops built from a config run
//! on schedule with their telemetry, a loop that dies is noticed at once,
//! `stop` reports every loop's outcome, and start and stop are defined
//! whenever they are called.

use std::collections::HashMap;
use std::sync::Mutex;

use cascade_cleanup::fake::{FakeDocker, FakeEvents, ours};
use tokio::time::Instant;

use super::*;

const E1: &str = "unix:///run/one.sock";
const E2: &str = "unix:///run/two.sock";

/// An engine whose removals never answer: a pass that outlives any deadline.
fn stuck() -> Arc<FakeDocker> {
    let fake = FakeDocker::with_images(vec![ours("sha256:a")]);
    fake.edit(|s| s.remove_hangs = true);
    Arc::new(fake)
}

fn address(host: &str) -> EngineAddress {
    EngineAddress::parse(host).expect("a valid address")
}

/// A janitor over one fake engine per entry of `engines`, a pass every
/// minute.
fn janitor(engines: &[(&str, &Arc<FakeDocker>)]) -> Janitor {
    janitor_every(engines, Duration::from_secs(60))
}

/// A janitor over one fake engine per entry of `engines`, a pass every
/// `interval`, no events, no minimum age, a stop deadline of 5 s.
fn janitor_every(engines: &[(&str, &Arc<FakeDocker>)], interval: Duration) -> Janitor {
    let config = JanitorConfig::builder(engines.iter().map(|(host, _)| address(host)))
        .interval(interval)
        .min_gap(Duration::from_secs(1))
        .events(None)
        .min_age(Duration::ZERO)
        .stop_deadline(Duration::from_secs(5))
        .build()
        .expect("a valid configuration");
    let by_host: HashMap<&str, Arc<FakeDocker>> = engines
        .iter()
        .map(|(host, e)| (*host, Arc::clone(e)))
        .collect();
    Janitor::with_clients(config, |engine| {
        Ok::<_, std::convert::Infallible>(EngineClients::new(
            Arc::clone(&by_host[engine.address().as_str()]) as Arc<dyn DockerImages>,
            Arc::new(FakeEvents::default()),
        ))
    })
    .expect("infallible")
}

/// The report of an engine loop (an address) or a job (anything else).
fn report(name: &str, outcome: LoopOutcome) -> LoopReport {
    let name = match EngineAddress::parse(name) {
        Ok(address) => LoopName::Engine(address),
        Err(_) => LoopName::Job(name.to_string()),
    };
    LoopReport { name, outcome }
}

const MIN: Duration = Duration::from_secs(60);

/// Captures every log line written while `f` runs on this thread.
fn with_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
    (out, text)
}

/// Runs `f` on a paused current-thread runtime.
fn paused<F: Future>(f: impl FnOnce() -> F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f())
}

fn alive(janitor: &Janitor) -> Vec<bool> {
    let health = janitor.telemetry().health();
    health.engines.iter().map(|e| e.alive).collect()
}

#[tokio::test(start_paused = true)]
async fn every_engine_loop_runs_on_schedule_with_its_telemetry() {
    let (one, two) = (
        Arc::new(FakeDocker::default()),
        Arc::new(FakeDocker::default()),
    );
    let mut janitor = janitor(&[(E1, &one), (E2, &two)]);
    assert_eq!(
        janitor.loop_names(),
        [
            &LoopName::Engine(address(E1)),
            &LoopName::Engine(address(E2))
        ]
    );
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
            engine.lists_started_since(origin),
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
    let one = Arc::new(FakeDocker::default());
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
        one.lists_started_since(origin),
        [0, 30].map(Duration::from_secs),
        "one pass per start: one timer"
    );
}

#[tokio::test(start_paused = true)]
async fn a_loop_that_dies_is_noticed_at_once_and_reported_at_stop() {
    let one = Arc::new(FakeDocker::default());
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
    let stuck = stuck();
    let fine = Arc::new(FakeDocker::default());
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
    let one = Arc::new(FakeDocker::default());
    let origin = Instant::now();
    let mut janitor = janitor(&[(E1, &one)]);
    janitor.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(janitor);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(one.lists_started_since(origin), [Duration::ZERO]);
}

#[test]
fn start_twice_warns_and_keeps_one_timer() {
    let one = Arc::new(FakeDocker::default());
    let (origin, logs) = with_logs(|| {
        paused(|| async {
            let origin = Instant::now();
            let mut janitor = janitor_every(&[(E1, &one)], 30 * MIN);
            assert!(janitor.start());
            assert!(!janitor.start(), "second start refused");
            tokio::time::sleep(61 * MIN).await;
            janitor.stop().await;
            origin
        })
    });
    assert_eq!(
        one.lists_started_since(origin),
        [0, 30, 60].map(|m| m * MIN),
        "one timer"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("already started")),
        "{logs}"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_when_not_started_is_a_no_op_and_cycles_work() {
    let one = Arc::new(FakeDocker::default());
    let origin = Instant::now();
    let mut janitor = janitor_every(&[(E1, &one)], 30 * MIN);
    assert_eq!(janitor.stop().await, []);
    assert_eq!(janitor.stop().await, []);
    for cycle in 1..=3 {
        assert!(janitor.start(), "cycle {cycle}");
        assert!(janitor.is_started());
        tokio::time::sleep(MIN).await;
        assert_eq!(janitor.stop().await, [report(E1, LoopOutcome::Clean)]);
        assert!(!janitor.is_started());
    }
    assert_eq!(
        one.lists_started_since(origin),
        [0, 1, 2].map(|m| m * MIN),
        "each start runs a pass at once"
    );
}

#[test]
fn a_loop_is_named_by_its_engine_or_its_job() {
    let engine = LoopName::Engine(address(E1));
    assert_eq!(engine.to_string(), E1);
    assert_eq!(engine.engine(), Some(&address(E1)));
    let job = LoopName::Job("snapshot-eviction".into());
    assert_eq!(job.as_str(), "snapshot-eviction");
    assert_eq!(job.engine(), None);
}

/// `Janitor::new` reads each engine's TLS files; one that cannot be used is
/// refused naming the field, before any engine is contacted.
#[test]
fn unusable_tls_files_are_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("cascade-embed-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "SECRET-JUNK\n").expect("write");
    let config = JanitorConfig::builder([
        EngineConfig::new(address(E1)),
        EngineConfig::new(address("tcp://10.0.0.5:2376")).with_tls(TlsFiles {
            ca: junk.clone(),
            client: None,
        }),
    ])
    .build()
    .expect("valid: the files are read by Janitor::new");
    let err = Janitor::new(config).expect_err("junk is no CA");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(err.field(), "engines[1].tls");
    let text = err.to_string();
    assert!(
        text.starts_with("`engines[1].tls`: cannot use TLS for tcp://10.0.0.5:2376: "),
        "{text}"
    );
    assert!(text.contains(&junk.display().to_string()), "{text}");
    assert!(
        !text.contains("SECRET") && !text.contains("--tls"),
        "{text}"
    );
}
