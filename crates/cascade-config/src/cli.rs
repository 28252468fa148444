//! The command line contract: clap definitions and the value parsers every
//! source (flag, variable, file) shares.
//!
//! Variables are not read by clap: `merge.rs` reads them from the
//! environment it is given, so precedence can be tested without touching the
//! process. Their names come from [`Opt::env`](crate::opt::Opt::env), and
//! [`command`] writes them into `--help`.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};

use cascade_cleanup::Concurrency;
use std::path::PathBuf;
use std::time::Duration;

use cascade_scope::Label;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::opt::Opt;

#[derive(Debug, Parser)]
#[command(
    name = "cascade-janitor",
    version,
    about = "Removes dangling Docker images that carry the cascade label, and nothing else.",
    long_about = "Removes dangling (untagged) Docker images that carry every configured label \
                  (default cascade.managed=true), and nothing else: tagged images, images \
                  without the label, images in use and images younger than --min-age are \
                  never touched.\n\nExit codes: 0 success; 1 the engine could not be reached \
                  or a sweep ended with failures; 2 bad usage or configuration."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: sweep now and every --interval until SIGTERM or SIGINT.
    Run(RunArgs),
    /// One sweep now.
    Prune(PruneArgs),
    /// Check the engine is reachable and show what is in scope.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Docker engine address: unix:///path/to/docker.sock or tcp://HOST:PORT.
    /// Repeatable: `run` sweeps each engine independently
    /// [env: CASCADE_JANITOR_DOCKER_HOST (comma-separated), then DOCKER_HOST;
    /// default: unix:///var/run/docker.sock]
    // Checked in merge.rs, not by a value parser: clap's error would echo the
    // value, and a URL with credentials must never be printed.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub docker_host: Vec<String>,

    /// Only images carrying this label with exactly this value (repeatable: all must match)
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        default_value = cascade_scope::DEFAULT_LABEL,
        value_parser = parse_label
    )]
    pub labels: Vec<Label>,

    /// Keep images younger than this: they may be steps of a running build (0s disables)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_age: Duration,

    /// Removals in flight at once: auto (a window that follows the engine's
    /// latency, up to a per-store maximum, pausing when the engine is slow so
    /// its other clients are served) or a fixed number N (at least 1)
    #[arg(long, value_name = "auto|N", default_value = "auto", value_parser = parse_concurrency, allow_hyphen_values = true)]
    pub concurrency: Concurrency,

    /// Deadline of each Docker call
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Log format (logs go to stderr; RUST_LOG sets the level, default info)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// CA certificate (PEM) that signed the engine's certificate, for tcp://
    /// engines over TLS (default with DOCKER_TLS_VERIFY: $DOCKER_CERT_PATH/ca.pem)
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for tcp:// engines over TLS; needs --tls-key
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Allow plain (unencrypted, unauthenticated) tcp:// to an engine that is
    /// not on the loopback address
    #[arg(long)]
    pub allow_plain_tcp: bool,

    /// Remove on an engine the janitor has not been proven on (Docker 29
    /// and later, Podman other than 4.3 and 5.4 to 5.8, other
    /// implementations), with its most careful strategy; without it such an
    /// engine is refused for removal (prune and run exit 1; doctor and
    /// prune --dry-run still work)
    #[arg(long)]
    pub allow_unproven_engine: bool,

    /// TOML file of defaults (keys = long option names with - replaced by _);
    /// flags and CASCADE_JANITOR_* variables win over it
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration and where each value came from, then
    /// exit 0 without contacting any engine
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Time between sweeps (at least 1s)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_interval, allow_hyphen_values = true)]
    pub interval: Duration,
    /// How long shutdown waits for an in-flight sweep
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub stop_deadline: Duration,
    /// Serve /metrics and /healthz on this address, e.g. 127.0.0.1:9464 (off when unset)
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// /healthz fails when the last completed sweep (of any result) is older
    /// than this many intervals
    #[arg(long, value_name = "N", default_value = "3", value_parser = parse_stale_intervals, allow_hyphen_values = true)]
    pub stale_intervals: NonZeroU32,
    /// Do not sweep on Docker events; sweep on the interval only
    #[arg(long)]
    pub no_events: bool,
    /// Wait this long after the last relevant event before sweeping
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub event_debounce: Duration,
    /// Never sweep one engine more often than this, whatever triggers the sweep
    /// (at least 1s, at most --interval)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_min_sweep_gap, allow_hyphen_values = true)]
    pub min_sweep_gap: Duration,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: Common,
    /// Remove nothing; print what would be removed and why each other image is kept
    #[arg(long)]
    pub dry_run: bool,
    /// Report format on stdout
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Progress on stderr: bar on a terminal, log lines otherwise (auto), or none
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub common: Common,
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

/// The clap command, with each option's variable named in its help (clap
/// itself reads no variable; see the module doc).
pub fn command() -> clap::Command {
    let with_env = |arg: clap::Arg| -> clap::Arg {
        match Opt::from_id(arg.get_id().as_str()) {
            // docker_host documents its variables itself (two of them).
            Some(key) if key != Opt::DockerHost => {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [env: {}]", key.env()))
            }
            _ => arg,
        }
    };
    Cli::command().mut_subcommands(|sub| sub.mut_args(with_env))
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
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 24 * 60 * 60);

/// The shortest `--interval`. A pass is at least one list call per engine;
/// below a second the loop would sweep back to back and load the engine for
/// nothing (nothing in this deployment creates images faster than that).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest `--min-sweep-gap`. At 0s an event storm (or a debounce of
/// 0s) starts a pass the moment the previous one ends: sweeps back to back.
pub const MIN_SWEEP_GAP: Duration = Duration::from_secs(1);

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
