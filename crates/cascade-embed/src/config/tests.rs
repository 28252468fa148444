//! The builder: the defaults, what follows the interval, and every rule,
//! each refused naming its field and never a command-line flag.

use std::path::PathBuf;

use super::*;

const UNIX: &str = "unix:///run/one.sock";
const MIN: Duration = Duration::from_secs(60);

fn address(host: &str) -> EngineAddress {
    EngineAddress::parse(host).expect("a valid address")
}

fn builder() -> JanitorConfigBuilder {
    JanitorConfig::builder([address(UNIX)])
}

fn tls() -> TlsFiles {
    TlsFiles {
        ca: PathBuf::from("/etc/janitor/ca.pem"),
        client: None,
    }
}

/// The refusal of `builder`, checked for the shape every refusal has.
fn refused(builder: JanitorConfigBuilder) -> ConfigError {
    let err = builder.build().expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{}`", err.field())),
        "names its field: {text}"
    );
    assert!(!text.contains("--") && !text.contains('\n'), "{text}");
    err
}

#[test]
fn the_defaults_are_the_binarys() {
    let config = builder().build().expect("defaults");
    assert_eq!(config.engines(), [EngineConfig::new(address(UNIX))]);
    assert_eq!(config.scope(), &Scope::default());
    assert_eq!(config.min_age(), DEFAULT_MIN_AGE);
    assert_eq!(config.concurrency(), DEFAULT_CONCURRENCY);
    assert_eq!(config.call_timeout(), DEFAULT_CALL_TIMEOUT);
    assert_eq!(config.interval(), 30 * MIN);
    assert_eq!(config.min_gap(), MIN);
    assert_eq!(config.events(), Some(EventOptions::default()));
    assert_eq!(config.stop_deadline(), DEFAULT_STOP_DEADLINE);
    assert_eq!(config.stale_after(), 90 * MIN, "three intervals");
    assert!(!config.allow_unproven_engine() && !config.allow_plain_tcp());
}

#[test]
fn stale_after_and_the_default_gap_follow_the_interval() {
    let config = builder().interval(10 * MIN).build().expect("valid");
    assert_eq!(config.stale_after(), 30 * MIN, "3 × the interval");
    assert_eq!(config.min_gap(), MIN);
    let config = builder()
        .interval(Duration::from_secs(10))
        .build()
        .expect("valid");
    assert_eq!(
        config.min_gap(),
        Duration::from_secs(10),
        "the default gap is capped to a shorter interval"
    );
    assert_eq!(config.stale_after(), Duration::from_secs(30));
    let config = builder()
        .interval(10 * MIN)
        .stale_after(25 * MIN)
        .min_gap(2 * MIN)
        .build()
        .expect("valid");
    assert_eq!(config.stale_after(), 25 * MIN, "set: kept");
    assert_eq!(config.min_gap(), 2 * MIN);
}

#[test]
fn intervals_and_gaps_have_floors() {
    let err = refused(builder().interval(Duration::ZERO));
    assert_eq!(err.to_string(), "`interval` is 0s; it must be at least 1s");
    let err = refused(builder().interval(Duration::from_millis(999)));
    assert_eq!(
        err.to_string(),
        "`interval` is 999ms; it must be at least 1s"
    );
    let err = refused(builder().min_gap(Duration::ZERO));
    assert_eq!(err.to_string(), "`min_gap` is 0s; it must be at least 1s");
    assert!(
        builder()
            .interval(MIN_INTERVAL)
            .min_gap(MIN_GAP)
            .build()
            .is_ok()
    );
    let err = refused(builder().interval(MIN).min_gap(2 * MIN));
    assert_eq!(err.field(), "min_gap");
    assert_eq!(
        err.to_string(),
        "`min_gap` (2m) is longer than `interval` (1m); scheduled passes would be skipped: set it to at most the interval"
    );
}

#[test]
fn durations_that_cannot_work_are_refused() {
    let err = refused(builder().call_timeout(Duration::ZERO));
    assert_eq!(
        err.to_string(),
        "`call_timeout` is 0s; it must be longer than zero"
    );
    let century = MAX_DURATION + Duration::from_secs(1);
    for (field, builder) in [
        ("min_age", builder().min_age(century)),
        ("call_timeout", builder().call_timeout(century)),
        ("interval", builder().interval(century)),
        ("stop_deadline", builder().stop_deadline(century)),
        ("stale_after", builder().stale_after(century)),
        // Its default, 3 × a 100-year interval.
        ("stale_after", builder().interval(MAX_DURATION)),
    ] {
        let err = refused(builder);
        assert_eq!(err.field(), field);
        assert!(err.to_string().contains("at most 100 years"), "{err}");
    }
    let err = refused(builder().interval(10 * MIN).stale_after(5 * MIN));
    assert_eq!(err.field(), "stale_after");
    let mut events = EventOptions::default();
    events.min_backoff = Duration::ZERO;
    assert_eq!(
        refused(builder().events(Some(events))).field(),
        "events.min_backoff"
    );
    let mut events = EventOptions::default();
    events.idle_limit = Duration::ZERO;
    assert_eq!(
        refused(builder().events(Some(events))).field(),
        "events.idle_limit"
    );
    let events = EventOptions::with_debounce(century);
    assert_eq!(
        refused(builder().events(Some(events))).field(),
        "events.debounce"
    );
    assert!(builder().events(None).build().is_ok(), "no events at all");
}

#[test]
fn engines_are_given_once_each() {
    let none: [EngineAddress; 0] = [];
    let err = refused(JanitorConfig::builder(none));
    assert_eq!(err, ConfigError::NoEngine);
    let err = refused(JanitorConfig::builder([
        address(UNIX),
        address("tcp://127.0.0.1:2375"),
        address("http://127.0.0.1:2375/"),
    ]));
    assert_eq!(err.field(), "engines[2]");
    assert_eq!(
        err.to_string(),
        "`engines[2]` (http://127.0.0.1:2375/) is the same engine as `engines[1]`; list each engine once"
    );
}

#[test]
fn plain_tcp_off_this_host_needs_allowing() {
    let remote = "tcp://192.0.2.10:2375";
    let err = refused(JanitorConfig::builder([address(UNIX), address(remote)]));
    assert_eq!(err.field(), "engines[1]");
    assert!(err.to_string().contains("set `allow_plain_tcp`"), "{err}");
    assert!(
        JanitorConfig::builder([address(remote)])
            .allow_plain_tcp(true)
            .build()
            .is_ok()
    );
    assert!(
        JanitorConfig::builder([EngineConfig::new(address(remote)).with_tls(tls())])
            .build()
            .is_ok(),
        "over TLS"
    );
    for loopback in [
        "tcp://127.0.0.1:2375",
        "tcp://localhost:2375",
        "tcp://[::1]:2375",
    ] {
        assert!(
            JanitorConfig::builder([address(loopback)]).build().is_ok(),
            "{loopback}"
        );
    }
    let err = refused(JanitorConfig::builder([
        EngineConfig::new(address(UNIX)).with_tls(tls())
    ]));
    assert_eq!(err.field(), "engines[0].tls");
}
