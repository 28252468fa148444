//! [`JanitorConfig`]: what the janitor runs with, built only through
//! [`JanitorConfig::builder`], whose [`build`](JanitorConfigBuilder::build)
//! refuses every configuration the binary's command line refuses. A
//! `JanitorConfig` cannot hold a wrong state: its fields are private, and
//! the only way to one is a checked build.
//!
//! The rules (the binary checks the same values first, with messages that
//! name its flags; `cascade-janitor`'s `config.rs` runs one table of cases
//! through both):
//!
//! - at least one engine, none twice (however spelt);
//! - no credentials in an address (an [`EngineAddress`] cannot hold any);
//! - plain `tcp://` only to an engine on this host's loopback, unless
//!   [`allow_plain_tcp`](JanitorConfigBuilder::allow_plain_tcp): its API can
//!   remove any image; TLS files only for a `tcp://` engine;
//! - `interval` at least [`MIN_INTERVAL`], `min_gap` at least [`MIN_GAP`]
//!   and at most the interval (the default gap, [`DEFAULT_MIN_GAP`], is
//!   capped to a shorter interval instead), so passes never run back to
//!   back;
//! - `call_timeout` longer than zero, `stale_after` (3 × the interval
//!   unless set) at least the interval, and no duration over
//!   [`MAX_DURATION`] (100 years), which would overflow the clock.
//!
//! Each refusal is a [`ConfigError`] naming the field (`interval`,
//! `engines[1]`, ...), never a command-line flag.

use std::time::Duration;

use cascade_cleanup::{
    Concurrency, DEFAULT_CALL_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_INTERVAL, DEFAULT_MIN_AGE,
    DEFAULT_MIN_GAP, DEFAULT_STOP_DEADLINE, EventOptions, MAX_DURATION, MIN_GAP, MIN_INTERVAL,
};
use cascade_engine::{EngineAddress, TlsFiles};
use cascade_scope::Scope;

/// How many intervals `stale_after` is when not set.
pub const DEFAULT_STALE_INTERVALS: u32 = 3;

/// One engine to sweep: its address, and its TLS files for a `tcp://`
/// engine over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    address: EngineAddress,
    tls: Option<TlsFiles>,
}

impl EngineConfig {
    /// A unix socket, or a `tcp://` engine without TLS.
    pub fn new(address: EngineAddress) -> EngineConfig {
        EngineConfig { address, tls: None }
    }

    /// Reaches this `tcp://` engine over TLS, verified against `tls.ca`
    /// (with a client certificate when `tls.client` is given).
    pub fn with_tls(mut self, tls: TlsFiles) -> EngineConfig {
        self.tls = Some(tls);
        self
    }

    /// The engine's address; it names the engine in logs and metrics.
    pub fn address(&self) -> &EngineAddress {
        &self.address
    }

    /// The engine's TLS files; `None`: a unix socket or plain TCP.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }
}

impl From<EngineAddress> for EngineConfig {
    fn from(address: EngineAddress) -> EngineConfig {
        EngineConfig::new(address)
    }
}

/// Everything the janitor runs with, checked. Built only by
/// [`JanitorConfig::builder`]; read with its getters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JanitorConfig {
    engines: Vec<EngineConfig>,
    scope: Scope,
    min_age: Duration,
    concurrency: Concurrency,
    call_timeout: Duration,
    interval: Duration,
    min_gap: Duration,
    events: Option<EventOptions>,
    stop_deadline: Duration,
    stale_after: Duration,
    allow_unproven_engine: bool,
    allow_plain_tcp: bool,
}

impl JanitorConfig {
    /// A builder for these engines (one loop each, in this order), with the
    /// defaults the binary documents: the `cascade.managed=true` scope,
    /// images at least 10 minutes old, adaptive concurrency, a pass every
    /// 30 minutes and early on the engine's events, no two passes less than
    /// a minute apart, `/healthz` stale after 3 intervals.
    pub fn builder<E: Into<EngineConfig>>(
        engines: impl IntoIterator<Item = E>,
    ) -> JanitorConfigBuilder {
        JanitorConfigBuilder {
            engines: engines.into_iter().map(Into::into).collect(),
            scope: Scope::default(),
            min_age: DEFAULT_MIN_AGE,
            concurrency: DEFAULT_CONCURRENCY,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            min_gap: None,
            events: Some(EventOptions::default()),
            stop_deadline: DEFAULT_STOP_DEADLINE,
            stale_after: None,
            allow_unproven_engine: false,
            allow_plain_tcp: false,
        }
    }

