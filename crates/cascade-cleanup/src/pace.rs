//! How many removals a pass keeps in flight, and when it pauses: a pure
//! controller, fed with each removal's latency and outcome and the time.
//!
//! The engine the janitor sweeps also serves the router's own calls
//! (`POST /commit`). A fixed number of `DELETE`s in flight can take most of
//! the engine from them: on the classic store the engine serialises deletes,
//! and on the containerd store each one waits for a full garbage collection
//! (docs/containerd-store.md). [`RemovalPacer`] keeps a window of removals in
//! flight, Vegas-style, from the latency of our own removals:
//!
//! - the **baseline** is the lowest latency seen this pass (a pass starts a
//!   new pacer, so it is re-learned every pass); samples taken at window 1,
//!   where our own load cannot be what inflated them, also drag it upwards
//!   slowly ([`BASELINE_DRIFT`]), so a baseline learned on an idle engine
//!   does not pin a busier engine's pass at window 1 forever;
//! - the **recent** latency is a moving average of the last few samples;
//! - recent ≤ [`GROW_BELOW`] × baseline: the engine keeps up; after a
//!   window's worth of such samples the window grows by one, up to `max`;
//! - recent ≥ [`SHRINK_AT`] × baseline, or a transient failure (timeout,
//!   429/5xx): the window halves ([`SHRINK_FACTOR`]), at most once per
//!   round of removals that were already in flight, never below 1;
//! - at window 1 and still inflated: before the next removal, a pause as
//!   long as the excess latency ([`PAUSE_PER_EXCESS`], at most
//!   [`MAX_PAUSE`]), so the engine gets idle time to serve other clients.
//!
//! [`Concurrency::Fixed`] is a constant window with no pause. Nothing here does I/O or reads a clock: the sweep passes the time.

use std::num::NonZeroUsize;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use tokio::time::Instant;

use crate::engine::ImageStore;

/// Most removals in flight on the classic (graph-driver) store. The engine
/// serialises deletes there, so more in flight mostly queues; 4 was the
/// fastest fixed setting measured on Docker 20.10. Set from the
/// measurements in docs/BENCHMARKS.md.
pub const CLASSIC_MAX_WINDOW: NonZeroUsize = NonZeroUsize::new(4).expect("non-zero");

/// Removals sent at once, per burst, on the containerd store
/// (`--concurrency auto`). Every removal there waits for a full synchronous
/// containerd GC that blocks all metadata writers, the router's commits
/// included; removals in flight together share one GC. Measured on Docker
/// 28.5 (docs/BENCHMARKS.md, docs/containerd-store.md): 32 at once removed
/// 11.5 images per GC against 1 at 1 or 2 in flight, at 5.6x the rate.
pub const CONTAINERD_BURST: NonZeroUsize = NonZeroUsize::new(32).expect("non-zero");

/// After each burst on the containerd store, a rest this many times the
/// burst's length: the engine is then free for its other clients half of
/// the time, and their commits wait only when they land in a burst.
/// Measured on Docker 28.5: the commit probe's p50 stayed at idle (133 ms
/// against 143 ms), where a steady 1 or 4 in flight raised it 4x and 8x,
/// and the sweep still took 0.62x as long as a steady 4.
pub const BURST_REST: f64 = 1.0;

/// The longest rest after a burst: a very slow engine is still swept.
pub const MAX_BURST_REST: Duration = Duration::from_secs(10);

/// The window a pass starts with. At 1 the first samples are not inflated
/// by our own load, so the baseline is the engine's own latency.
pub const INITIAL_WINDOW: NonZeroUsize = NonZeroUsize::MIN;

/// Recent latency at most this many times the baseline counts as "the
/// engine keeps up": the window may grow. Between this and [`SHRINK_AT`] it
/// holds, so it does not flap around one threshold.
pub const GROW_BELOW: f64 = 1.5;

/// Recent latency at least this many times the baseline counts as
/// inflated: the target is that other clients keep their p99 within 2× of
/// idle, and our own removals wait in the same queues as their calls.
pub const SHRINK_AT: f64 = 2.0;

/// What the window is multiplied by when latency inflates or a removal
/// fails transiently (rounded down, at least 1): multiplicative decrease
/// backs off within a few rounds, additive increase probes back slowly.
pub const SHRINK_FACTOR: f64 = 0.5;

/// Weight of each new sample in the recent latency (an exponential moving
/// average): about the last four removals, so one slow removal does not
/// halve the window, but a trend does within a round.
pub const RECENT_WEIGHT: f64 = 0.25;

