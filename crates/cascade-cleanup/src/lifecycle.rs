//! The periodic loop, as a future its owner runs on a task it owns:
//! [`run_loop`] sweeps on schedule and early on events until its token is
//! cancelled, and says why it ended ([`LoopOutcome`]); the owner keeps the
//! task's handle, cancels the token to stop it (a pass reaches a safe point:
//! no new removal starts, removals already sent are answered), and aborts
//! the task after its stop deadline ([`LoopOutcome::of_join`] says how each
//! ended). `cascade-embed`'s `Janitor` is that owner in production.
//!
//! A panic in a pass, in the observer or in the event follower is caught
//! where it happens: logged at error, sent to Sentry
//! (`source=dangling_image_cleanup_panic`), handed to the loop's
//! [`PanicObserver`] (metrics), and the loop goes on with its next pass. One
//! bad image or one buggy observer must not leave an engine unswept behind a
//! process that looks alive.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio::task::JoinError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::events::{EngineEvents, EventOptions};
use crate::sweep::{DanglingImageSweep, SweepReport};

/// The original loop's period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// How long an owner's stop waits for an in-flight pass before abandoning it.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The shortest interval an owner may configure. A pass is at least one
/// list call per engine; below a second the loop would sweep back to back
/// and load the engine for nothing (nothing in this deployment creates
/// images faster than that). `cascade-embed`'s `JanitorConfig` and the
/// binary's `--interval` refuse less.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest minimum gap an owner may configure. At 0s an event storm
/// (or a debounce of 0s) starts a pass the moment the previous one ends:
/// sweeps back to back.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The longest duration an owner may configure: longer ones overflow when
/// added to an `Instant` or multiplied (stale intervals × interval), and
/// are mistakes (100 years, `36500d`).
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 24 * 60 * 60);

/// Called with every pass's report (metrics, health, tests).
pub type ReportObserver = Arc<dyn Fn(&SweepReport) + Send + Sync>;

/// Where in a loop a panic was caught: the `where` of the panic metric and
/// of the Sentry event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PanicSite {
    /// A sweep pass.
    Sweep,
    /// The loop's [`ReportObserver`].
    Observer,
    /// The engine event follower.
    Events,
}

impl PanicSite {
    /// Every site, in the order of the enum.
    pub const ALL: [PanicSite; 3] = [PanicSite::Sweep, PanicSite::Observer, PanicSite::Events];

    /// The site's name in metrics and Sentry (`where`).
    pub fn as_str(self) -> &'static str {
        match self {
            PanicSite::Sweep => "sweep",
            PanicSite::Observer => "observer",
            PanicSite::Events => "events",
        }
    }
}

/// Told of every panic the loop caught and survived, after it was logged and
/// sent to Sentry (metrics count them). It runs on the loop's task and is
/// not guarded: it must not panic itself.
pub type PanicObserver = Arc<dyn Fn(PanicSite) + Send + Sync>;

/// Default floor between two passes, whatever asks for them.
pub const DEFAULT_MIN_GAP: Duration = Duration::from_secs(60);

/// Early sweeps from the engine's events.
#[derive(Clone)]
pub struct EventTrigger {
    /// The engine's event stream.
    pub source: Arc<dyn EngineEvents>,
    /// How its events become early passes.
    pub options: EventOptions,
}

impl std::fmt::Debug for EventTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTrigger")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// When a loop sweeps, and who hears about it.
#[derive(Clone)]
pub struct LoopOptions {
    /// Time between the starts of two scheduled passes.
    pub interval: Duration,
    /// No pass starts sooner than this after the previous one started.
    pub min_gap: Duration,
    /// Called with every pass's report; a panic in it is caught.
    pub observer: Option<ReportObserver>,
    /// Early passes when the engine untags or commits labelled images.
    pub events: Option<EventTrigger>,
    /// Told of every panic caught in the loop.
    pub on_panic: Option<PanicObserver>,
}

impl std::fmt::Debug for LoopOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopOptions")
            .field("interval", &self.interval)
            .field("min_gap", &self.min_gap)
            .field("observer", &self.observer.is_some())
            .field("events", &self.events)
            .field("on_panic", &self.on_panic.is_some())
            .finish()
    }
}

