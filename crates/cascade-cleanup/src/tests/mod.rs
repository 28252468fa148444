//! Tests of the sweep, its loop and the event follower, one submodule per
//! module they pin, on the one fake engine (`crate::fake`); the loop and
//! event tests run on paused time.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentry::protocol::Event;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fake::FakeDocker;
use crate::*;

mod engines;
mod events;
mod lifecycle;
mod pace;
mod panics;
mod sentry_report;
mod sweep;

fn config(min_age: Duration) -> SweepConfig {
    SweepConfig {
        min_age,
        ..SweepConfig::default()
    }
}

fn sweep(fake: &Arc<FakeDocker>, config: SweepConfig) -> DanglingImageSweep {
    DanglingImageSweep::new(Arc::clone(fake) as Arc<dyn DockerImages>, config)
}

/// Runs `f` on a paused current-thread runtime inside a Sentry test hub and
/// returns its output with every event captured.
fn with_sentry<F: Future>(f: impl FnOnce() -> F) -> (F::Output, Vec<Event<'static>>) {
    let mut out = None;
    let events = sentry::test::with_captured_events(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        out = Some(rt.block_on(f()));
    });
    (out.expect("ran"), events)
}

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
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
    (out, text)
}

fn ids(images: &[ImageRef]) -> Vec<String> {
    let mut v: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    v.sort();
    v
}

/// A loop as production runs it (`cascade-embed`'s `Janitor` does the
/// same for each engine): [`run_loop`] on a task the test owns, with the
/// token that stops it. No wrapper of the crate's stands in between.
struct OwnedLoop {
    cancel: CancellationToken,
    task: JoinHandle<LoopOutcome>,
}

/// The stop deadline the loop tests give their owner.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

impl OwnedLoop {
    /// Spawns `run_loop(sweep, options)` on the current runtime.
    fn spawn(sweep: &Arc<DanglingImageSweep>, options: LoopOptions) -> OwnedLoop {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_loop(Arc::clone(sweep), options, cancel.clone()));
        OwnedLoop { cancel, task }
    }

    fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// What an owner's stop does: cancel the token, await the task up to
    /// `deadline`, abort it after that; how it ended.
    async fn stop(&mut self, deadline: Duration) -> LoopOutcome {
        self.cancel.cancel();
        match tokio::time::timeout(deadline, &mut self.task).await {
            Ok(joined) => LoopOutcome::of_join(joined),
            Err(_) => {
                self.task.abort();
                LoopOutcome::of_join((&mut self.task).await)
            }
        }
    }
}

/// A sweep over `fake` with no minimum age, and a loop every `interval`.
fn every(fake: &Arc<FakeDocker>, interval: Duration) -> (Arc<DanglingImageSweep>, LoopOptions) {
    (
        Arc::new(sweep(fake, config(Duration::ZERO))),
        LoopOptions::every(interval),
    )
}

const MIN: Duration = Duration::from_secs(60);

/// One pass of a fresh sweep over `fake`, with the Sentry events it sent.
fn pass(fake: &Arc<FakeDocker>, config: SweepConfig) -> (SweepReport, Vec<Event<'static>>) {
    with_sentry(|| async { sweep(fake, config).run(&CancellationToken::new()).await })
}

/// Each skipped image with its reason, in report order.
fn reasons(report: &SweepReport) -> Vec<(&str, &str)> {
    report
        .skipped
        .iter()
        .map(|s| (s.image.id.as_str(), s.reason.as_str()))
        .collect()
}