/// At window 1, each sample moves the baseline this fraction of the way up
/// towards it (a lower sample replaces it at once). With 1/64, a baseline
/// learned on an idle engine follows a lasting slowdown caused by others
/// (or by a growing store) in about a hundred removals, instead of pausing
/// the rest of the pass; our own load cannot feed it, since only window-1
/// samples count.
pub const BASELINE_DRIFT: f64 = 1.0 / 64.0;

/// Seconds of pause per second of excess latency (recent minus baseline)
/// at window 1: the engine gets as much idle time as our removal cost other
/// clients in waiting.
pub const PAUSE_PER_EXCESS: f64 = 1.0;

/// The longest pause between two removals: a slow engine still gets swept,
/// at worst about one removal per second plus its latency.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Latencies below this are compared as if they were this (and a zero
/// baseline would make every ratio infinite). A classic-store removal
/// (re-check and `DELETE`) answers in 1-3 ms on an idle engine; with a
/// 1 ms floor, scheduling noise alone doubled that ratio and held the
/// window at 1 with pauses: `auto` swept 5,000 images on Docker 20.10,
/// 26.1 and 28.5 in 1.2-2.4 x the time of `docker image prune`
/// (docs/BENCHMARKS.md). Below 5 ms the engine is not what the router
/// waits on; above it, the window still backs off.
pub const LATENCY_FLOOR: Duration = Duration::from_millis(5);

/// How many removals a pass keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Exactly this many in flight whenever images remain; never a pause.
    Fixed(NonZeroUsize),
    /// A window between 1 and `max` that follows the engine's latency
    /// ([`RemovalPacer`]); `None`: the store's own maximum
    /// ([`PaceLimits::for_store`]).
    Adaptive { max: Option<NonZeroUsize> },
}

impl Concurrency {
    /// Adaptive, with the store's maximum: `--concurrency auto`.
    pub const AUTO: Concurrency = Concurrency::Adaptive { max: None };

    /// The window limits of a pass on `store`.
    pub fn limits(&self, store: &ImageStore) -> PaceLimits {
        match *self {
            Concurrency::Fixed(n) => PaceLimits { initial: n, max: n },
            Concurrency::Adaptive { max: None } => PaceLimits::for_store(store),
            Concurrency::Adaptive { max: Some(max) } => PaceLimits {
                initial: INITIAL_WINDOW.min(max),
                max,
            },
        }
    }

    /// The pacer of one pass on `store`.
    pub fn pacer(&self, store: &ImageStore) -> RemovalPacer {
        match (self, store) {
            (Concurrency::Fixed(n), _) => RemovalPacer::fixed(*n),
            (Concurrency::Adaptive { max: None }, ImageStore::Containerd { .. }) => {
                RemovalPacer::bursts(CONTAINERD_BURST, BURST_REST)
            }
            (Concurrency::Adaptive { .. }, _) => RemovalPacer::adaptive(self.limits(store)),
        }
    }
}

/// Adaptive with the store's maximum: the engine's other clients come
/// first.
impl Default for Concurrency {
    fn default() -> Concurrency {
        Concurrency::AUTO
    }
}

/// `auto`, `auto (at most N)` or `N`.
impl std::fmt::Display for Concurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Concurrency::Fixed(n) => write!(f, "{n}"),
            Concurrency::Adaptive { max: None } => f.write_str("auto"),
            Concurrency::Adaptive { max: Some(max) } => write!(f, "auto (at most {max})"),
        }
    }
}

/// The window's bounds for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceLimits {
    /// The window the pass starts with (at most `max`).
    pub initial: NonZeroUsize,
    pub max: NonZeroUsize,
}

impl PaceLimits {
    /// `--concurrency auto` on this store: a window up to
    /// [`CLASSIC_MAX_WINDOW`] starting at [`INITIAL_WINDOW`] (classic), or
    /// bursts of [`CONTAINERD_BURST`] (containerd).
    pub fn for_store(store: &ImageStore) -> PaceLimits {
        match store {
            // containers-storage serialises writes behind one lock per
            // store, as the classic store's reference store does.
            ImageStore::Classic { .. } | ImageStore::ContainersStorage { .. } => PaceLimits {
                initial: INITIAL_WINDOW.min(CLASSIC_MAX_WINDOW),
                max: CLASSIC_MAX_WINDOW,
            },
            ImageStore::Containerd { .. } => PaceLimits {
                initial: CONTAINERD_BURST,
                max: CONTAINERD_BURST,
            },
        }
    }
}