impl LoopOptions {
    /// Every `interval`, no events, no observer.
    pub fn every(interval: Duration) -> LoopOptions {
        LoopOptions {
            interval,
            min_gap: DEFAULT_MIN_GAP.min(interval),
            observer: None,
            events: None,
            on_panic: None,
        }
    }
}

/// How a loop ended: what [`run_loop`] returns (`Clean` when its token was
/// cancelled, `Refused`), or what its owner makes of a task that ended
/// otherwise ([`LoopOutcome::of_join`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopOutcome {
    /// Stopped when asked, idle or at a safe point of its pass.
    Clean,
    /// Its pass outlived the owner's stop deadline and was abandoned (the
    /// task aborted). Removals already sent may still complete in the
    /// engine; nothing that was not verified can be removed by abandoning.
    /// `[ref:scope_invariant]`
    DeadlineExceeded,
    /// The loop's task itself panicked, with this message, outside the
    /// pass, the observer and the follower, which are guarded (a panic there
    /// is caught and does not end the loop): a bug in the loop or in its
    /// owner's code, not a bad pass.
    Panicked(String),
    /// The task returned before it was asked to stop (an owner's job that
    /// returned; an engine loop never does).
    EndedEarly,
    /// The engine is not one the janitor has been proven on, and removal on
    /// it is not allowed (`SweepConfig::allow_unproven_engine`): the pass
    /// removed nothing, and the loop ended so that its owner learns it at
    /// once. The text (one line) names the engine and why.
    /// `[ref:proven_engines]`
    Refused(String),
}

