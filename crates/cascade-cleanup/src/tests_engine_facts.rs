//! What a sweep takes from the engine besides images: its clock (ages are
//! the engine's), and its event stream, which must not go silent for good.
//! Paused time throughout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::fake::{FakeDocker, image, now};
use crate::*;

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f)
}

const HOUR: i64 = 3600;

/// Removed IDs with the engine's clock at `engine_time`, min age 1 h: one
/// image created now and one 90 minutes ago, on this host's clock.
fn removed_with_engine_clock(engine_time: Option<i64>) -> Vec<String> {
    let ours = [("cascade.managed", "true")];
    let fake = Arc::new(FakeDocker::with_images(vec![
        image("sha256:just-made", &ours, &[], 0),
        image("sha256:ninety-minutes", &ours, &[], 90 * 60),
    ]));
    fake.edit(|s| s.engine_time = engine_time);
    let sweep = DanglingImageSweep::new(
        Arc::clone(&fake) as Arc<dyn DockerImages>,
        SweepConfig {
            min_age: Duration::from_secs(3600),
            ..SweepConfig::default()
        },
    );
    paused(sweep.run(&CancellationToken::new()));
    fake.removed()
}

#[test]
fn ages_are_measured_on_the_engines_clock() {
    assert_eq!(
        removed_with_engine_clock(None),
        vec!["sha256:ninety-minutes"],
        "an engine that does not say: this host's clock"
    );
    assert_eq!(
        removed_with_engine_clock(Some(now())),
        vec!["sha256:ninety-minutes"]
    );
    assert_eq!(
        removed_with_engine_clock(Some(now() + 2 * HOUR)),
        vec!["sha256:just-made", "sha256:ninety-minutes"],
        "the engine is 2 h ahead: both are old on its clock"
    );
    assert_eq!(
        removed_with_engine_clock(Some(now() - 2 * HOUR)),
        Vec::<String>::new(),
        "the engine is 2 h behind: both are young on its clock"
    );
}

/// Subscriptions that stay open and yield nothing, like a half-open
/// connection, unless the test sends on the channel of the latest one.
#[derive(Default)]
struct SilentEvents {
    subscribed_at: Mutex<Vec<tokio::time::Instant>>,
    latest: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Result<EngineEvent, DockerError>>>>,
}

impl EngineEvents for SilentEvents {
    fn subscribe(
        &self,
        _labels: &[String],
    ) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        self.subscribed_at
            .lock()
            .expect("s")
            .push(tokio::time::Instant::now());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        *self.latest.lock().expect("l") = Some(tx);
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
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

#[test]
fn a_silent_event_stream_is_resubscribed_with_a_warning() {
    let events = Arc::new(SilentEvents::default());
    let limit = DEFAULT_EVENT_IDLE_LIMIT;
    let ((), logs) = with_logs(|| {
        paused(async {
            let started = tokio::time::Instant::now();
            let cancel = CancellationToken::new();
            let follower = tokio::spawn(events::follow(
                Arc::clone(&events) as Arc<dyn EngineEvents>,
                vec!["cascade.managed=true".into()],
                EventOptions::default(),
                Arc::new(Notify::new()),
                cancel.clone(),
            ));
            // Silent from the start: re-subscribed at the limit.
            tokio::time::sleep(limit + Duration::from_secs(1)).await;
            // An event 1 s before the next limit restarts the count.
            tokio::time::sleep_until(started + 2 * limit - Duration::from_secs(1)).await;
            let tx = events
                .latest
                .lock()
                .expect("l")
                .clone()
                .expect("subscribed");
            tx.send(Ok(EngineEvent {
                action: "tag".into(),
                id: "sha256:x".into(),
            }))
            .expect("send");
            tokio::time::sleep_until(started + 3 * limit).await;
            cancel.cancel();
            follower.await.expect("follower");
        })
    });
    let at = events.subscribed_at.lock().expect("s").clone();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![limit, 2 * limit - Duration::from_secs(1)],
        "re-subscribed after {limit:?} of silence, counted from the last event"
    );
    assert_eq!(
        logs.matches("engine event stream silent").count(),
        2,
        "one warning per re-subscription: {logs}"
    );
    assert!(logs.contains("WARN"), "{logs}");
}
