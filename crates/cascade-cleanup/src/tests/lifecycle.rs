//! `lifecycle.rs`: the loop's schedule, overlap, stop and drop.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::fake::{FakeDocker, ours};

fn minutes(m: &[u32]) -> Vec<Duration> {
    m.iter().map(|&m| m * MIN).collect()
}

#[test]
fn loop_runs_at_start_and_every_interval() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let svc = service(&fake, 30 * MIN);
        assert!(svc.start());
        tokio::time::sleep(91 * MIN).await;
        assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
        tokio::time::sleep(120 * MIN).await;
        origin
    })
    .0;
    assert_eq!(
        fake.lists_started_since(origin),
        minutes(&[0, 30, 60, 90]),
        "one pass at start, one every interval, none after stop"
    );
}

#[test]
fn start_twice_warns_and_keeps_one_timer() {
    let fake = Arc::new(FakeDocker::default());
    let ((origin, _), logs) = with_logs(|| {
        with_sentry(|| async {
            let origin = Instant::now();
            let svc = service(&fake, 30 * MIN);
            assert!(svc.start());
            assert!(!svc.start(), "second start refused");
            tokio::time::sleep(61 * MIN).await;
            svc.stop().await;
            origin
        })
    });
    assert_eq!(
        fake.lists_started_since(origin),
        minutes(&[0, 30, 60]),
        "one timer"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("already started")),
        "{logs}"
    );
}

#[test]
fn stop_when_not_started_is_a_no_op_and_cycles_work() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let svc = service(&fake, 30 * MIN);
        assert_eq!(svc.stop().await, None);
        assert_eq!(svc.stop().await, None);
        for cycle in 1..=3 {
            assert!(svc.start(), "cycle {cycle}");
            assert!(svc.is_running());
            tokio::time::sleep(MIN).await;
            assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
            assert!(!svc.is_running());
        }
        origin
    })
    .0;
    assert_eq!(
        fake.lists_started_since(origin),
        minutes(&[0, 1, 2]),
        "each start runs a pass at once"
    );
}

/// A loop whose every pass lists for 45 minutes, overrunning its 30
/// minute interval.
fn overrunning(fake: &Arc<FakeDocker>) -> Arc<DanglingImageCleanup> {
    fake.edit(|s| s.list_delay = 45 * MIN);
    let cfg = SweepConfig {
        call_timeout: 24 * 60 * MIN,
        ..config(Duration::ZERO)
    };
    Arc::new(DanglingImageCleanup::new(
        sweep(fake, cfg),
        30 * MIN,
        Duration::from_secs(30),
    ))
}

#[test]
fn missed_ticks_are_skipped_not_caught_up() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let svc = overrunning(&fake);
        svc.start();
        tokio::time::sleep(180 * MIN).await;
        svc.stop().await;
        origin
    })
    .0;
    // Each pass ends 45 minutes after it started, when the next was due 15
    // minutes ago: the next one is due a whole interval after that end. A
    // catch-up would start at 45, 90 and 135 instead.
    assert_eq!(fake.lists_started_since(origin), minutes(&[0, 75, 150]));
}

#[test]
fn passes_never_overlap_whoever_starts_them() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let svc = overrunning(&fake);
        svc.start();
        let manual = tokio::spawn({
            let svc = Arc::clone(&svc);
            async move { svc.run_now().await }
        });
        tokio::time::sleep(180 * MIN).await;
        manual.await.expect("run_now");
        svc.stop().await;
        origin
    })
    .0;
    assert_eq!(fake.edit(|s| s.max_lists_in_flight), 1, "never two at once");
    // The loop's pass at 0; run_now waits for it (45); the loop's next pass,
    // due at 75, waits for run_now's (90), and is due again 30 minutes after
    // it asked, which has passed by its end at 135: 165.
    assert_eq!(fake.lists_started_since(origin), minutes(&[0, 45, 90, 165]));
}

#[test]
fn stop_during_a_pass_waits_for_a_safe_point() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..10).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| s.remove_delay = Duration::from_secs(2));
    with_sentry(|| async {
        let cfg = SweepConfig {
            concurrency: Concurrency::Fixed(NonZeroUsize::new(1).expect("nz")),
            ..config(Duration::ZERO)
        };
        let svc = DanglingImageCleanup::new(sweep(&fake, cfg), 30 * MIN, Duration::from_secs(30));
        svc.start();
        tokio::time::sleep(Duration::from_secs(3)).await; // second removal in flight
        let started = tokio::time::Instant::now();
        assert_eq!(svc.stop().await, Some(StopOutcome::Clean));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "waited for the removal in flight only"
        );
    });
    assert_eq!(fake.removed().len(), 2);
    assert_eq!(
        fake.edit(|s| s.removes_in_flight),
        0,
        "nothing left half done"
    );
}

#[test]
fn stop_abandons_a_pass_that_outlives_the_deadline() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.remove_hangs = true);
    with_sentry(|| async {
        let cfg = SweepConfig {
            call_timeout: Duration::from_secs(3600),
            ..config(Duration::ZERO)
        };
        let svc = DanglingImageCleanup::new(sweep(&fake, cfg), 30 * MIN, Duration::from_secs(10));
        svc.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = tokio::time::Instant::now();
        assert_eq!(svc.stop().await, Some(StopOutcome::DeadlineExceeded));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(!svc.is_running());
    });
}

#[test]
fn dropping_a_handle_ends_its_loop() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let handle = LoopHandle::start(
            Arc::new(sweep(&fake, config(Duration::ZERO))),
            LoopOptions::every(30 * MIN),
        );
        tokio::time::sleep(MIN).await;
        drop(handle);
        tokio::time::sleep(120 * MIN).await;
        origin
    })
    .0;
    assert_eq!(fake.lists_started_since(origin), minutes(&[0]));
}
