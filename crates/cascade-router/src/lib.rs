//! The janitor loops as the cascade router sees them: one worker processor
//! that brings every loop up and down in a defined order.
//!
//! The router owns a [`JanitorProcessor`] and calls `start` at boot and `stop`
//! at shutdown. Loops start in the order they were registered and are
//! cancelled in the reverse order, then awaited together. Both calls are
//! idempotent. The dangling-image loop is the first; the snapshot-eviction
//! and orphan-container loops implement [`JanitorLoop`] and slot in beside it
//! with [`JanitorProcessor::with_loop`].

use std::sync::Arc;

use async_trait::async_trait;
use cascade_cleanup::DanglingImageCleanup;

/// One periodic janitor loop.
#[async_trait]
pub trait JanitorLoop: Send + Sync + 'static {
    /// A short stable name for logs.
    fn name(&self) -> &str;
    /// Starts the loop; must not start a second timer when already running.
    fn start(&self);
    /// Asks the loop to start no new work, without waiting; `stop` follows.
    fn cancel(&self) {}
    /// Stops the loop and awaits its in-flight work; a no-op when stopped.
    async fn stop(&self);
}

#[async_trait]
impl JanitorLoop for DanglingImageCleanup {
    fn name(&self) -> &str {
        "dangling-images"
    }

    fn start(&self) {
        DanglingImageCleanup::start(self);
    }

    fn cancel(&self) {
        DanglingImageCleanup::cancel(self);
    }

    async fn stop(&self) {
        DanglingImageCleanup::stop(self).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Stopped,
    Started,
}

/// Starts and stops the registered loops as one unit.
pub struct JanitorProcessor {
    loops: Vec<Arc<dyn JanitorLoop>>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for JanitorProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.loops.iter().map(|l| l.name()).collect();
        f.debug_struct("JanitorProcessor")
            .field("loops", &names)
            .finish_non_exhaustive()
    }
}

impl Default for JanitorProcessor {
    fn default() -> Self {
        JanitorProcessor {
            loops: Vec::new(),
            state: tokio::sync::Mutex::new(State::Stopped),
        }
    }
}

impl JanitorProcessor {
    pub fn new() -> JanitorProcessor {
        JanitorProcessor::default()
    }

    /// Registers a loop; loops start in registration order.
    pub fn with_loop(mut self, janitor_loop: Arc<dyn JanitorLoop>) -> JanitorProcessor {
        self.loops.push(janitor_loop);
        self
    }

    /// Starts every loop in order. Returns false (and does nothing) when the
    /// processor is already started.
    pub async fn start(&self) -> bool {
        let mut state = self.state.lock().await;
        if *state == State::Started {
            tracing::warn!("janitor processor already started");
            return false;
        }
        for janitor_loop in &self.loops {
            tracing::debug!(name = janitor_loop.name(), "starting janitor loop");
            janitor_loop.start();
        }
        *state = State::Started;
        true
    }

    /// Stops every loop: first cancels each, in reverse order, so none starts
    /// new work while another is still finishing; then awaits them all
    /// together, so shutdown takes as long as the slowest loop's deadline,
    /// not the sum. Returns false when the processor was not started.
    pub async fn stop(&self) -> bool {
        let mut state = self.state.lock().await;
        if *state == State::Stopped {
            return false;
        }
        for janitor_loop in self.loops.iter().rev() {
            tracing::debug!(name = janitor_loop.name(), "stopping janitor loop");
            janitor_loop.cancel();
        }
        futures_util::future::join_all(self.loops.iter().rev().map(|l| l.stop())).await;
        *state = State::Stopped;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    struct FakeLoop {
        name: &'static str,
        log: Arc<Recorder>,
    }

    #[async_trait]
    impl JanitorLoop for FakeLoop {
        fn name(&self) -> &str {
            self.name
        }
        fn start(&self) {
            self.log
                .0
                .lock()
                .expect("log")
                .push(format!("start {}", self.name));
        }
        fn cancel(&self) {
            self.log
                .0
                .lock()
                .expect("log")
                .push(format!("cancel {}", self.name));
        }
        async fn stop(&self) {
            tokio::task::yield_now().await;
            self.log
                .0
                .lock()
                .expect("log")
                .push(format!("stop {}", self.name));
        }
    }

    fn processor(log: &Arc<Recorder>) -> JanitorProcessor {
        ["dangling-images", "snapshot-eviction", "orphan-containers"]
            .into_iter()
            .fold(JanitorProcessor::new(), |p, name| {
                p.with_loop(Arc::new(FakeLoop {
                    name,
                    log: Arc::clone(log),
                }))
            })
    }

    fn events(log: &Recorder) -> Vec<String> {
        std::mem::take(&mut *log.0.lock().expect("log"))
    }

    #[tokio::test]
    async fn starts_in_order_stops_in_reverse_idempotently() {
        let log = Arc::new(Recorder::default());
        let p = processor(&log);
        assert!(!p.stop().await, "stop before start is a no-op");
        assert!(events(&log).is_empty());
        assert!(p.start().await);
        assert!(!p.start().await, "second start does nothing");
        assert_eq!(
            events(&log),
            [
                "start dangling-images",
                "start snapshot-eviction",
                "start orphan-containers"
            ]
        );
        assert!(p.stop().await);
        assert!(!p.stop().await);
        assert_eq!(
            events(&log),
            [
                "cancel orphan-containers",
                "cancel snapshot-eviction",
                "cancel dangling-images",
                "stop orphan-containers",
                "stop snapshot-eviction",
                "stop dangling-images"
            ],
            "no loop starts new work while another is still stopping"
        );
        assert!(p.start().await, "cycles work");
        assert!(p.stop().await);
        assert_eq!(events(&log).len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn drives_the_real_dangling_image_loop() {
        use cascade_cleanup::fake::FakeDocker;
        use cascade_cleanup::{DanglingImageSweep, DockerImages, SweepConfig};
        use std::time::Duration;

        let engine = Arc::new(FakeDocker::default());
        let sweep = DanglingImageSweep::new(
            Arc::clone(&engine) as Arc<dyn DockerImages>,
            SweepConfig::default(),
        );
        let cleanup = Arc::new(DanglingImageCleanup::new(
            sweep,
            Duration::from_secs(60),
            Duration::from_secs(5),
        ));
        let p = JanitorProcessor::new().with_loop(Arc::clone(&cleanup) as Arc<dyn JanitorLoop>);
        let origin = tokio::time::Instant::now();
        p.start().await;
        tokio::time::sleep(Duration::from_secs(150)).await;
        assert!(cleanup.is_running());
        p.stop().await;
        assert!(!cleanup.is_running());
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            engine.lists_started_since(origin),
            [0, 60, 120].map(Duration::from_secs),
            "a pass at start and every interval, none after stop"
        );
    }
}
