//! The dangling-image cleanup: one sweep and the loop that repeats it.
//!
//! The cascade router commits every finished work item to
//! `cascade-snapshot-<project>-<workitem>:latest`; each re-run re-points the
//! tag and leaves the previous image dangling and untracked. A sweep finds
//! those images and removes them, and nothing else:
//!
//! 1. **list** with the scope's filters (dangling and every label);
//! 2. **verify** each candidate ourselves, because the engine's filter is not
//!    a safety boundary `[ref:scope_invariant]`;
//! 3. **age check**: younger than the minimum age may be a running build step
//!    (age on the engine's clock, read once per pass);
//! 4. **remove** with `force=false, noprune=true`, a few at a time (a fixed
//!    number, or a window that follows the engine's latency: [`pace`]), so exactly
//!    the verified image goes and never an untagged parent; never one tagged
//!    since the listing: by its dangling name on the containerd store, by
//!    its removal name elsewhere; and only on an engine the table of
//!    [`proven`] engines admits (`[ref:proven_engines]`): each pass first
//!    identifies the engine, and an engine that deletes parents anyway
//!    (Podman 4.3) has its removals checked parent by parent;
//! 5. **classify** each failure (`cascade-classify`) and **report** the ones
//!    an operator must see to Sentry.
//!
//! [`DanglingImageSweep::run`] returns a [`SweepReport`]; [`run_loop`] is the
//! periodic loop as a future, for an owner that runs it on a task it owns
//! and supervises (`cascade-embed`'s `Janitor`), and says how it ended
//! ([`LoopOutcome`]). The loop survives a panic in a pass, its observer or
//! its event follower, and reports it. [`census`] counts the scope for `doctor`.
//! Docker access goes through the [`DockerImages`] and [`EngineEvents`]
//! traits; `cascade-engine` implements them for a real engine, so this crate
//! knows no Docker client.
//! With cargo feature `test-support`, `fake` is the one fake engine every
//! crate's unit tests use.

mod census;
pub mod disk;
mod docker;
mod engine;
pub mod events;
mod lifecycle;
pub mod pace;
mod parents;
pub mod proven;
pub mod sentry_report;
mod sweep;

pub use census::{ScopeCensus, census};
pub use docker::{DockerError, DockerImages, ListedImage, RemovalAnswer};
pub use engine::{
    DANGLING_PREFIX, EngineFacts, EngineIdentity, EngineSummary, ImageStore, Implementation,
    Release,
};
pub use events::{
    DEFAULT_EVENT_DEBOUNCE, DEFAULT_EVENT_IDLE_LIMIT, EngineEvent, EngineEvents, EventOptions,
    OwnEvents,
};
pub use lifecycle::{
    DEFAULT_INTERVAL, DEFAULT_MIN_GAP, DEFAULT_STOP_DEADLINE, EventTrigger, LoopOptions,
    LoopOutcome, MAX_DURATION, MIN_GAP, MIN_INTERVAL, PanicObserver, PanicSite, ReportObserver,
    panic_is_guarded, panic_message, run_loop,
};
pub use pace::{Concurrency, PaceLimits, RemovalPace};
pub use proven::{Admission, PROVEN_ENGINES, ProvenEngine, RemovalMethod, RemovalStrategy};
pub use sweep::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_MIN_AGE, DanglingImageSweep, Failed,
    ImageRef, NoProgress, ReclaimedSource, SkipReason, Skipped, SweepConfig, SweepProgress,
    SweepReport,
};

#[cfg(any(test, feature = "test-support"))]
pub mod fake;
#[cfg(test)]
mod tests;
