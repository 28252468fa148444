//! `lifecycle.rs`: the loop's schedule, overlap, stop and abort, driven
//! through `run_loop` on a task the test owns, as its production owner
//! (`cascade-embed`'s `Janitor`) runs it. Starting twice and stopping when
//! not started are the owner's contract, pinned in `cascade-embed`.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::fake::{FakeDocker, FakeEvents, ours};

fn minutes(m: &[u32]) -> Vec<Duration> {
    m.iter().map(|&m| m * MIN).collect()
}

#[test]
fn loop_runs_at_start_and_every_interval() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let (sweep, options) = every(&fake, 30 * MIN);
        let mut owned = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(91 * MIN).await;
        assert_eq!(owned.stop(STOP_DEADLINE).await, LoopOutcome::Clean);
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
fn a_sweep_is_looped_again_after_its_loop_stopped() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let (sweep, options) = every(&fake, 30 * MIN);
        for cycle in 1..=3 {
            let mut owned = OwnedLoop::spawn(&sweep, options.clone());
            tokio::time::sleep(MIN).await;
            assert!(owned.is_running(), "cycle {cycle}");
            assert_eq!(owned.stop(STOP_DEADLINE).await, LoopOutcome::Clean);
            assert!(!owned.is_running());
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

/// A sweep whose every pass lists for 45 minutes, overrunning the 30
/// minute interval of its loop.
fn overrunning(fake: &Arc<FakeDocker>) -> (Arc<DanglingImageSweep>, LoopOptions) {
    fake.edit(|s| s.list_delay = 45 * MIN);
    let cfg = SweepConfig {
        call_timeout: 24 * 60 * MIN,
        ..config(Duration::ZERO)
    };
    (Arc::new(sweep(fake, cfg)), LoopOptions::every(30 * MIN))
}

#[test]
fn missed_ticks_are_skipped_not_caught_up() {
    let fake = Arc::new(FakeDocker::default());
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let (sweep, options) = overrunning(&fake);
        let mut owned = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(180 * MIN).await;
        owned.stop(STOP_DEADLINE).await;
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
        let (sweep, options) = overrunning(&fake);
        let mut owned = OwnedLoop::spawn(&sweep, options);
        // One pass now, outside the schedule, on the same sweep.
        let manual = tokio::spawn({
            let sweep = Arc::clone(&sweep);
            async move { sweep.run(&CancellationToken::new()).await }
        });
        tokio::time::sleep(180 * MIN).await;
        manual.await.expect("manual pass");
        owned.stop(STOP_DEADLINE).await;
        origin
    })
    .0;
    assert_eq!(fake.edit(|s| s.max_lists_in_flight), 1, "never two at once");
    // The loop's pass at 0; the manual one waits for it (45); the loop's
    // next pass, due at 75, waits for the manual one's (90), and is due
    // again 30 minutes after it asked, which has passed by its end at 135:
    // 165.
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
        let sweep = Arc::new(sweep(&fake, cfg));
        let mut owned = OwnedLoop::spawn(&sweep, LoopOptions::every(30 * MIN));
        tokio::time::sleep(Duration::from_secs(3)).await; // second removal in flight
        let started = tokio::time::Instant::now();
        assert_eq!(owned.stop(STOP_DEADLINE).await, LoopOutcome::Clean);
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
        let sweep = Arc::new(sweep(&fake, cfg));
        let mut owned = OwnedLoop::spawn(&sweep, LoopOptions::every(30 * MIN));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = tokio::time::Instant::now();
        assert_eq!(
            owned.stop(Duration::from_secs(10)).await,
            LoopOutcome::DeadlineExceeded
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(!owned.is_running());
    });
}

/// An owner that drops the loop (the `Janitor` dropped, its tasks aborted)
/// ends it at once, and its event follower with it: a loop never outlives
/// its owner.
#[test]
fn aborting_the_loop_ends_it_and_its_follower() {
    let fake = Arc::new(FakeDocker::default());
    let events = Arc::new(FakeEvents::default());
    let tx = events.queue();
    let origin = with_sentry(|| async {
        let origin = Instant::now();
        let (sweep, mut options) = every(&fake, 30 * MIN);
        options.events = Some(EventTrigger {
            source: Arc::clone(&events) as Arc<dyn EngineEvents>,
            options: EventOptions::default(),
        });
        let owned = OwnedLoop::spawn(&sweep, options);
        tokio::time::sleep(MIN).await;
        owned.task.abort();
        tokio::time::sleep(120 * MIN).await;
        assert!(tx.is_closed(), "the subscription was dropped");
        origin
    })
    .0;
    assert_eq!(fake.lists_started_since(origin), minutes(&[0]));
}
