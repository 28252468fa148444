//! Typed configuration for cascade-janitor: the command line (clap), the
//! `CASCADE_JANITOR_*` variables, the TOML file of `--config`, resolved into
//! one [`Settings`] before anything contacts an engine.
//!
//! Precedence: flag > `CASCADE_JANITOR_*` variable > file > default; for the
//! engine address, `DOCKER_HOST` comes after the file. clap parses the flags
//! and says, through `ArgMatches::value_source`, which were given; the
//! variables come from the [`Environment`] passed to [`load`] (never from the
//! process directly), so every order is unit-tested with a map.
//!
//! Every option is declared once, in the table of `opt`; a macro turns it
//! into the clap argument, the variable's name, the file key, the merge and
//! the `--print-config` line. Modules, one job each: `opt` (the table, and
//! the [`CommandName`]s), `cli` (the clap command and the value parsers),
//! `env` (variables: names, service links), `file` (the TOML file as a
//! serde struct), `merge` (one value per option, with its source),
//! `resolve` (the checks that need several options, into [`Settings`]),
//! `tls` (how each engine is reached), `print` (`--print-config`),
//! `address` (engine URLs).
//!
//! Every refusal is a [`ConfigError`]: one line naming the culprit (flag,
//! variable, or file and line) and the fix; the binary exits 2 with it.

mod address;
pub mod cli;
mod env;
mod file;
mod merge;
mod opt;
mod print;
mod resolve;
mod tls;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use cascade_scope::Scope;

pub use crate::address::{Address, DEFAULT_SOCKET, EngineAddress, is_loopback, parse_host};
pub use crate::cli::{LogFormat, MAX_DURATION, MIN_INTERVAL, MIN_SWEEP_GAP, Output, Progress};
pub use crate::env::Environment;
pub use crate::opt::CommandName;
pub use crate::tls::{ClientCert, EngineSettings, EngineTransport, TlsFiles};

/// The words every dry-run refusal of `run` uses.
const DRY_RUN_REFUSAL: &str = "run has no dry-run mode; use `prune --dry-run`";

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--flag` on the command line.
    Flag(String),
    /// An environment variable (`CASCADE_JANITOR_*`, `DOCKER_HOST`, ...).
    Env(String),
    /// The `--config` file, with the key's line when known.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    Default,
}

impl Source {
    /// The start of an error about `key`'s value from here.
    pub(crate) fn culprit(&self, key: opt::Opt) -> String {
        match self {
            Source::File { path, line } => format!(
                "config file {}{}: `{key}`",
                path.display(),
                line.map(|l| format!(", line {l}")).unwrap_or_default()
            ),
            Source::Env(var) => var.clone(),
            Source::Flag(flag) => flag.clone(),
            Source::Default => key.flag(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File { path, line } => {
                write!(f, "file {}", path.display())?;
                match line {
                    Some(line) => write!(f, " (line {line})"),
                    None => Ok(()),
                }
            }
            Source::Default => write!(f, "default"),
        }
    }
}

/// Everything a command needs, resolved and validated.
#[derive(Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub command: CommandSettings,
    /// `--print-config`: print [`Settings::render`] and exit 0.
    pub print_config: bool,
    /// The file read, and where its path came from.
    pub config_file: Option<(PathBuf, Source)>,
    /// Kubernetes service-link variables that were ignored; the binary logs
    /// them at debug once logging is set up.
    pub ignored_variables: Vec<String>,
    origins: Vec<print::Origin>,
    ignored_keys: Vec<String>,
}

/// Options every command has.
#[derive(Debug)]
pub struct CommonSettings {
    /// One or more engines, in the order given; never empty, no duplicates,
    /// each with how it is reached.
    pub engines: Vec<EngineSettings>,
    pub scope: Scope,
    pub min_age: Duration,
    /// `--concurrency auto|N`.
    pub concurrency: cascade_cleanup::Concurrency,
    pub timeout: Duration,
    pub log_format: LogFormat,
    /// `--allow-unproven-engine`: remove on an engine no row of the
    /// proven-engine table admits.
    pub allow_unproven_engine: bool,
    /// `--allow-plain-tcp`: plain `tcp://` to an engine off this host is
    /// allowed (each engine's `transport` already says how it is reached).
    pub allow_plain_tcp: bool,
}

#[derive(Debug)]
pub enum CommandSettings {
    Run(RunSettings),
    Prune(PruneSettings),
    Doctor,
}

impl CommandSettings {
    pub fn name(&self) -> CommandName {
        match self {
            CommandSettings::Run(_) => CommandName::Run,
            CommandSettings::Prune(_) => CommandName::Prune,
            CommandSettings::Doctor => CommandName::Doctor,
        }
    }
}

/// `run`'s options.
#[derive(Debug)]
pub struct RunSettings {
    /// At least [`MIN_INTERVAL`].
    pub interval: Duration,
    pub stop_deadline: Duration,
    /// `--metrics-addr`: serve /metrics and /healthz here; `None` = off.
    pub metrics_addr: Option<SocketAddr>,
    /// `--stale-intervals`: /healthz fails when the last completed sweep (of
    /// any result) is older than this many intervals.
    pub stale_intervals: NonZeroU32,
    /// Sweep on Docker events (`--no-events` turns it off).
    pub events: bool,
    /// `--event-debounce`: quiet time after the last event before a sweep.
    pub event_debounce: Duration,
    /// `--min-sweep-gap`: never sweep one engine more often than this.
    /// At least [`MIN_SWEEP_GAP`] and at most `interval` (a defaulted gap is
    /// capped to it; an explicit gap longer than the interval is refused).
    pub min_sweep_gap: Duration,
}

/// `prune`'s options.
#[derive(Debug)]
pub struct PruneSettings {
    pub dry_run: bool,
    pub output: Output,
    /// `--progress auto|bar|log|none`.
    pub progress: Progress,
}

/// A refused configuration: one line for the operator; exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError { message }
    }
}

/// Why no [`Settings`]: clap's own outcomes (help, version, usage errors)
/// are printed the clap way; everything else is a [`ConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses `args` (with the program name first) and `env` into [`Settings`].
/// Reads the `--config` file and checks TLS files exist; contacts nothing.
pub fn load<I, T>(args: I, env: &Environment) -> Result<Settings, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = cli::command().try_get_matches_from(args)?;
    let Some((command, sub)) = matches
        .subcommand()
        .and_then(|(name, sub)| Some((CommandName::from_name(name)?, sub)))
    else {
        return Err(ConfigError::new(
            "a command is required: run, prune or doctor; see `cascade-janitor --help`".into(),
        )
        .into());
    };
    let ignored_variables = env::check_names(env)?;
    let mut settings = resolve::resolve(command, sub, env)?;
    settings.ignored_variables = ignored_variables;
    Ok(settings)
}