impl LoopOutcome {
    /// How a loop task its owner awaited ended: what it returned, or how it
    /// died (a panic is `Panicked`; an abort is `DeadlineExceeded`, since an
    /// owner aborts a loop only after its stop deadline).
    pub fn of_join(joined: Result<LoopOutcome, JoinError>) -> LoopOutcome {
        match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => LoopOutcome::Panicked(panic_message(&*e.into_panic())),
            Err(_) => LoopOutcome::DeadlineExceeded,
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a format).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// A caught panic: logged at error, one Sentry event, then the owner's
/// observer.
fn caught(
    engine: &str,
    site: PanicSite,
    payload: &(dyn Any + Send),
    on_panic: Option<&PanicObserver>,
) {
    let message = panic_message(payload);
    tracing::error!(
        engine,
        r#where = site.as_str(),
        panic = %message,
        "dangling image cleanup caught a panic; the loop goes on with its next pass"
    );
    crate::sentry_report::panicked(engine, site, &message);
    if let Some(on_panic) = on_panic {
        on_panic(site);
    }
}

thread_local! {
    /// How many guarded polls (a pass, the follower) or observer calls are
    /// on this thread's stack right now.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True inside a pass, an observer call or the event follower of a loop,
/// where a panic is caught and reported by the loop itself. For a process
/// panic hook (Sentry's panic integration): such a panic already has its own
/// Sentry event (`source=dangling_image_cleanup_panic`), so the hook's
/// would be a duplicate in an issue of its own.
pub fn panic_is_guarded() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Marks this thread guarded until dropped; dropped during unwinding too,
/// after the panic hook has run.
struct GuardedScope;

impl GuardedScope {
    fn enter() -> GuardedScope {
        GUARDED.with(|g| g.set(g.get() + 1));
        GuardedScope
    }
}

impl Drop for GuardedScope {
    fn drop(&mut self) {
        GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
    }
}

/// `future` with every poll guarded, and its panic caught.
async fn guarded<T>(
    future: impl std::future::Future<Output = T>,
) -> Result<T, Box<dyn Any + Send>> {
    let mut future = std::pin::pin!(future);
    let polled = std::future::poll_fn(move |cx| {
        let _scope = GuardedScope::enter();
        future.as_mut().poll(cx)
    });
    AssertUnwindSafe(polled).catch_unwind().await
}

/// The loop as a future, for an owner that runs it on a task it owns and
/// supervises (such as `cascade-embed`'s `JoinSet`): it runs `sweep` now,
/// then `interval` after each pass started, and early when the engine's
/// events ask for it, until `cancel` fires, and then returns
/// [`LoopOutcome::Clean`]. A pass that overruns the interval swallows the
/// ticks it missed: passes never overlap and never run back to back to catch
/// up. No pass starts less than `min_gap` after the previous one started.
/// A pass refused on an unproven engine ends the loop with
/// [`LoopOutcome::Refused`], after the observer saw its report.
///
/// It takes the options as given: the floors ([`MIN_INTERVAL`],
/// [`MIN_GAP`]) are its owner's configuration's to enforce
/// (`cascade-embed`'s `JanitorConfig`).
///
/// Cancelling `cancel` lets the pass in flight reach a safe point (no new
/// removal starts; removals already sent are answered). Dropping the future
/// (aborting its task after the stop deadline) ends it at once, and the
/// event follower with it.
pub async fn run_loop(
    sweep: Arc<DanglingImageSweep>,
    options: LoopOptions,
    cancel: CancellationToken,
) -> LoopOutcome {
    let engine = sweep.config().engine_label.clone();
    let trigger = Arc::new(Notify::new());
    let _follower = options.events.clone().map(|events| {
        let own_sweep = Arc::clone(&sweep);
        AbortOnDropHandle::new(tokio::spawn(follow_guarded(
            events,
            sweep.config().scope.label_filters(),
            Arc::clone(&trigger),
            cancel.child_token(),
            engine.clone(),
            options.on_panic.clone(),
            Arc::new(move |event| own_sweep.caused(event)),
        )))
    });
    let mut due = Instant::now();
    let mut last_start: Option<Instant> = None;
    let end = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break LoopOutcome::Clean,
            _ = tokio::time::sleep_until(due) => {}
            _ = trigger.notified() => {
                let floor = last_start.map(|s| s + options.min_gap);
                if let Some(floor) = floor.filter(|f| *f > Instant::now()) {
                    tracing::debug!("early sweep requested; waiting for the minimum gap");
                    due = due.min(floor);
                    continue;
                }
                tracing::debug!("early sweep requested by engine events");
            }
        }
        let started = Instant::now();
        last_start = Some(started);
        // The pass runs on this task (so abandoning it at the deadline
        // aborts it), guarded so a panic ends the pass, not the loop.
        match guarded(sweep.run(&cancel)).await {
            Ok(report) => {
                if let Some(observe) = &options.observer
                    && let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        let _scope = GuardedScope::enter();
                        observe(&report)
                    }))
                {
                    caught(
                        &engine,
                        PanicSite::Observer,
                        &*panic,
                        options.on_panic.as_ref(),
                    );
                }
                if let Some(reason) = report.refused.filter(|_| !report.dry_run) {
                    break LoopOutcome::Refused(reason);
                }
            }
            Err(panic) => caught(
                &engine,
                PanicSite::Sweep,
                &*panic,
                options.on_panic.as_ref(),
            ),
        }
        due = started + options.interval;
        if due <= Instant::now() {
            due = Instant::now() + options.interval;
        }
    };
    tracing::debug!(?end, "dangling image cleanup loop ended");
    end
}

/// The event follower, restarted after a panic (with the stream's backoff,
/// so a follower that panics at once does not spin) until `cancel` fires.
async fn follow_guarded(
    events: EventTrigger,
    labels: Vec<String>,
    trigger: Arc<Notify>,
    cancel: CancellationToken,
    engine: String,
    on_panic: Option<PanicObserver>,
    own: crate::events::OwnEvents,
) {
    let mut backoff = events.options.min_backoff;
    loop {
        let follow = crate::events::follow(
            Arc::clone(&events.source),
            labels.clone(),
            events.options,
            Arc::clone(&trigger),
            cancel.clone(),
            Arc::clone(&own),
        );
        match guarded(follow).await {
            // `follow` returns only when cancelled.
            Ok(()) => return,
            Err(panic) => caught(&engine, PanicSite::Events, &*panic, on_panic.as_ref()),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(events.options.max_backoff);
    }
}
