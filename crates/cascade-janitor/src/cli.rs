//! The command line contract. Every option also reads `CASCADE_JANITOR_*`.

use std::num::NonZeroUsize;
use std::time::Duration;

use cascade_scope::Label;
use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Docker engine address: unix:///path/to/docker.sock or tcp://HOST:PORT
    /// [env: CASCADE_JANITOR_DOCKER_HOST, then DOCKER_HOST; default: unix:///var/run/docker.sock]
    #[arg(
        long,
        value_name = "URL",
        env = "CASCADE_JANITOR_DOCKER_HOST",
        hide_env = true
    )]
    pub docker_host: Option<String>,

    /// Only images carrying this label with exactly this value (repeatable: all must match)
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        env = "CASCADE_JANITOR_LABEL",
        value_delimiter = ',',
        default_value = cascade_scope::DEFAULT_LABEL,
        value_parser = parse_label
    )]
    pub labels: Vec<Label>,

    /// Keep images younger than this: they may be steps of a running build (0s disables)
    #[arg(long, value_name = "DURATION", env = "CASCADE_JANITOR_MIN_AGE", default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_age: Duration,

    /// Removals in flight at once
    #[arg(long, value_name = "N", env = "CASCADE_JANITOR_CONCURRENCY", default_value = "4", value_parser = parse_concurrency, allow_hyphen_values = true)]
    pub concurrency: NonZeroUsize,

    /// Deadline of each Docker call
    #[arg(long, value_name = "DURATION", env = "CASCADE_JANITOR_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Log format (logs go to stderr; RUST_LOG sets the level, default info)
    #[arg(long, value_enum, env = "CASCADE_JANITOR_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Time between sweeps
    #[arg(long, value_name = "DURATION", env = "CASCADE_JANITOR_INTERVAL", default_value = "30m", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub interval: Duration,
    /// How long shutdown waits for an in-flight sweep
    #[arg(long, value_name = "DURATION", env = "CASCADE_JANITOR_STOP_DEADLINE", default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub stop_deadline: Duration,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: Common,
    /// Remove nothing; print what would be removed and why each other image is kept
    #[arg(long, env = "CASCADE_JANITOR_DRY_RUN")]
    pub dry_run: bool,
    /// Report format on stdout
    #[arg(long, value_enum, env = "CASCADE_JANITOR_OUTPUT", default_value_t = Output::Text)]
    pub output: Output,
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

fn parse_label(s: &str) -> Result<Label, String> {
    s.parse()
        .map_err(|e: cascade_scope::LabelError| e.to_string())
}

const DURATION_HINT: &str = "expected a number with a unit, e.g. 0s, 90s, 10m, 1h";

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("durations cannot be negative; {DURATION_HINT}"));
    }
    humantime::parse_duration(s.trim()).map_err(|_| DURATION_HINT.to_string())
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("must be longer than zero; {DURATION_HINT}")),
        d => Ok(d),
    }
}

fn parse_concurrency(s: &str) -> Result<NonZeroUsize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) => NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".to_string()),
        Err(_) => Err("expected a whole number of at least 1".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
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
        assert!(parse_concurrency("0").is_err());
        assert!(parse_concurrency("x").is_err());
        assert_eq!(
            parse_concurrency("8"),
            Ok(NonZeroUsize::new(8).expect("nz"))
        );
    }
}
