//! Panics surface and the loop survives them: a panic in
//! a pass, in the observer or in the event follower is logged at error, is
//! one Sentry event of a fixed shape, reaches the panic observer, and the
//! loop goes on; a loop task that dies anyway is `Panicked` to its owner.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sentry::protocol::Event;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::{OwnedLoop, STOP_DEADLINE, config, with_logs, with_sentry};
use crate::fake::{FakeDocker, ours};
use crate::*;

/// The fake engine, except that the listings numbered in `panic_on` (from 1)
/// panic; records when each listing started (tokio's clock).
struct PanickyEngine {
    inner: FakeDocker,
    panic_on: Vec<usize>,
    /// The panic's text after `listing N `.
    says: &'static str,
    lists: Mutex<Vec<Instant>>,
}

impl PanickyEngine {
    fn new(panic_on: &[usize]) -> Arc<PanickyEngine> {
        Arc::new(PanickyEngine {
            inner: FakeDocker::with_images(vec![ours("sha256:a")]),
            panic_on: panic_on.to_vec(),
            says: "hit a bug",
            lists: Mutex::new(Vec::new()),
        })
    }

    fn lists_since(&self, origin: Instant) -> Vec<Duration> {
        let lists = self.lists.lock().expect("lists");
        lists.iter().map(|t| *t - origin).collect()
    }
}

#[async_trait]
impl DockerImages for PanickyEngine {
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        if filters.contains_key("reference") {
            // The removal-name listing: not a pass of its own.
            return self.inner.list_images(filters).await;
        }
        let n = {
            let mut lists = self.lists.lock().expect("lists");
            lists.push(Instant::now());
            lists.len()
        };
        if self.panic_on.contains(&n) {
            panic!("listing {n} {}", self.says);
        }
        self.inner.list_images(filters).await
    }
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        self.inner.engine_facts().await
    }
    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.inner.list_all_images().await
    }
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        self.inner.inspect_image(id).await
    }
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        self.inner.images_used_by_containers().await
    }
    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        self.inner.tag_image(id, repository, tag).await
    }
    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError> {
        self.inner.remove_image(name).await
    }
}

/// Every site the panic observer was told of, in order.
fn panic_recorder() -> (PanicObserver, Arc<Mutex<Vec<PanicSite>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let observer: PanicObserver = Arc::new(move |site| sink.lock().expect("sites").push(site));
    (observer, seen)
}

/// A sweep of `engine` named `unix:///run/test.sock`, and a loop every
/// `interval` (the test adds observers and events to the options).
fn cleanup(
    engine: &Arc<PanickyEngine>,
    interval: Duration,
) -> (Arc<DanglingImageSweep>, LoopOptions) {
    let sweep = DanglingImageSweep::new(
        Arc::clone(engine) as Arc<dyn DockerImages>,
        SweepConfig {
            engine_label: "unix:///run/test.sock".into(),
            ..config(Duration::ZERO)
        },
    );
    (Arc::new(sweep), LoopOptions::every(interval))
}

