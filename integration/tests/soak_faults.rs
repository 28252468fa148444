//! Faults hitting the real daemon mid-sweep while a router's churn runs
//! (`integration::soak`): the engine SIGKILLed and started again, the
//! engine frozen (SIGSTOP) past the daemon's call timeout and resumed, the
//! daemon SIGKILLed and started again by its supervisor. After each:
//! nothing protected lost (the auditor's ledger), the daemon alive or
//! restarted (only by the fault), a successful pass within
//! `faults::recovery_bound` of the fault's end (polled), and the daemon's
//! RSS and fds within the soak's bounds.
//!
//! `tests/faults.rs` covers the library loop against an engine that goes
//! away or hangs; these drive the binary, as operators run it.

use std::time::Duration;

use anyhow::Result;
use integration::engine::Family;
use integration::soak::faults::Fault;
use integration::soak::{self, Figures, SoakArgs};

/// A short soak with `fault` once, in its middle.
async fn soak_with(fault: Fault) -> Result<Figures> {
    let engine = integration::engine::MatrixEngine::current()?;
    // Podman (vfs) falls behind three operations a second on a loaded
    // 2-core machine (docs/RELIABILITY.md); one keeps its passes short.
    let rate = match engine.family {
        Family::Docker => 3.0,
        Family::Podman => 1.0,
    };
    let args = SoakArgs {
        engine: engine.name().to_string(),
        minutes: 0.25,
        rate,
        fault: vec![fault],
        interval: Duration::from_secs(2),
        min_age: Duration::from_secs(5),
        timeout: None,
        seed: None,
        janitor: integration::janitor_binary(),
        json: None,
        daemon_log: None,
    };
    let figures = soak::run(&args).await?;
    eprintln!("{}", figures.line());
    Ok(figures)
}

/// What every fault must leave true.
fn assert_survived(figures: &Figures, fault: Fault, restarts: u64) {
    assert_eq!(figures.problems(), Vec::<String>::new(), "{figures:#?}");
    assert_eq!(figures.audit.losses, Vec::<String>::new());
    assert_eq!(figures.faults.len(), 1, "{figures:#?}");
    let record = &figures.faults[0];
    assert_eq!(record.fault, fault);
    assert!(
        record.mid_sweep,
        "injected right after a removal: {record:?}"
    );
    assert!(
        record.recovery_ms.is_some(),
        "a successful pass after the fault: {record:?}"
    );
    assert_eq!(figures.restarts, restarts, "{figures:#?}");
    assert!(
        figures.audit.unexpected_exits.is_empty(),
        "{:?}",
        figures.audit.unexpected_exits
    );
    // The soak did its work: the daemon removed, the auditor checked.
    assert!(figures.audit.removed > 0, "{figures:#?}");
    assert!(figures.audit.protected_checked > 0, "{figures:#?}");
    assert!(figures.churn.made_dangling > 0, "{figures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_sigkilled_mid_sweep_and_restarted() -> Result<()> {
    let figures = soak_with(Fault::EngineKill).await?;
    assert_survived(&figures, Fault::EngineKill, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_frozen_past_the_call_timeout_then_resumed() -> Result<()> {
    let figures = soak_with(Fault::EngineStop).await?;
    assert_survived(&figures, Fault::EngineStop, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janitor_sigkilled_mid_sweep_and_started_again() -> Result<()> {
    let figures = soak_with(Fault::JanitorKill).await?;
    assert_survived(&figures, Fault::JanitorKill, 1);
    assert_eq!(figures.audit.starts, 2);
    Ok(())
}
