//! The command line contract: the clap command built from the table of
//! options (`opt.rs`), and the value parsers every source (flag, variable,
//! file) shares.
//!
//! Variables are not read by clap: `merge.rs` reads them from the
//! environment it is given, so precedence can be tested without touching the
//! process. Their names come from `Opt::env`, and each option's help ends
//! with its variable.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use cascade_cleanup::Concurrency;
use cascade_scope::Label;
use clap::ValueEnum;

use crate::opt::{CommandName, Opt};

const ABOUT: &str =
    "Removes dangling Docker images that carry the cascade label, and nothing else.";

const LONG_ABOUT: &str = "Removes dangling (untagged) Docker images that carry every configured label \
                          (default cascade.managed=true), and nothing else: tagged images, images \
                          without the label, images in use and images younger than --min-age are \
                          never touched.\n\nExit codes: 0 success; 1 the engine could not be reached \
                          or a sweep ended with failures; 2 bad usage or configuration.";

/// What `--help` says of a command.
fn about(command: CommandName) -> &'static str {
    match command {
        CommandName::Run => "The daemon: sweep now and every --interval until SIGTERM or SIGINT",
        CommandName::Prune => "One sweep now",
        CommandName::Doctor => "Check the engine is reachable and show what is in scope",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    Bar,
    Log,
    None,
}

/// The clap command: one subcommand per command, each with the arguments
/// of its options (clap itself reads no variable; see the module doc).
pub fn command() -> clap::Command {
    let subcommand = |name: CommandName| {
        let options = Opt::ALL
            .into_iter()
            .filter(|o| o.commands().contains(&name));
        clap::Command::new(name.as_str())
            .about(about(name))
            .args(options.map(Opt::arg))
    };
    clap::Command::new("cascade-janitor")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(CommandName::ALL.map(subcommand))
}

/// A value taken as written: `--docker-host`'s, checked after the merge.
pub(crate) fn parse_text(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}

/// A path as written (`--config`).
pub(crate) fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// A `--tls-*` path from a variable or the file: blank is a mistake there.
pub(crate) fn parse_pem_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("expected the path of a PEM file".to_string())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// A switch's value in a variable or the file.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    s.parse().map_err(|_| "expected true or false".to_string())
}

/// One of a `ValueEnum`'s names, in a variable or the file.
pub(crate) fn value_enum<T: ValueEnum>(s: &str) -> Result<T, String> {
    T::from_str(s, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("expected one of: {}", names.join(", "))
    })
}

pub(crate) fn parse_stale_intervals(s: &str) -> Result<NonZeroU32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) => NonZeroU32::new(n).ok_or_else(|| "must be at least 1".to_string()),
        Err(_) => Err("expected a whole number of at least 1".to_string()),
    }
}

pub(crate) fn parse_label(s: &str) -> Result<Label, String> {
    s.parse()
        .map_err(|e: cascade_scope::LabelError| e.to_string())
}

const DURATION_HINT: &str = "expected a number with a unit, e.g. 0s, 90s, 10m, 1h";

/// The longest duration accepted: longer ones overflow when added to an
/// `Instant` or multiplied (stale intervals × interval), and are mistakes.
/// The library's limit (`cascade-embed`'s `JanitorConfig` refuses more).
pub const MAX_DURATION: Duration = cascade_cleanup::MAX_DURATION;

/// The shortest `--interval`: the library's floor of the loop's interval
/// (`JanitorConfig` refuses less). A pass is at least one list call per
/// engine; below a second the loop would sweep back to back and load the
/// engine for nothing (nothing in this deployment creates images faster
/// than that).
pub const MIN_INTERVAL: Duration = cascade_cleanup::MIN_INTERVAL;

/// The shortest `--min-sweep-gap`: the library's floor of the loop's
/// minimum gap. At 0s an event storm (or a debounce of 0s) starts a pass
/// the moment the previous one ends: sweeps back to back.
pub const MIN_SWEEP_GAP: Duration = cascade_cleanup::MIN_GAP;

const TOO_LONG: &str = "too long; at most 100 years (36500d)";

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("durations cannot be negative; {DURATION_HINT}"));
    }
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d > MAX_DURATION => Err(TOO_LONG.to_string()),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(TOO_LONG.to_string()),
        Err(_) => Err(DURATION_HINT.to_string()),
    }
}

pub(crate) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("must be longer than zero; {DURATION_HINT}")),
        d => Ok(d),
    }
}

/// A duration of at least `floor`; the message names the option, the value
/// and the floor wherever the value came from.
fn at_least(floor: Duration, option: &str, why: &str, d: Duration) -> Result<Duration, String> {
    if d < floor {
        let floor = humantime::format_duration(floor);
        return Err(format!(
            "{option} {} is below its floor of {floor} ({why}); use {floor} or more",
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    at_least(
        MIN_INTERVAL,
        "--interval",
        "shorter would sweep back to back",
        parse_positive_duration(s)?,
    )
}

pub(crate) fn parse_min_sweep_gap(s: &str) -> Result<Duration, String> {
    at_least(
        MIN_SWEEP_GAP,
        "--min-sweep-gap",
        "shorter lets engine events start sweeps back to back",
        parse_duration(s)?,
    )
}

/// A `--metrics-addr` value: an IP address and a port, nothing else (no host
/// names, so what is exposed never depends on DNS). Binding it is
/// `cascade-metrics`'s.
pub(crate) fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "--metrics-addr {s}: not an IP:PORT address; write e.g. 127.0.0.1:9464 (this host only) or 0.0.0.0:9464 (every interface)"
        )
    })
}

