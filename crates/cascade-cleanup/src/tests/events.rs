//! `events.rs`: early sweeps from the engine's event stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::fake::{FakeDocker, FakeEvents, untag};

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|&s| Duration::from_secs(s)).collect()
}

/// A loop every 30 minutes over `fake`, with this minimum gap, following
/// `events` with a debounce of 5 s; started on a task the test owns.
fn evented(fake: &Arc<FakeDocker>, events: &Arc<FakeEvents>, min_gap: Duration) -> OwnedLoop {
    let (sweep, options) = every(fake, 30 * MIN);
    let options = LoopOptions {
        min_gap,
        events: Some(EventTrigger {
            source: Arc::clone(events) as Arc<dyn EngineEvents>,
            options: EventOptions::with_debounce(Duration::from_secs(5)),
        }),
        ..options
    };
    OwnedLoop::spawn(&sweep, options)
}

#[test]
fn a_burst_of_events_triggers_one_early_sweep() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let mut svc = evented(&fake, &events, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(60)).await;
        for _ in 0..5 {
            tx.send(untag()).expect("send");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(10 * MIN).await;
        svc.stop(STOP_DEADLINE).await;
        origin
    })
    .0;
    // Events at 60..=64 s: one pass 5 s (the debounce) after the last, and
    // no other until the interval.
    assert_eq!(fake.lists_started_since(origin), secs(&[0, 69]));
    assert_eq!(
        events.labels_seen()[0],
        vec!["cascade.managed=true".to_string()]
    );
}

#[test]
fn early_sweeps_respect_the_floor() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let mut svc = evented(&fake, &events, 2 * MIN);
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(untag()).expect("send");
        tokio::time::sleep(5 * MIN).await;
        svc.stop(STOP_DEADLINE).await;
        origin
    })
    .0;
    // Asked for at 6 s (1 s + the debounce): moved to the floor, 2 minutes
    // after the pass at start.
    assert_eq!(fake.lists_started_since(origin), secs(&[0, 120]));
}

#[test]
fn a_broken_event_stream_is_resubscribed_with_backoff() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let started = with_sentry(|| async {
        let started = Instant::now();
        let mut svc = evented(&fake, &events, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(20)).await;
        // It came back: events flow again and trigger a sweep.
        let tx = events.queue();
        tokio::time::sleep(Duration::from_secs(20)).await;
        tx.send(untag()).expect("send");
        tokio::time::sleep(Duration::from_secs(10)).await;
        svc.stop(STOP_DEADLINE).await;
        started
    })
    .0;
    let at: Vec<Duration> = events
        .subscribed_at()
        .iter()
        .map(|t| *t - started)
        .collect();
    // Fails at 0, 1, 3, 7, 15 s (the wait doubles); the 31 s attempt gets
    // the queued stream, and no other attempt follows.
    assert_eq!(at, secs(&[0, 1, 3, 7, 15, 31]));
    // It came back: the event at 40 s triggers a pass 5 s later.
    assert_eq!(fake.lists_started_since(started), secs(&[0, 45]));
}

#[test]
fn events_stop_with_the_loop() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    with_sentry(|| async {
        let mut svc = evented(&fake, &events, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(svc.stop(STOP_DEADLINE).await, LoopOutcome::Clean);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(tx.is_closed(), "the subscription was dropped");
    });
}

#[test]
fn a_silent_event_stream_is_resubscribed_with_a_warning() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    // Three subscriptions that stay open and yield nothing unless sent to,
    // like a half-open connection.
    let senders: Vec<_> = (0..3).map(|_| events.queue()).collect();
    let limit = DEFAULT_EVENT_IDLE_LIMIT;
    let (origin, logs) = with_logs(|| {
        with_sentry(|| async {
            let origin = Instant::now();
            let mut svc = evented(&fake, &events, Duration::from_secs(10));
            // An event on the second subscription, 1 s before its limit,
            // restarts the count.
            tokio::time::sleep_until(origin + 2 * limit - Duration::from_secs(1)).await;
            senders[1].send(untag()).expect("send");
            tokio::time::sleep_until(origin + 3 * limit).await;
            svc.stop(STOP_DEADLINE).await;
            origin
        })
        .0
    });
    let at: Vec<Duration> = events.subscribed_at().iter().map(|t| *t - origin).collect();
    assert_eq!(
        at,
        vec![Duration::ZERO, limit, 3 * limit - Duration::from_secs(1)],
        "re-subscribed after {limit:?} of silence, counted from the last event"
    );
    assert_eq!(
        logs.matches("engine event stream silent").count(),
        2,
        "one warning per re-subscription: {logs}"
    );
}