    /// The engines, one loop each, in this order; never empty.
    pub fn engines(&self) -> &[EngineConfig] {
        &self.engines
    }

    /// Which images may be removed `[ref:scope_invariant]`.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Images younger than this are kept.
    pub fn min_age(&self) -> Duration {
        self.min_age
    }

    /// Removals in flight at once, per engine.
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    /// Deadline of each engine call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Time between the starts of two scheduled passes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// No pass starts sooner than this after the previous one started.
    pub fn min_gap(&self) -> Duration {
        self.min_gap
    }

    /// Early passes on the engine's events; `None`: the interval only.
    pub fn events(&self) -> Option<EventOptions> {
        self.events
    }

    /// How long `Janitor::stop` waits for passes in flight before
    /// abandoning them.
    pub fn stop_deadline(&self) -> Duration {
        self.stop_deadline
    }

    /// `/healthz` fails for an engine whose last pass ended longer ago.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// Whether removal is allowed on an engine the janitor was never
    /// proven on.
    pub fn allow_unproven_engine(&self) -> bool {
        self.allow_unproven_engine
    }

    /// Whether plain `tcp://` to an engine off this host is allowed.
    pub fn allow_plain_tcp(&self) -> bool {
        self.allow_plain_tcp
    }
}

/// Sets what differs from the defaults, then [`build`](Self::build)s a
/// checked [`JanitorConfig`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JanitorConfigBuilder {
    engines: Vec<EngineConfig>,
    scope: Scope,
    min_age: Duration,
    concurrency: Concurrency,
    call_timeout: Duration,
    interval: Duration,
    /// `None`: [`DEFAULT_MIN_GAP`], capped to the interval.
    min_gap: Option<Duration>,
    events: Option<EventOptions>,
    stop_deadline: Duration,
    /// `None`: [`DEFAULT_STALE_INTERVALS`] × the interval.
    stale_after: Option<Duration>,
    allow_unproven_engine: bool,
    allow_plain_tcp: bool,
}

impl JanitorConfigBuilder {
    /// Which images may be removed (default: `cascade.managed=true`).
    /// `[ref:scope_invariant]`
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Keep images younger than this (default 10 minutes; zero turns the
    /// age rule off: only when no builds run on the host).
    pub fn min_age(mut self, min_age: Duration) -> Self {
        self.min_age = min_age;
        self
    }

    /// Removals in flight at once, per engine: `Concurrency::AUTO` (the
    /// default) keeps a window that follows the engine's latency, up to the
    /// maximum of its image store, and pauses when the engine is slow, so
    /// the router's own engine calls keep their latency during a sweep;
    /// `Concurrency::Fixed(n)` keeps exactly `n` in flight.
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Deadline of each engine call, including the first connection
    /// (default 60 s; longer than zero).
    pub fn call_timeout(mut self, call_timeout: Duration) -> Self {
        self.call_timeout = call_timeout;
        self
    }

    /// Time between the starts of two scheduled passes (default 30
    /// minutes; at least [`MIN_INTERVAL`]). `stale_after` follows it unless
    /// set.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// No pass starts sooner than this after the previous one started,
    /// whatever asks for it (default one minute, or the interval if
    /// shorter; at least [`MIN_GAP`], at most the interval).
    pub fn min_gap(mut self, min_gap: Duration) -> Self {
        self.min_gap = Some(min_gap);
        self
    }

    /// Early passes on the engine's events (default on, with
    /// `EventOptions::default()`); `None`: on the interval only.
    pub fn events(mut self, events: Option<EventOptions>) -> Self {
        self.events = events;
        self
    }

    /// How long `Janitor::stop` waits for passes in flight before
    /// abandoning them (default 30 s).
    pub fn stop_deadline(mut self, stop_deadline: Duration) -> Self {
        self.stop_deadline = stop_deadline;
        self
    }

    /// `/healthz` (the telemetry's health) fails for an engine whose last
    /// pass ended longer ago than this (default 3 × the interval; at least
    /// the interval).
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = Some(stale_after);
        self
    }

