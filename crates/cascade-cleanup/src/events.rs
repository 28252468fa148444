//! Early sweeps from the engine's event stream.
//!
//! The clock alone leaves a freshly orphaned snapshot on disk for up to one
//! interval. The follower watches the engine for the events that can orphan
//! a labelled image and asks the loop for an early pass: debounced, so a burst asks once, and
//! never more often than the loop's floor (enforced by the loop, not here).
//! An event never names what to remove: the pass lists and verifies as
//! always `[ref:scope_invariant]`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::docker::DockerError;

/// The actions that can leave an image dangling. Re-pointing a tag emits no
/// `untag` for the image that lost it (Docker 20.10): only a `tag` of the
/// new image (labelled, when it is ours), and a container `commit` (whose
/// labels are the container's, i.e. its image's). `load` and `import` can
/// re-point a tag too. Podman sends only a container `commit` for a commit,
/// calls a load `loadfromarchive`, and puts no labels on image events.
pub const ORPHANING_ACTIONS: [&str; 6] = [
    "tag",
    "untag",
    "commit",
    "load",
    "import",
    "loadfromarchive",
];

/// An engine event that can leave a labelled image dangling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// One of [`ORPHANING_ACTIONS`].
    pub action: String,
    /// The image or container the event is about.
    pub id: String,
    /// The name the event carries (`Actor.Attributes.name`): the tag of a
    /// `tag` or Podman `untag` event, the image ID of a Docker `untag`;
    /// empty when there is none.
    pub name: String,
}

/// Tells the follower which events the janitor's own removals caused
/// (tagging an image with its removal name, untagging it): those start no
/// early sweep, or every pass that removed something would start another.
pub type OwnEvents = Arc<dyn Fn(&EngineEvent) -> bool + Send + Sync>;

/// Where events come from: a real engine (`cascade-engine`), or a fake in tests.
pub trait EngineEvents: Send + Sync + 'static {
    /// A new subscription to [`ORPHANING_ACTIONS`] of images and containers
    /// carrying every label in `labels` (`key=value`). It yields an error or ends when
    /// the connection breaks.
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>>;
}

/// How events turn into early sweeps. Start from
/// [`EventOptions::with_debounce`] or the default, and change a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventOptions {
    /// Quiet time after the last event of a burst before asking for a pass.
    pub debounce: Duration,
    /// A burst that never goes quiet still asks after this long.
    pub max_delay: Duration,
    /// First wait before re-subscribing after the stream broke; doubles on
    /// each further failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between two attempts to re-subscribe.
    pub max_backoff: Duration,
    /// A subscription that yields nothing (no event, no error, no end) for
    /// this long is dropped and made again, with a warning: a half-open
    /// connection (the engine gone without a FIN) must not silence early
    /// sweeps for good. Default [`DEFAULT_EVENT_IDLE_LIMIT`].
    pub idle_limit: Duration,
}

/// Default debounce: long enough for one `docker commit` (tag, untag) to
/// settle, short enough that a snapshot is gone within seconds.
pub const DEFAULT_EVENT_DEBOUNCE: Duration = Duration::from_secs(5);

/// Default bound on a silent event stream. Docker sends no keepalive on
/// `GET /events`, so silence cannot tell a quiet engine from a dead
/// connection: after this long the follower re-subscribes (one warning
/// line). Ten minutes keeps a quiet engine at six cheap re-subscriptions an
/// hour, and a dead stream is noticed well within the default interval
/// (30 min), which still sweeps meanwhile.
pub const DEFAULT_EVENT_IDLE_LIMIT: Duration = Duration::from_secs(600);

impl EventOptions {
    /// The defaults with this debounce; a burst still asks after six times
    /// the debounce (at least a second).
    pub fn with_debounce(debounce: Duration) -> EventOptions {
        EventOptions {
            debounce,
            max_delay: debounce.saturating_mul(6).max(Duration::from_secs(1)),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            idle_limit: DEFAULT_EVENT_IDLE_LIMIT,
        }
    }
}

impl Default for EventOptions {
    fn default() -> EventOptions {
        EventOptions::with_debounce(DEFAULT_EVENT_DEBOUNCE)
    }
}

/// Follows `events` until `cancel` fires, calling `trigger.notify_one()` once
/// per burst of events that `own` does not claim. Re-subscribes with
/// exponential backoff when the stream breaks, and at once when it stays
/// silent for `idle_limit`.
pub async fn follow(
    events: Arc<dyn EngineEvents>,
    labels: Vec<String>,
    options: EventOptions,
    trigger: Arc<Notify>,
    cancel: CancellationToken,
    own: OwnEvents,
) {
    let mut backoff = options.min_backoff;
    loop {
        let subscribed_at = Instant::now();
        let mut stream = events.subscribe(&labels);
        // (first, last) event of the burst not yet turned into a request.
        let mut burst: Option<(Instant, Instant)> = None;
        let mut heard = subscribed_at;
        let broke = loop {
            let due =
                burst.map(|(first, last)| (last + options.debounce).min(first + options.max_delay));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = sleep_until(due) => {
                    tracing::debug!("engine events: asking for an early sweep");
                    trigger.notify_one();
                    burst = None;
                }
                item = stream.next() => match item {
                    Some(Ok(event)) => {
                        backoff = options.min_backoff;
                        let now = Instant::now();
                        heard = now;
                        if own(&event) {
                            tracing::trace!(action = %event.action, id = %event.id, "engine event of the janitor's own removal");
                            continue;
                        }
                        tracing::debug!(action = %event.action, id = %event.id, "engine event");
                        burst = Some(burst.map_or((now, now), |(first, _)| (first, now)));
                    }
                    Some(Err(error)) => break Some(error.message),
                    None => break Some("the engine closed the stream".to_string()),
                },
                _ = tokio::time::sleep_until(heard + options.idle_limit) => break None,
            }
        };
        if burst.is_some() {
            trigger.notify_one();
        }
        let Some(broke) = broke else {
            // Not a failure of the engine: no backoff, and the next
            // breakage starts from the shortest wait.
            tracing::warn!(
                silent_for = %humantime::format_duration(options.idle_limit),
                "engine event stream silent (no event, no keepalive); re-subscribing"
            );
            backoff = options.min_backoff;
            continue;
        };
        if subscribed_at.elapsed() >= options.max_backoff {
            // It was up for a while: this is a new failure, not a repeat.
            backoff = options.min_backoff;
        }
        tracing::warn!(
            error = %broke,
            retry_in = %humantime::format_duration(backoff),
            "engine event stream broke; the interval still applies, reconnecting"
        );
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
