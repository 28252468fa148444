//! `lib.rs`'s `Telemetry`, wired to a real cleanup loop the way the binary
//! does it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cascade_cleanup::fake::{FakeDocker, ours};
use cascade_cleanup::{ListedImage, SweepReport};

use super::*;

/// An engine holding one old, labelled, dangling image of 4096 bytes.
fn one_old_image() -> FakeDocker {
    FakeDocker::with_images(vec![ListedImage {
        size: 4096,
        ..ours("sha256:aaaa")
    }])
}

/// Holds the loop's liveness flag up while the task that owns it runs; it
/// falls when the task ends, whichever way (return, panic, abort).
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn wired_to_run_loop_on_a_task_its_owner_holds() {
    use cascade_cleanup::{DanglingImageSweep, LoopOptions, LoopOutcome, SweepConfig, run_loop};
    use tokio_util::sync::CancellationToken;

    let (t, _) = telemetry(HOUR);
    let (passed, mut pass_ended) = tokio::sync::mpsc::unbounded_channel();
    // The probe reads a flag the loop's task holds up while it runs, as
    // `cascade-embed` wires it: no reference from the observer to the loop.
    let alive = Arc::new(AtomicBool::new(false));
    let probe = Arc::clone(&alive);
    let observe = t.engine(E1, Arc::new(move || probe.load(Ordering::SeqCst)));
    let observe: cascade_cleanup::ReportObserver = Arc::new(move |report: &SweepReport| {
        observe(report);
        let _ = passed.send(());
    });
    let sweep = Arc::new(DanglingImageSweep::new(
        Arc::new(one_old_image()),
        SweepConfig::default(),
    ));
    let options = LoopOptions {
        observer: Some(observe),
        ..LoopOptions::every(HOUR)
    };
    let start = |cancel: CancellationToken| {
        alive.store(true, Ordering::SeqCst);
        let held = Alive(Arc::clone(&alive));
        let (sweep, options) = (Arc::clone(&sweep), options.clone());
        tokio::spawn(async move {
            let _held = held;
            run_loop(sweep, options, cancel).await
        })
    };

    let h = t.health();
    assert!(!h.healthy, "not started yet: {h:?}");
    assert!(!h.engines[0].alive);

    let cancel = CancellationToken::new();
    let task = start(cancel.clone());
    pass_ended
        .recv()
        .await
        .expect("the first pass runs at start");
    let h = t.health();
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.engines[0].seconds_since_last_success, Some(0));
    let text = t.render();
    let e = [("engine", E1)];
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 1.0);
    assert_eq!(
        v(&text, "cascade_janitor_reclaimed_bytes_total", &e),
        4096.0
    );
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 1.0);

    cancel.cancel();
    assert_eq!(LoopOutcome::of_join(task.await), LoopOutcome::Clean);
    let h = t.health();
    assert!(!h.healthy);
    assert_eq!(
        h.engines[0].problem.as_deref(),
        Some("the sweep loop is not running")
    );

    // Started again, then dropped by its owner (aborted): dead at once.
    let task = start(CancellationToken::new());
    pass_ended.recv().await.expect("a pass at the restart");
    assert!(t.health().engines[0].alive);
    task.abort();
    assert_eq!(
        LoopOutcome::of_join(task.await),
        LoopOutcome::DeadlineExceeded
    );
    assert!(!t.health().engines[0].alive, "a dropped loop reads as dead");
}
