//! `lib.rs`'s `Telemetry`, wired to a real cleanup loop the way the binary
//! does it.

use std::sync::Arc;
use std::time::Duration;

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

#[tokio::test]
async fn wired_to_a_cleanup_loop_through_new_cyclic() {
    use cascade_cleanup::{DanglingImageCleanup, DanglingImageSweep, SweepConfig};
    use std::sync::Weak;

    let (t, _) = telemetry(HOUR);
    let (passed, mut pass_ended) = tokio::sync::mpsc::unbounded_channel();
    // The probe needs the cleanup and the cleanup needs the observer:
    // `Arc::new_cyclic` ties the knot with a Weak, so no reference cycle.
    let cleanup = Arc::new_cyclic(|me: &Weak<DanglingImageCleanup>| {
        let me = me.clone();
        let observe = t.engine(
            E1,
            Arc::new(move || me.upgrade().is_some_and(|c| c.is_running())),
        );
        let observe: cascade_cleanup::ReportObserver = Arc::new(move |report: &SweepReport| {
            observe(report);
            let _ = passed.send(());
        });
        DanglingImageCleanup::new(
            DanglingImageSweep::new(Arc::new(one_old_image()), SweepConfig::default()),
            HOUR,
            Duration::from_secs(5),
        )
        .with_observer(observe)
    });

    let h = t.health();
    assert!(!h.healthy, "not started yet: {h:?}");
    assert!(!h.engines[0].alive);

    assert!(cleanup.start());
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

    cleanup.stop().await;
    let h = t.health();
    assert!(!h.healthy);
    assert_eq!(
        h.engines[0].problem.as_deref(),
        Some("the sweep loop is not running")
    );
    drop(cleanup);
    assert!(!t.health().engines[0].alive, "a dropped loop reads as dead");
}