/// How one removal ended, as far as the pacer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalOutcome {
    /// The engine answered (removed, in use, gone, or an error that is not
    /// about load): the latency is a sample of the engine's speed.
    Answered,
    /// A transient failure: a timeout, 429 or 5xx the engine recovers
    /// from. A sign of overload, whatever its latency.
    Overloaded,
}

/// How the window moved during one pass, for the report and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RemovalPace {
    /// `fixed` (`--concurrency N`) or `adaptive` (`--concurrency auto`).
    pub mode: PaceMode,
    /// The largest window of the pass.
    pub window_max: usize,
    /// The window at each removal's start, averaged over the pass.
    #[serde(serialize_with = "mean_value")]
    #[schemars(with = "f64")]
    pub window_mean: WindowMean,
    /// Pauses made at window 1 so the engine could serve other clients.
    pub pauses: usize,
    /// The pauses' total length, in seconds.
    #[serde(rename = "paused_seconds", serialize_with = "crate::sweep::as_seconds")]
    #[schemars(with = "f64")]
    pub paused: Duration,
}

/// Fixed or adaptive window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaceMode {
    Fixed,
    #[default]
    Adaptive,
    /// Bursts of removals sent at once, each followed by a rest (the
    /// containerd store's `auto`).
    Bursts,
}

/// A mean kept as a sum and a count, so the report stays `Eq`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowMean {
    sum: u64,
    count: u64,
}

impl WindowMean {
    pub fn add(&mut self, window: usize) {
        self.sum += window as u64;
        self.count += 1;
    }