pub(crate) fn parse_concurrency(s: &str) -> Result<Concurrency, String> {
    let s = s.trim();
    if s == "auto" {
        return Ok(Concurrency::AUTO);
    }
    match s.parse::<usize>() {
        Ok(n) => NonZeroUsize::new(n)
            .map(Concurrency::Fixed)
            .ok_or_else(|| "must be at least 1; use auto or a number of at least 1".to_string()),
        Err(_) => Err("expected auto or a whole number of at least 1, e.g. 4".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_names_each_variable() {
        let mut command = command();
        let help = command
            .find_subcommand_mut("run")
            .map(|run| run.render_help().to_string())
            .unwrap_or_default();
        for name in [
            "[env: CASCADE_JANITOR_MIN_AGE]",
            "[env: CASCADE_JANITOR_INTERVAL]",
            "[env: CASCADE_JANITOR_TLS_CA]",
            "CASCADE_JANITOR_DOCKER_HOST (comma-separated), then DOCKER_HOST",
        ] {
            assert!(help.contains(name), "{name}: {help}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
        assert!(parse_duration("soon").unwrap_err().contains("e.g. 0s"));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_concurrency("0").unwrap_err().contains("at least 1"));
        assert!(
            parse_concurrency("x")
                .unwrap_err()
                .contains("expected auto")
        );
        assert!(parse_concurrency("-2").is_err());
        assert!(parse_concurrency("Auto").is_err());
        assert_eq!(
            parse_concurrency("8"),
            Ok(Concurrency::Fixed(NonZeroUsize::new(8).expect("nz")))
        );
        assert_eq!(parse_concurrency(" auto "), Ok(Concurrency::AUTO));
    }

    #[test]
    fn interval_and_gap_have_floors() {
        assert_eq!(parse_interval("1s"), Ok(MIN_INTERVAL));
        assert_eq!(parse_min_sweep_gap("1s"), Ok(MIN_SWEEP_GAP));
        assert_eq!(
            parse_interval("999ms"),
            Err("--interval 999ms is below its floor of 1s (shorter would sweep back to back); use 1s or more".to_string())
        );
        assert!(
            parse_interval("1ns")
                .unwrap_err()
                .contains("--interval 1ns")
        );
        // Zero keeps its older, more specific message.
        assert!(
            parse_interval("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        for gap in ["0s", "500ms"] {
            let err = parse_min_sweep_gap(gap).expect_err(gap);
            assert!(
                err.starts_with(&format!("--min-sweep-gap {gap} is below its floor of 1s")),
                "{err}"
            );
        }
    }

    #[test]
    fn absurd_durations_are_refused_before_they_overflow() {
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        for long in ["36501d", "101y", "99999999999999999999s", "584942417355y"] {
            let err = parse_duration(long).expect_err(long);
            assert!(err.contains("too long; at most 100 years"), "{long}: {err}");
            assert!(parse_positive_duration(long).is_err(), "{long}");
        }
        // The longest accepted value survives being added to an Instant.
        let _ = std::time::Instant::now() + MAX_DURATION;
    }

    #[test]
    fn metrics_addr_parses_ip_and_port_only() {
        assert_eq!(
            parse_metrics_addr("127.0.0.1:9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            parse_metrics_addr("[::1]:9464"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9464)))
        );
        for bad in ["localhost:9464", "9464", "127.0.0.1", "127.0.0.1:99999", ""] {
            let err = parse_metrics_addr(bad).expect_err(bad);
            assert!(
                err.starts_with(&format!(
                    "--metrics-addr {bad}: not an IP:PORT address; write e.g. 127.0.0.1:9464"
                )),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn metrics_addr_errors_are_one_line() {
        let err = command()
            .try_get_matches_from(["cascade-janitor", "run", "--metrics-addr", "localhost:9464"])
            .expect_err("a host name");
        let text = err.to_string();
        assert!(text.contains("localhost:9464"), "{text}");
        assert!(text.contains("127.0.0.1:9464"), "{text}");
    }

    /// The clap defaults are written as strings; they must say what the
    /// library's constants say, or `--help` and the behaviour drift apart.
    #[test]
    fn clap_defaults_are_the_library_defaults() {
        let command = command();
        let default = |sub: &str, id: &str| -> String {
            let arg = command
                .find_subcommand(sub)
                .and_then(|s| s.get_arguments().find(|a| a.get_id() == id));
            let values = arg
                .map(|a| a.get_default_values().to_vec())
                .unwrap_or_default();
            assert_eq!(values.len(), 1, "{sub} {id}");
            values[0].to_string_lossy().into_owned()
        };
        for sub in ["run", "prune", "doctor"] {
            assert_eq!(
                parse_duration(&default(sub, "min_age")),
                Ok(cascade_cleanup::DEFAULT_MIN_AGE),
                "{sub}"
            );
            assert_eq!(
                parse_concurrency(&default(sub, "concurrency")),
                Ok(cascade_cleanup::DEFAULT_CONCURRENCY),
                "{sub}"
            );
            assert_eq!(
                parse_positive_duration(&default(sub, "timeout")),
                Ok(cascade_cleanup::DEFAULT_CALL_TIMEOUT),
                "{sub}"
            );
        }
        for (id, constant) in [
            ("interval", cascade_cleanup::DEFAULT_INTERVAL),
            ("stop_deadline", cascade_cleanup::DEFAULT_STOP_DEADLINE),
            ("event_debounce", cascade_cleanup::DEFAULT_EVENT_DEBOUNCE),
            ("min_sweep_gap", cascade_cleanup::DEFAULT_MIN_GAP),
        ] {
            assert_eq!(parse_duration(&default("run", id)), Ok(constant), "{id}");
        }
    }
}