    /// Remove on an engine that no row of the proven-engine table admits,
    /// with the most careful strategy of its implementation (default off:
    /// on such an engine a loop's first pass removes nothing and the loop
    /// ends with `LoopOutcome::Refused`). `[ref:proven_engines]`
    pub fn allow_unproven_engine(mut self, allow: bool) -> Self {
        self.allow_unproven_engine = allow;
        self
    }

    /// Allow plain `tcp://` (no TLS) to an engine off this host's loopback
    /// (default off: its API, which can remove any image, would travel
    /// unencrypted and unauthenticated).
    pub fn allow_plain_tcp(mut self, allow: bool) -> Self {
        self.allow_plain_tcp = allow;
        self
    }

    /// The checked configuration, or the first rule it breaks (see the
    /// module doc), naming the field.
    pub fn build(self) -> Result<JanitorConfig, ConfigError> {
        if self.engines.is_empty() {
            return Err(ConfigError::NoEngine);
        }
        for (index, engine) in self.engines.iter().enumerate() {
            let address = engine.address();
            if let Some(first) = self.engines[..index]
                .iter()
                .position(|e| e.address().same_engine(address))
            {
                return Err(ConfigError::SameEngine {
                    index,
                    address: address.clone(),
                    first,
                });
            }
        }
        for (index, engine) in self.engines.iter().enumerate() {
            let address = engine.address();
            match (address.is_local(), engine.tls().is_some()) {
                (true, true) => {
                    return Err(ConfigError::TlsOnUnixSocket {
                        index,
                        address: address.clone(),
                    });
                }
                (false, false) if !self.allow_plain_tcp && !address.is_loopback() => {
                    return Err(ConfigError::PlainTcp {
                        index,
                        address: address.clone(),
                    });
                }
                _ => {}
            }
        }
        at_most("min_age", self.min_age)?;
        if self.call_timeout.is_zero() {
            return Err(ConfigError::Zero {
                field: "call_timeout",
            });
        }
        at_most("call_timeout", self.call_timeout)?;
        at_least("interval", self.interval, MIN_INTERVAL)?;
        at_most("interval", self.interval)?;
        let min_gap = match self.min_gap {
            Some(gap) => {
                at_least("min_gap", gap, MIN_GAP)?;
                if gap > self.interval {
                    return Err(ConfigError::GapOverInterval {
                        min_gap: gap,
                        interval: self.interval,
                    });
                }
                gap
            }
            // A floor against event storms, not a way to slow a short
            // interval.
            None => DEFAULT_MIN_GAP.min(self.interval),
        };
        if let Some(events) = &self.events {
            check_events(events)?;
        }
        at_most("stop_deadline", self.stop_deadline)?;
        let stale_after = self
            .stale_after
            .unwrap_or_else(|| self.interval.saturating_mul(DEFAULT_STALE_INTERVALS));
        at_most("stale_after", stale_after)?;
        if stale_after < self.interval {
            return Err(ConfigError::StaleBeforeInterval {
                stale_after,
                interval: self.interval,
            });
        }
        Ok(JanitorConfig {
            engines: self.engines,
            scope: self.scope,
            min_age: self.min_age,
            concurrency: self.concurrency,
            call_timeout: self.call_timeout,
            interval: self.interval,
            min_gap,
            events: self.events,
            stop_deadline: self.stop_deadline,
            stale_after,
            allow_unproven_engine: self.allow_unproven_engine,
            allow_plain_tcp: self.allow_plain_tcp,
        })
    }
}

/// Event options that cannot spin (a zero backoff or idle limit would
/// re-subscribe back to back) or overflow.
fn check_events(events: &EventOptions) -> Result<(), ConfigError> {
    at_most("events.debounce", events.debounce)?;
    at_most("events.max_delay", events.max_delay)?;
    for (field, value) in [
        ("events.min_backoff", events.min_backoff),
        ("events.idle_limit", events.idle_limit),
    ] {
        if value.is_zero() {
            return Err(ConfigError::Zero { field });
        }
        at_most(field, value)?;
    }
    if events.max_backoff < events.min_backoff {
        return Err(ConfigError::TooShort {
            field: "events.max_backoff",
            value: events.max_backoff,
            floor: events.min_backoff,
        });
    }
    at_most("events.max_backoff", events.max_backoff)
}

fn at_least(field: &'static str, value: Duration, floor: Duration) -> Result<(), ConfigError> {
    if value < floor {
        return Err(ConfigError::TooShort {
            field,
            value,
            floor,
        });
    }
    Ok(())
}