    /// 0 when nothing was added.
    pub fn get(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

fn mean_value<S: serde::Serializer>(m: &WindowMean, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(m.get())
}

/// The window controller of one pass (see the module doc). The sweep asks
/// [`window`](Self::window) and [`resume_at`](Self::resume_at) before each
/// start, and reports each start and end.
#[derive(Debug, Clone)]
pub struct RemovalPacer {
    adaptive: bool,
    window: usize,
    max: usize,
    baseline: Option<Duration>,
    recent: Option<Duration>,
    /// Samples near the baseline since the window last changed.
    good: usize,
    /// Samples still to come from removals sent before the last decrease;
    /// no further decrease until they are in.
    cooldown: usize,
    in_flight: usize,
    resume_at: Option<Instant>,
    /// Set in burst mode: the window is then a burst, not a sliding window.
    burst: Option<Burst>,
    pace: RemovalPace,
}

/// Burst mode's state: `size` removals are sent at once; when the last of
/// them answers, the next burst waits `rest` times the longest latency of
/// this one (all of a burst start together, so that is the burst's length).
#[derive(Debug, Clone)]
struct Burst {
    /// This burst's size: halved after a burst with a transient failure,
    /// doubled back towards `full` after a clean one.
    size: usize,
    full: usize,
    rest: f64,
    /// Removals of this burst still to start.
    left: usize,
    longest: Duration,
    overloaded: bool,
}

impl RemovalPacer {
    /// A constant window of `n`, never a pause: `--concurrency N`.
    pub fn fixed(n: NonZeroUsize) -> RemovalPacer {
        RemovalPacer::new(false, n, n, PaceMode::Fixed)
    }

    /// A window from `limits.initial` between 1 and `limits.max`.
    pub fn adaptive(limits: PaceLimits) -> RemovalPacer {
        RemovalPacer::new(
            true,
            limits.initial.min(limits.max),
            limits.max,
            PaceMode::Adaptive,
        )
    }

    /// Bursts of `size` removals sent at once, each followed by a rest of
    /// `rest` times its length (at most [`MAX_BURST_REST`]).
    pub fn bursts(size: NonZeroUsize, rest: f64) -> RemovalPacer {
        let mut pacer = RemovalPacer::new(false, size, size, PaceMode::Bursts);
        pacer.burst = Some(Burst {
            size: size.get(),
            full: size.get(),
            rest,
            left: size.get(),
            longest: Duration::ZERO,
            overloaded: false,
        });
        pacer
    }

    fn new(adaptive: bool, window: NonZeroUsize, max: NonZeroUsize, mode: PaceMode) -> Self {
        RemovalPacer {
            adaptive,
            window: window.get(),
            max: max.get(),
            baseline: None,
            recent: None,
            good: 0,
            cooldown: 0,
            in_flight: 0,
            resume_at: None,
            burst: None,
            pace: RemovalPace {
                mode,
                ..RemovalPace::default()
            },
        }
    }

    /// Removals that may be in flight now.
    pub fn window(&self) -> usize {
        match &self.burst {
            // A burst still starting, or none in flight: room for the burst;
            // otherwise none until the whole burst has answered.
            Some(b) if b.left > 0 || self.in_flight == 0 => b.size,
            Some(_) => 0,
            None => self.window,
        }
    }

    /// When the next removal may start, if that is after `now`.
    pub fn resume_at(&self, now: Instant) -> Option<Instant> {
        self.resume_at.filter(|at| *at > now)
    }

    /// The lowest latency seen (see the module doc), once there is one.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline
    }

    /// The recent (moving average) latency, once there is one.
    pub fn recent(&self) -> Option<Duration> {
        self.recent
    }

    /// A removal starts.
    pub fn started(&mut self) {
        if let Some(b) = &mut self.burst {
            if b.left == 0 {
                b.left = b.size;
            }
            b.left -= 1;
            self.window = b.size;
        }
        self.in_flight += 1;
        self.pace.window_max = self.pace.window_max.max(self.window);
        self.pace.window_mean.add(self.window);
    }

    /// A removal that started ended at `now` after `latency`.
    pub fn finished(&mut self, now: Instant, latency: Duration, outcome: RemovalOutcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.burst.is_some() {
            self.burst_finished(now, latency, outcome);
            return;
        }
        if !self.adaptive {
            return;
        }
        // This removal was counted in the cooldown if it was sent before the
        // last decrease: it may not trigger another one.
        let cooling = self.cooldown > 0;
        self.cooldown = self.cooldown.saturating_sub(1);
        if outcome == RemovalOutcome::Overloaded {
            // Its latency says nothing about the engine's speed (a timeout is
            // the deadline, a quick 503 is not a fast engine): only back off.
            self.good = 0;
            self.shrink(cooling);
            if self.window == 1 {
                self.pause(now, MAX_PAUSE);
            }
            return;
        }
        let latency = latency.max(LATENCY_FLOOR);
        let baseline = match self.baseline {
            Some(b) if latency < b => latency,
            Some(b) if self.window == 1 => b + (latency - b).mul_f64(BASELINE_DRIFT),
            Some(b) => b,
            None => latency,
        };
        self.baseline = Some(baseline);
        let recent = match self.recent {
            Some(r) if latency >= r => r + (latency - r).mul_f64(RECENT_WEIGHT),
            Some(r) => r - (r - latency).mul_f64(RECENT_WEIGHT),
            None => latency,
        };
        self.recent = Some(recent);
        let ratio = recent.as_secs_f64() / baseline.as_secs_f64();
        if ratio >= SHRINK_AT {
            self.good = 0;
            self.shrink(cooling);
            if self.window == 1 {
                let excess = recent.saturating_sub(baseline);
                self.pause(now, excess.mul_f64(PAUSE_PER_EXCESS).min(MAX_PAUSE));
            }
        } else if ratio <= GROW_BELOW {
            self.good += 1;
            if self.good >= self.window && self.window < self.max {
                self.window += 1;
                self.good = 0;
            }
        } else {
            self.good = 0;
        }
    }

    /// The pass's figures so far.
    pub fn summary(&self) -> RemovalPace {
        self.pace
    }

    fn burst_finished(&mut self, now: Instant, latency: Duration, outcome: RemovalOutcome) {
        let Some(b) = &mut self.burst else { return };
        b.longest = b.longest.max(latency);
        b.overloaded |= outcome == RemovalOutcome::Overloaded;
        if b.left > 0 || self.in_flight > 0 {
            return;
        }
        let rest = b.longest.mul_f64(b.rest).min(MAX_BURST_REST);
        b.size = if b.overloaded {
            (b.size / 2).max(1)
        } else {
            (b.size * 2).min(b.full)
        };
        b.left = b.size;
        b.longest = Duration::ZERO;
        b.overloaded = false;
        self.pause(now, rest);
    }

    fn shrink(&mut self, cooling: bool) {
        if self.window > 1 && !cooling {
            self.window = ((self.window as f64 * SHRINK_FACTOR) as usize).max(1);
            // Removals sent under the larger window still answer slowly;
            // wait for them before judging the smaller one.
            self.cooldown = self.in_flight;
        }
    }

    fn pause(&mut self, now: Instant, pause: Duration) {
        if pause.is_zero() {
            return;
        }
        let until = now + pause;
        match self.resume_at.filter(|at| *at > now) {
            // A pause under way is only lengthened: one pause, counted once.
            Some(at) if at >= until => {}
            Some(at) => {
                self.pace.paused += until - at;
                self.resume_at = Some(until);
            }
            None => {
                self.pace.pauses += 1;
                self.pace.paused += pause;
                self.resume_at = Some(until);
            }
        }
    }
}
