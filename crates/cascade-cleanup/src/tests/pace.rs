//! `pace.rs`: the removal window controller, fed by hand (no runtime, no
//! engine): each test plays removals' latencies and outcomes at given times.

use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::time::Instant;

use crate::ImageStore;
use crate::pace::*;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("nz")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn adaptive(max: usize) -> RemovalPacer {
    RemovalPacer::adaptive(PaceLimits {
        initial: INITIAL_WINDOW,
        max: nz(max),
    })
}

/// A small engine clock: starts as many removals as the window allows, all
/// answering after `latency` with `outcome`; returns the window after them.
struct Play {
    pacer: RemovalPacer,
    now: Instant,
}

impl Play {
    fn new(pacer: RemovalPacer) -> Play {
        Play {
            pacer,
            now: Instant::now(),
        }
    }

    fn round(&mut self, latency: Duration, outcome: RemovalOutcome) -> usize {
        if let Some(at) = self.pacer.resume_at(self.now) {
            self.now = at;
        }
        let n = self.pacer.window();
        for _ in 0..n {
            self.pacer.started();
        }
        self.now += latency;
        for _ in 0..n {
            self.pacer.finished(self.now, latency, outcome);
        }
        self.pacer.window()
    }

    /// Windows after each of `rounds` rounds of `latency`.
    fn rounds(&mut self, rounds: usize, latency: Duration) -> Vec<usize> {
        (0..rounds)
            .map(|_| self.round(latency, RemovalOutcome::Answered))
            .collect()
    }
}

#[test]
fn grows_one_per_round_under_flat_latency_up_to_max_and_never_pauses() {
    let mut play = Play::new(adaptive(8));
    assert_eq!(play.pacer.window(), 1, "starts at the initial window");
    let windows = play.rounds(12, ms(10));
    assert_eq!(windows, vec![2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8]);
    let pace = play.pacer.summary();
    assert_eq!(pace.window_max, 8);
    assert_eq!(pace.pauses, 0);
    assert_eq!(pace.paused, Duration::ZERO);
    assert_eq!(pace.mode, PaceMode::Adaptive);
    assert_eq!(play.pacer.resume_at(play.now), None);
}

#[test]
fn shrinks_by_half_when_latency_inflates_past_twice_the_baseline() {
    let mut play = Play::new(adaptive(8));
    play.rounds(8, ms(10));
    assert_eq!(play.pacer.window(), 8);
    // Four times the baseline: each round halves once (the removals sent
    // under the larger window are waited for), down to the floor.
    assert_eq!(play.rounds(2, ms(40)), vec![4, 2]);
    assert_eq!(
        play.pacer.baseline(),
        Some(ms(10)),
        "samples above 1 in flight never raise the baseline"
    );
    assert_eq!(play.rounds(3, ms(40)), vec![1, 1, 1]);
}

#[test]
fn holds_between_the_thresholds() {
    let mut play = Play::new(adaptive(8));
    play.rounds(3, ms(10));
    assert_eq!(play.pacer.window(), 4);
    // 1.8x: neither near the baseline nor inflated.
    assert_eq!(play.rounds(6, ms(18)), vec![4; 6]);
}

#[test]
fn at_window_one_an_inflated_engine_gets_a_pause_as_long_as_the_excess() {
    let mut play = Play::new(adaptive(1));
    play.round(ms(10), RemovalOutcome::Answered);
    assert_eq!(play.pacer.resume_at(play.now), None);
    let mut paused = Vec::new();
    for _ in 0..4 {
        play.round(ms(50), RemovalOutcome::Answered);
        paused.push(play.pacer.resume_at(play.now).map(|at| at - play.now));
    }
    assert_eq!(play.pacer.window(), 1, "never below 1");
    // The first slow sample moves the average only to 20 ms (< 2x the
    // drifted baseline): no pause yet. Then each pause is the excess of
    // the recent average over the baseline, which drifts up on samples
    // taken at window 1: 37.34 - 12.44 = 24.90 ms for the last one.
    assert_eq!(
        paused,
        [
            None,
            Some(Duration::from_nanos(16_259_766)),
            Some(Duration::from_nanos(21_279_145)),
            Some(Duration::from_nanos(24_901_736)),
        ]
    );
    assert_eq!(
        (play.pacer.recent(), play.pacer.baseline()),
        (
            Some(Duration::from_nanos(37_343_750)),
            Some(Duration::from_nanos(12_442_014))
        )
    );
    let pace = play.pacer.summary();
    assert_eq!(pace.pauses, 3);
    assert_eq!(
        pace.paused,
        paused.iter().flatten().sum::<Duration>(),
        "each pause counted once, in full"
    );
}