fn at_most(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::TooLong { field, value });
    }
    Ok(())
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// A configuration [`JanitorConfigBuilder::build`] or [`crate::Janitor::new`]
/// refuses. Each message is one line naming the field of the configuration
/// (`interval`, `engines[1]`, `engines[0].tls`), the value, and the fix;
/// never a command-line flag, and never credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No engine to sweep.
    #[error("`engines` is empty; give at least one engine to sweep")]
    NoEngine,
    /// Two entries of `engines` reach the same engine, however spelt.
    #[error(
        "`engines[{index}]` ({address}) is the same engine as `engines[{first}]`; list each engine once"
    )]
    SameEngine {
        /// The later entry.
        index: usize,
        /// Its address.
        address: EngineAddress,
        /// The earlier entry.
        first: usize,
    },
    /// Plain TCP to an engine off this host, not allowed.
    #[error(
        "`engines[{index}]` ({address}) is plain tcp:// to an engine off this host, so its API would travel unencrypted and unauthenticated; give it TLS files (`EngineConfig::with_tls`) or set `allow_plain_tcp`"
    )]
    PlainTcp {
        /// The entry of `engines`.
        index: usize,
        /// Its address.
        address: EngineAddress,
    },
    /// TLS files for a unix socket.
    #[error(
        "`engines[{index}].tls` is set, but {address} is a unix socket, reached as it is; TLS applies to tcp:// engines only: remove it"
    )]
    TlsOnUnixSocket {
        /// The entry of `engines`.
        index: usize,
        /// Its address.
        address: EngineAddress,
    },
    /// The TLS files cannot be used (not PEM, a key that is not the
    /// certificate's); found when [`crate::Janitor::new`] reads them.
    #[error("`engines[{index}].tls`: cannot use TLS for {address}: {why}")]
    Tls {
        /// The entry of `engines`.
        index: usize,
        /// Its address.
        address: EngineAddress,
        /// Which file and what is wrong with it (never its contents).
        why: String,
    },
    /// A duration that must not be zero.
    #[error("`{field}` is 0s; it must be longer than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A duration below its floor.
    #[error("`{field}` is {}; it must be at least {}", human(*.value), human(*.floor))]
    TooShort {
        /// The field.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The least it may be.
        floor: Duration,
    },
    /// A duration over [`MAX_DURATION`].
    #[error("`{field}` is {}; it must be at most 100 years (36500d)", human(*.value))]
    TooLong {
        /// The field (`stale_after` when its default, 3 × the interval, is
        /// too long).
        field: &'static str,
        /// Its value.
        value: Duration,
    },
    /// A minimum gap longer than the interval.
    #[error(
        "`min_gap` ({}) is longer than `interval` ({}); scheduled passes would be skipped: set it to at most the interval",
        human(*.min_gap),
        human(*.interval)
    )]
    GapOverInterval {
        /// The gap.
        min_gap: Duration,
        /// The interval.
        interval: Duration,
    },
    /// `/healthz` would call an engine stale between two passes.
    #[error(
        "`stale_after` ({}) is shorter than `interval` ({}); /healthz would fail between two passes: set it to at least the interval",
        human(*.stale_after),
        human(*.interval)
    )]
    StaleBeforeInterval {
        /// The staleness limit.
        stale_after: Duration,
        /// The interval.
        interval: Duration,
    },
}

impl ConfigError {
    /// The field of the configuration the error is about: `engines`,
    /// `engines[1]`, `engines[0].tls`, `interval`, `events.debounce`, ...
    pub fn field(&self) -> String {
        match self {
            ConfigError::NoEngine => "engines".to_string(),
            ConfigError::SameEngine { index, .. } | ConfigError::PlainTcp { index, .. } => {
                format!("engines[{index}]")
            }
            ConfigError::TlsOnUnixSocket { index, .. } | ConfigError::Tls { index, .. } => {
                format!("engines[{index}].tls")
            }
            ConfigError::Zero { field }
            | ConfigError::TooShort { field, .. }
            | ConfigError::TooLong { field, .. } => field.to_string(),
            ConfigError::GapOverInterval { .. } => "min_gap".to_string(),
            ConfigError::StaleBeforeInterval { .. } => "stale_after".to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