/// The Sentry events about caught panics, as (where, panic text, engine),
/// after checking the fixed part of their shape.
fn panic_events(events: &[Event<'static>]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e.tags.get("source").map(String::as_str) == Some(sentry_report::PANIC_SOURCE))
        .map(|e| {
            let site = e.tags.get("where").cloned().unwrap_or_default();
            assert_eq!(e.message.as_deref(), Some(sentry_report::PANIC_MESSAGE));
            assert_eq!(e.level, sentry::Level::Error);
            let fingerprint: Vec<&str> = e.fingerprint.iter().map(|f| f.as_ref()).collect();
            assert_eq!(fingerprint, [sentry_report::PANIC_SOURCE, site.as_str()]);
            let extra = |k: &str| e.extra.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            (
                site.clone(),
                extra("panic").to_string(),
                extra("engine").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_panicking_pass_is_reported_and_the_loop_goes_on() {
    let engine = PanickyEngine::new(&[1]);
    let (on_panic, seen) = panic_recorder();
    let (((outcome, origin), events), logs) = with_logs(|| {
        with_sentry(|| async {
            let (sweep, mut options) = cleanup(&engine, Duration::from_secs(60));
            options.on_panic = Some(on_panic);
            let origin = Instant::now();
            let mut svc = OwnedLoop::spawn(&sweep, options);
            tokio::time::sleep(Duration::from_secs(150)).await;
            assert!(svc.is_running(), "the loop survived its panicking pass");
            (svc.stop(STOP_DEADLINE).await, origin)
        })
    });
    assert_eq!(outcome, LoopOutcome::Clean);
    assert_eq!(
        engine.lists_since(origin),
        [0, 60, 120].map(Duration::from_secs),
        "the next passes ran on schedule"
    );
    assert_eq!(
        engine.inner.removed(),
        ["sha256:a"],
        "the second pass swept"
    );
    assert_eq!(*seen.lock().expect("sites"), [PanicSite::Sweep]);
    assert_eq!(
        panic_events(&events),
        [(
            "sweep".to_string(),
            "listing 1 hit a bug".to_string(),
            "unix:///run/test.sock".to_string()
        )]
    );
    let line = logs
        .lines()
        .find(|l| l.contains("caught a panic"))
        .unwrap_or_else(|| panic!("no log line for the panic in:\n{logs}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("where=\"sweep\""), "{line}");
    assert!(line.contains("listing 1 hit a bug"), "{line}");
}

#[test]
fn a_panicking_observer_cannot_kill_the_loop() {
    let engine = PanickyEngine::new(&[]);
    let (on_panic, seen) = panic_recorder();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let observer: ReportObserver = Arc::new(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("observer bug");
        }
    });
    let ((outcome, origin), events) = with_sentry(|| async {
        let (sweep, mut options) = cleanup(&engine, Duration::from_secs(60));
        options.observer = Some(observer);
        options.on_panic = Some(on_panic);
        let origin = Instant::now();
        let mut svc = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(Duration::from_secs(150)).await;
        (svc.stop(STOP_DEADLINE).await, origin)
    });
    assert_eq!(outcome, LoopOutcome::Clean);
    assert_eq!(
        engine.lists_since(origin),
        [0, 60, 120].map(Duration::from_secs)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "observed every pass");
    assert_eq!(*seen.lock().expect("sites"), [PanicSite::Observer]);
    assert_eq!(
        panic_events(&events),
        [(
            "observer".to_string(),
            "observer bug".to_string(),
            "unix:///run/test.sock".to_string()
        )]
    );
}

/// Panics on its first subscription; later ones read the queued channel.
#[derive(Default)]
struct PanickyEvents {
    subscriptions: Mutex<Vec<Instant>>,
    queued: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Result<EngineEvent, DockerError>>>>,
}

impl PanickyEvents {
    fn queue(&self) -> UnboundedSender<Result<EngineEvent, DockerError>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.queued.lock().expect("queue") = Some(rx);
        tx
    }
}

impl EngineEvents for PanickyEvents {
    fn subscribe(&self, _: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        let n = {
            let mut subscriptions = self.subscriptions.lock().expect("subscriptions");
            subscriptions.push(Instant::now());
            subscriptions.len()
        };
        if n == 1 {
            panic!("follower bug");
        }
        match self.queued.lock().expect("queue").take() {
            Some(mut rx) => futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
            None => futures_util::stream::pending().boxed(),
        }
    }
}

#[test]
fn a_panicking_event_follower_is_restarted() {
    let engine = PanickyEngine::new(&[]);
    let events = Arc::new(PanickyEvents::default());
    let tx = events.queue();
    let (on_panic, seen) = panic_recorder();
    let ((origin, subscriptions), sentry_events) = with_sentry(|| async {
        let (sweep, mut options) = cleanup(&engine, Duration::from_secs(3600));
        options.min_gap = Duration::from_secs(1);
        options.events = Some(EventTrigger {
            source: Arc::clone(&events) as Arc<dyn EngineEvents>,
            options: EventOptions::with_debounce(Duration::from_secs(1)),
        });
        options.on_panic = Some(on_panic);
        let origin = Instant::now();
        let mut svc = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(Duration::from_secs(2)).await;
        tx.send(Ok(EngineEvent {
            action: "untag".into(),
            id: "sha256:x".into(),
            name: String::new(),
        }))
        .expect("follower listening");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(svc.stop(STOP_DEADLINE).await, LoopOutcome::Clean);
        let subscriptions = events.subscriptions.lock().expect("subs").clone();
        (origin, subscriptions)
    });
    assert_eq!(
        subscriptions
            .iter()
            .map(|t| *t - origin)
            .collect::<Vec<_>>(),
        [0, 1].map(Duration::from_secs),
        "re-subscribed after the backoff"
    );
    assert_eq!(
        engine.lists_since(origin),
        [0, 3].map(Duration::from_secs),
        "the event at 2 s, debounced 1 s, swept early"
    );
    assert_eq!(*seen.lock().expect("sites"), [PanicSite::Events]);
    assert_eq!(
        panic_events(&sentry_events),
        [(
            "events".to_string(),
            "follower bug".to_string(),
            "unix:///run/test.sock".to_string()
        )]
    );
}

#[test]
fn stop_reports_a_dead_loop_as_panicked() {
    let engine = PanickyEngine::new(&[1]);
    // The panic observer is the owner's code and unguarded: a panic there
    // is a bug that kills the loop task, which `stop` must not call clean.
    let on_panic: PanicObserver = Arc::new(|_| panic!("metrics bug"));
    let (outcome, _) = with_sentry(|| async {
        let (sweep, mut options) = cleanup(&engine, Duration::from_secs(60));
        options.on_panic = Some(on_panic);
        let mut svc = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!svc.is_running(), "the loop task died");
        svc.stop(STOP_DEADLINE).await
    });
    assert_eq!(outcome, LoopOutcome::Panicked("metrics bug".to_string()));
}

#[test]
fn a_caught_panic_is_marked_guarded_for_the_process_panic_hook() {
    // The hook is process-wide: keep only this test's panics.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_message(info.payload());
        if message.contains("hook test") {
            sink.lock()
                .expect("seen")
                .push((message, panic_is_guarded()));
        }
    }));
    let engine = Arc::new(PanickyEngine {
        inner: FakeDocker::default(),
        panic_on: vec![1],
        says: "hook test",
        lists: Mutex::new(Vec::new()),
    });
    let observer: ReportObserver = Arc::new(|_| panic!("hook test: observer"));
    let outside = with_sentry(|| async {
        let (sweep, mut options) = cleanup(&engine, Duration::from_secs(60));
        options.observer = Some(observer);
        let mut svc = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(Duration::from_secs(61)).await;
        svc.stop(STOP_DEADLINE).await;
        std::panic::catch_unwind(|| panic!("hook test: outside a loop")).is_err()
    })
    .0;
    std::panic::set_hook(previous);
    assert!(outside);
    assert_eq!(
        *seen.lock().expect("seen"),
        [
            ("listing 1 hook test".to_string(), true),
            ("hook test: observer".to_string(), true),
            ("hook test: outside a loop".to_string(), false)
        ]
    );
}