#[test]
fn a_pause_is_at_most_max_pause() {
    let mut play = Play::new(adaptive(1));
    play.round(ms(10), RemovalOutcome::Answered);
    play.round(Duration::from_secs(30), RemovalOutcome::Answered);
    assert_eq!(play.pacer.resume_at(play.now), Some(play.now + MAX_PAUSE));
}

#[test]
fn recovers_when_latency_falls() {
    let mut play = Play::new(adaptive(8));
    play.rounds(8, ms(10));
    play.rounds(6, ms(80));
    assert_eq!(play.pacer.window(), 1);
    assert!(play.pacer.resume_at(play.now).is_some(), "pausing");
    // The average takes a few fast samples to come back under 2x the
    // baseline; from then on no pause is added and the window grows back.
    play.rounds(10, ms(10));
    let pauses = play.pacer.summary().pauses;
    let windows = play.rounds(10, ms(10));
    assert_eq!(windows.last(), Some(&8), "{windows:?}");
    assert_eq!(play.pacer.summary().pauses, pauses);
    assert_eq!(play.pacer.resume_at(play.now), None);
}

#[test]
fn transient_failures_halve_the_window_once_per_round_and_pause_at_one() {
    let mut play = Play::new(adaptive(8));
    play.rounds(8, ms(10));
    assert_eq!(play.pacer.window(), 8);
    // Eight timeouts in one round: one halving, not eight.
    assert_eq!(play.round(ms(10), RemovalOutcome::Overloaded), 4);
    assert_eq!(play.round(ms(10), RemovalOutcome::Overloaded), 2);
    assert_eq!(play.round(ms(10), RemovalOutcome::Overloaded), 1);
    assert_eq!(play.pacer.resume_at(play.now), Some(play.now + MAX_PAUSE));
    // A failure is no latency sample: the baseline is untouched.
    assert_eq!(play.pacer.baseline(), Some(ms(10)));
}

#[test]
fn an_idle_baseline_does_not_pin_a_busier_engine_to_pauses_forever() {
    let mut play = Play::new(adaptive(4));
    play.round(ms(10), RemovalOutcome::Answered);
    // Someone else keeps the engine three times slower for good.
    let windows = play.rounds(400, ms(30));
    let before = play.pacer.summary().pauses;
    // Until the baseline follows (samples at window 1 only), each of those
    // rounds pauses: 18 of them.
    assert_eq!(before, 18, "the slowdown was paced at first");
    play.rounds(50, ms(30));
    assert_eq!(
        play.pacer.summary().pauses,
        before,
        "the baseline followed; no more pauses"
    );
    assert_eq!(windows.last(), Some(&4), "and the window grew back");
}

#[test]
fn fixed_never_moves_and_never_pauses() {
    let mut play = Play::new(RemovalPacer::fixed(nz(3)));
    play.rounds(3, ms(10));
    assert_eq!(play.rounds(5, ms(500)), vec![3; 5]);
    assert_eq!(play.round(ms(10), RemovalOutcome::Overloaded), 3);
    assert_eq!(play.pacer.resume_at(play.now), None);
    let pace = play.pacer.summary();
    assert_eq!(pace.mode, PaceMode::Fixed);
    assert_eq!((pace.window_max, pace.pauses), (3, 0));
    assert_eq!(pace.window_mean.get(), 3.0);
}

#[test]
fn the_maximum_depends_on_the_store_unless_given() {
    let classic = ImageStore::Classic {
        driver: "vfs".into(),
    };
    let containerd = ImageStore::Containerd {
        snapshotter: "overlayfs".into(),
    };
    assert_eq!(Concurrency::default(), Concurrency::AUTO);
    assert_eq!(Concurrency::AUTO.limits(&classic).max, CLASSIC_MAX_WINDOW);
    assert_eq!(Concurrency::AUTO.limits(&containerd).max, CONTAINERD_BURST);
    assert_eq!(
        Concurrency::AUTO.limits(&containerd).initial,
        CONTAINERD_BURST
    );
    assert_eq!(
        Concurrency::AUTO.pacer(&containerd).summary().mode,
        PaceMode::Bursts
    );
    assert_eq!(
        Concurrency::AUTO.pacer(&classic).summary().mode,
        PaceMode::Adaptive
    );
    assert_eq!(
        Concurrency::Adaptive { max: Some(nz(2)) }.limits(&containerd),
        PaceLimits {
            initial: nz(1),
            max: nz(2)
        }
    );
    assert_eq!(
        Concurrency::Fixed(nz(6)).limits(&classic),
        PaceLimits {
            initial: nz(6),
            max: nz(6)
        }
    );
    assert_eq!(Concurrency::Fixed(nz(6)).pacer(&classic).window(), 6);
    assert_eq!(Concurrency::AUTO.to_string(), "auto");
    assert_eq!(Concurrency::Fixed(nz(6)).to_string(), "6");
}

