//! `health.rs`: the health verdict per engine and for the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

#[test]
fn no_engine_is_unhealthy() {
    let (t, _) = telemetry(HOUR);
    let h = t.health();
    assert!(!h.healthy);
    assert!(h.engines.is_empty());
}

#[test]
fn healthy_until_stale_after_without_a_pass() {
    let (t, clock) = telemetry(HOUR);
    let _observe = t.engine(E1, always_alive());
    assert!(t.health().healthy);
    clock.advance(HOUR);
    let h = t.health();
    assert!(h.healthy, "exactly stale_after is still fresh: {h:?}");
    assert_eq!(h.engines[0].seconds_since_last_pass, None);
    clock.advance(Duration::from_secs(1));
    let h = t.health();
    assert!(!h.healthy);
    assert!(!h.engines[0].healthy);
    assert!(h.engines[0].alive);
    let problem = h.engines[0].problem.as_deref().unwrap_or_default();
    assert!(
        problem.contains("since registration 3601 s ago"),
        "{problem}"
    );
}

#[test]
fn a_pass_of_any_result_keeps_the_loop_fresh() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(HOUR);
    assert!(t.health().healthy);
    clock.advance(Duration::from_secs(1));
    assert!(!t.health().healthy);
    // A failed scan still proves the loop runs.
    observe(&scan_failed_report());
    let h = t.health();
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.engines[0].seconds_since_last_pass, Some(0));
    assert_eq!(h.engines[0].seconds_since_last_success, Some(3601));
    clock.advance(Duration::from_secs(10));
    observe(&partial_report());
    let h = t.health();
    assert_eq!(h.engines[0].seconds_since_last_pass, Some(0));
    assert_eq!(h.engines[0].seconds_since_last_success, Some(3611));
}

#[test]
fn a_dead_loop_is_unhealthy_at_once_and_spoils_the_whole_process() {
    let (t, _) = telemetry(HOUR);
    let alive = Arc::new(AtomicBool::new(true));
    let one = t.engine(E1, always_alive());
    let two = t.engine(E2, probe(&alive));
    one(&success_report());
    two(&success_report());
    assert!(t.health().healthy);
    alive.store(false, Ordering::SeqCst);
    let h = t.health();
    assert!(!h.healthy);
    assert!(h.engines[0].healthy);
    assert_eq!(h.engines[1].engine, E2);
    assert!(!h.engines[1].alive);
    assert!(!h.engines[1].healthy);
    assert_eq!(
        h.engines[1].problem.as_deref(),
        Some("the sweep loop is not running")
    );
    alive.store(true, Ordering::SeqCst);
    assert!(t.health().healthy);
}

#[test]
fn health_json_shape() {
    let (t, clock) = telemetry(Duration::from_secs(5400));
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(Duration::from_secs(12));
    let json = serde_json::to_value(t.health()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "healthy": true,
            "stale_after_seconds": 5400,
            "engines": [{
                "engine": E1,
                "healthy": true,
                "alive": true,
                "seconds_since_last_pass": 12,
                "seconds_since_last_success": 12,
            }],
        })
    );
}