/// Starts as many removals as the burst pacer allows at `now`; returns how
/// many started.
fn start_burst(pacer: &mut RemovalPacer, now: Instant) -> usize {
    let mut started = 0;
    while started < pacer.window() && pacer.resume_at(now).is_none() {
        pacer.started();
        started += 1;
    }
    started
}

#[test]
fn a_burst_is_sent_at_once_and_the_next_waits_for_all_of_it_and_a_rest() {
    let mut pacer = RemovalPacer::bursts(nz(4), 1.0);
    let t0 = Instant::now();
    assert_eq!(start_burst(&mut pacer, t0), 4);
    // Three answered: no room until the fourth does.
    for latency in [100, 200, 300] {
        pacer.finished(t0 + ms(latency), ms(latency), RemovalOutcome::Answered);
        assert_eq!(pacer.window(), 0, "nothing starts while the burst is out");
    }
    pacer.finished(t0 + ms(400), ms(400), RemovalOutcome::Answered);
    // The rest is the burst's length (its longest latency) times 1.0.
    assert_eq!(pacer.resume_at(t0 + ms(400)), Some(t0 + ms(800)));
    assert_eq!(start_burst(&mut pacer, t0 + ms(799)), 0);
    assert_eq!(start_burst(&mut pacer, t0 + ms(800)), 4);
    let pace = pacer.summary();
    assert_eq!(pace.mode, PaceMode::Bursts);
    assert_eq!((pace.pauses, pace.paused, pace.window_max), (1, ms(400), 4));
}

#[test]
fn a_burst_with_a_transient_failure_halves_the_next_and_clean_ones_double_back() {
    let mut pacer = RemovalPacer::bursts(nz(8), 0.5);
    let mut now = Instant::now();
    let mut sizes = Vec::new();
    for overloaded in [true, true, false, false, false] {
        now = pacer.resume_at(now).unwrap_or(now);
        let n = start_burst(&mut pacer, now);
        sizes.push(n);
        for i in 0..n {
            let outcome = if overloaded && i == 0 {
                RemovalOutcome::Overloaded
            } else {
                RemovalOutcome::Answered
            };
            pacer.finished(now + ms(100), ms(100), outcome);
        }
        now += ms(100);
    }
    assert_eq!(sizes, vec![8, 4, 2, 4, 8]);
}

#[test]
fn a_burst_rest_is_at_most_max_burst_rest() {
    let mut pacer = RemovalPacer::bursts(nz(2), 5.0);
    let t0 = Instant::now();
    start_burst(&mut pacer, t0);
    pacer.finished(t0, Duration::from_secs(30), RemovalOutcome::Answered);
    pacer.finished(t0, Duration::from_secs(30), RemovalOutcome::Answered);
    assert_eq!(pacer.resume_at(t0), Some(t0 + MAX_BURST_REST));
}

#[test]
fn jitter_under_the_latency_floor_is_not_load() {
    // 1 ms and 4 ms answers alternate: 4x apart, yet both under the floor.
    let mut pacer = adaptive(4);
    let t0 = Instant::now();
    for i in 0..64u64 {
        let latency = if i % 2 == 0 { ms(1) } else { ms(4) };
        pacer.started();
        pacer.finished(t0 + ms(i), latency, RemovalOutcome::Answered);
    }
    assert_eq!(pacer.window(), 4);
    assert_eq!(pacer.summary().pauses, 0);
    // Past the floor, the same 4x is load: the window backs off.
    for i in 0..16u64 {
        pacer.started();
        pacer.finished(
            t0 + ms(100 + i),
            ms(4 * LATENCY_FLOOR.as_millis() as u64),
            RemovalOutcome::Answered,
        );
    }
    assert!(pacer.window() < 4, "window {}", pacer.window());
}
