//! The effective configuration: flag > `CASCADE_JANITOR_*` variable > TOML
//! file (`--config`) > default, resolved into one [`Settings`] before
//! anything contacts an engine.
//!
//! clap parses flags and variables and fills defaults;
//! `ArgMatches::value_source` then says, for each option, whether its value
//! came from the command line, the environment or the default. Only a
//! defaulted value is replaced by the file's, and the file's value goes
//! through the same parser as the flag's, so a value that is refused on the
//! command line is refused in the file too.
//!
//! The file is flat. Its keys are the long option names with `-` replaced by
//! `_`, derived from the clap definitions in `cli.rs`. A key that is no
//! option of any command is refused (exit 2, naming the key, file and line).
//! A key that belongs to another command only (`interval` while running
//! `prune`) is accepted and ignored, with a note in `--print-config`: one file
//! can then serve the daemon and an operator's `prune --dry-run` or `doctor`
//! against the same engines.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cascade_scope::Scope;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, ValueEnum};

use crate::Failure;
use crate::cli::{self, Cli, LogFormat, Output, Progress};
use crate::engine;

/// Options that configure the configuration itself: never file keys.
const NOT_IN_FILE: &[&str] = &["config", "print_config", "help", "version"];

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--flag` on the command line.
    Flag(String),
    /// An environment variable (`CASCADE_JANITOR_*`, or `DOCKER_HOST`).
    Env(String),
    /// The `--config` file, with the key's line when known.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    Default,
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
    origins: Vec<Origin>,
    ignored: Vec<String>,
}

/// Options every command has.
#[derive(Debug)]
pub struct CommonSettings {
    /// One or more engines, in the order given; never empty, no duplicates.
    pub docker_hosts: Vec<String>,
    pub scope: Scope,
    pub min_age: Duration,
    pub concurrency: NonZeroUsize,
    pub timeout: Duration,
    pub log_format: LogFormat,
}

#[derive(Debug)]
pub enum CommandSettings {
    Run(RunSettings),
    Prune(PruneSettings),
    Doctor,
}

/// `run`'s options.
// metrics_addr, stale_intervals, events, event_debounce and min_sweep_gap
// are resolved and validated here; main.rs wires their behaviour.
#[derive(Debug)]
pub struct RunSettings {
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
    /// Always at most `interval` (a defaulted gap is capped to it; an explicit
    /// gap longer than the interval is refused).
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

/// One line of `--print-config`.
#[derive(Debug)]
struct Origin {
    key: String,
    /// The value as TOML, or `None` for an unset optional value.
    value: Option<String>,
    source: Source,
    note: Option<String>,
}

/// Why no [`Settings`]: clap's own errors (help, version, usage) are printed
/// the clap way; everything else is one line with exit 2.
#[derive(Debug)]
pub enum LoadError {
    Clap(clap::Error),
    Failure(Failure),
}

impl From<Failure> for LoadError {
    fn from(failure: Failure) -> LoadError {
        LoadError::Failure(failure)
    }
}

/// Parses `args` (with the program name first) and the process environment.
pub fn load<I, T>(args: I) -> Result<Settings, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Cli::command();
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(LoadError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    let Some((name, sub)) = matches.subcommand() else {
        return Err(LoadError::Failure(Failure::usage(
            "a command is required: run, prune or doctor; see `cascade-janitor --help`".into(),
        )));
    };
    check_env_names(std::env::vars_os().map(|(name, _)| name), &command)?;
    let all_keys = keys_by_command(&command);
    let sub_command = command
        .find_subcommand(name)
        .cloned()
        .ok_or_else(|| Failure::usage(format!("unknown command `{name}`")))?;
    let (common, run, prune) = match cli.command {
        cli::Command::Run(args) => (
            args.common,
            Some((
                args.interval,
                args.stop_deadline,
                args.metrics_addr,
                args.stale_intervals,
                args.no_events,
                args.event_debounce,
                args.min_sweep_gap,
            )),
            None,
        ),
        cli::Command::Prune(args) => (
            args.common,
            None,
            Some((args.dry_run, args.output, args.progress)),
        ),
        cli::Command::Doctor(args) => (args.common, None, None),
    };
    let mut r = Resolver {
        matches: sub,
        command: &sub_command,
        file: None,
        origins: Vec::new(),
    };
    let config_file = match &common.config {
        Some(path) => {
            let source = r.clap_source("config");
            r.file = Some(ConfigFile::read(path, &source)?);
            Some((path.clone(), source))
        }
        None => None,
    };
    let ignored = match &r.file {
        Some(file) => file.check_keys(name, &all_keys)?,
        None => Vec::new(),
    };

    if name == "run" {
        refuse_dry_run(r.file.as_ref())?;
    }

    let docker_hosts = r.docker_hosts(common.docker_host)?;
    let labels = r.list("labels", common.labels, cli::parse_label)?;
    let scope =
        Scope::new(labels.iter().cloned()).map_err(|e| r.error("labels", &e.to_string()))?;
    let common = CommonSettings {
        docker_hosts,
        scope,
        min_age: r.scalar(
            "min_age",
            common.min_age,
            Kind::Str,
            cli::parse_duration,
            show_duration,
        )?,
        concurrency: r.scalar(
            "concurrency",
            common.concurrency,
            Kind::Int,
            cli::parse_concurrency,
            |n| n.to_string(),
        )?,
        timeout: r.scalar(
            "timeout",
            common.timeout,
            Kind::Str,
            cli::parse_positive_duration,
            show_duration,
        )?,
        log_format: r.scalar(
            "log_format",
            common.log_format,
            Kind::Str,
            value_enum,
            show_enum,
        )?,
    };
    let command = if let Some((
        interval,
        stop_deadline,
        metrics_addr,
        stale,
        no_events,
        debounce,
        gap,
    )) = run
    {
        let interval = r.scalar(
            "interval",
            interval,
            Kind::Str,
            cli::parse_positive_duration,
            show_duration,
        )?;
        let stop_deadline = r.scalar(
            "stop_deadline",
            stop_deadline,
            Kind::Str,
            cli::parse_duration,
            show_duration,
        )?;
        let metrics_addr = r.optional(
            "metrics_addr",
            metrics_addr,
            |s| cascade_metrics::parse_metrics_addr(s).map_err(|e| e.to_string()),
            |a| show_str(&a.to_string()),
        )?;
        let stale_intervals = r.scalar(
            "stale_intervals",
            stale,
            Kind::Int,
            cli::parse_stale_intervals,
            |n| n.to_string(),
        )?;
        if interval.saturating_mul(stale_intervals.get()) > cli::MAX_DURATION {
            return Err(r
                .error(
                    "stale_intervals",
                    &format!(
                        "{stale_intervals} intervals of {} is too long; at most 100 years (36500d): lower it or the interval",
                        humantime::format_duration(interval)
                    ),
                )
                .into());
        }
        let no_events = r.scalar("no_events", no_events, Kind::Bool, parse_bool, |b| {
            b.to_string()
        })?;
        let event_debounce = r.scalar(
            "event_debounce",
            debounce,
            Kind::Str,
            cli::parse_duration,
            show_duration,
        )?;
        let mut min_sweep_gap = r.scalar(
            "min_sweep_gap",
            gap,
            Kind::Str,
            cli::parse_duration,
            show_duration,
        )?;
        if min_sweep_gap > interval {
            if r.source_of("min_sweep_gap") == Some(Source::Default) {
                // The default gap is meant as a floor against event storms,
                // not as a way to slow an operator's short --interval.
                min_sweep_gap = interval;
                r.annotate(
                    "min_sweep_gap",
                    show_duration(&interval),
                    "capped at interval (the default is 60s)",
                );
            } else {
                return Err(r
                    .error(
                        "min_sweep_gap",
                        &format!(
                            "{} is longer than interval ({}); scheduled sweeps would be skipped: lower it to at most the interval",
                            humantime::format_duration(min_sweep_gap),
                            humantime::format_duration(interval)
                        ),
                    )
                    .into());
            }
        }
        CommandSettings::Run(RunSettings {
            interval,
            stop_deadline,
            metrics_addr,
            stale_intervals,
            events: !no_events,
            event_debounce,
            min_sweep_gap,
        })
    } else if let Some((dry_run, output, progress)) = prune {
        CommandSettings::Prune(PruneSettings {
            dry_run: r.scalar("dry_run", dry_run, Kind::Bool, parse_bool, |b| {
                b.to_string()
            })?,
            output: r.scalar("output", output, Kind::Str, value_enum, show_enum)?,
            progress: r.scalar("progress", progress, Kind::Str, value_enum, show_enum)?,
        })
    } else {
        CommandSettings::Doctor
    };
    Ok(Settings {
        common,
        command,
        print_config: common_print_config(sub),
        config_file,
        origins: r.origins,
        ignored,
    })
}

/// The prefix of every variable the binary reads for an option.
const ENV_PREFIX: &str = "CASCADE_JANITOR_";

/// Every option variable of every command, from the clap definitions.
fn env_names(command: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|s| s.get_arguments()))
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Refuses a `CASCADE_JANITOR_*` variable that is no option of any command:
/// a misspelt one (`CASCADE_JANITOR_LABELS`) would otherwise leave the
/// default in force, e.g. a wider scope than the operator meant. A variable
/// of another command only is fine here (see [`refuse_dry_run`]).
fn check_env_names(
    names: impl IntoIterator<Item = OsString>,
    command: &clap::Command,
) -> Result<(), Failure> {
    let valid = env_names(command);
    for name in names {
        let name = name.to_string_lossy();
        if !name.starts_with(ENV_PREFIX) || valid.iter().any(|v| *v == name) {
            continue;
        }
        let shown: String = name.escape_debug().collect();
        let hint = nearest(&name, &valid)
            .map(|n| format!(" (did you mean {n}?)"))
            .unwrap_or_default();
        return Err(Failure::usage(format!(
            "environment variable {shown} is no cascade-janitor option{hint}; unset it (an option's variable is CASCADE_JANITOR_ and its long name in capitals, e.g. CASCADE_JANITOR_MIN_AGE for --min-age)"
        )));
    }
    Ok(())
}

/// The valid name closest to `name`: one it starts with or that starts with
/// it, else one within a few edits.
fn nearest<'a>(name: &str, valid: &'a [String]) -> Option<&'a str> {
    let prefixed = valid
        .iter()
        .filter(|v| name.starts_with(v.as_str()) || v.starts_with(name))
        .max_by_key(|v| v.len());
    if let Some(v) = prefixed {
        return Some(v);
    }
    valid
        .iter()
        .map(|v| (edit_distance(name, v), v))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.as_str())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The variable `--dry-run` of `prune` reads.
const DRY_RUN_ENV: &str = "CASCADE_JANITOR_DRY_RUN";

/// `run` has no dry-run mode: a dry-run request from the file or the
/// environment must never turn into a removing daemon, so it is refused
/// rather than ignored. `dry_run = false` (or a falsey variable) is ignored.
fn refuse_dry_run(file: Option<&ConfigFile>) -> Result<(), Failure> {
    const WHY: &str = "run has no dry-run mode; use `prune --dry-run`";
    if let Some(file) = file
        && let Some(entry) = file.entries.get("dry_run")
        && !matches!(entry.value, toml::Value::Boolean(false))
    {
        return Err(Failure::usage(format!(
            "config file {}{}: `dry_run = {}`: {WHY}, or remove dry_run from {}",
            file.path.display(),
            entry
                .line
                .map(|l| format!(", line {l}"))
                .unwrap_or_default(),
            match &entry.value {
                toml::Value::String(text) => show_str(text),
                toml::Value::Boolean(b) => b.to_string(),
                other => format!("<{}>", other.type_str()),
            },
            file.path.display()
        )));
    }
    if let Some(value) = std::env::var_os(DRY_RUN_ENV)
        && env_flag_is_set(&value.to_string_lossy())
    {
        return Err(Failure::usage(format!(
            "{DRY_RUN_ENV}={}: {WHY}, or unset {DRY_RUN_ENV}",
            value.to_string_lossy().escape_debug()
        )));
    }
    Ok(())
}

/// Whether a switch's variable turns it on, the way clap reads it for
/// `prune --dry-run`: anything but empty, n, no, f, false, off or 0.
fn env_flag_is_set(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty()
        && !["n", "no", "f", "false", "off", "0"]
            .iter()
            .any(|f| value.eq_ignore_ascii_case(f))
}

fn common_print_config(matches: &ArgMatches) -> bool {
    matches.get_flag("print_config")
}

/// Every file key, with the commands that have it.
fn keys_by_command(command: &clap::Command) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for sub in command.get_subcommands() {
        for arg in sub.get_arguments() {
            if let Some(key) = file_key(arg) {
                keys.entry(key)
                    .or_default()
                    .push(sub.get_name().to_string());
            }
        }
    }
    keys
}

fn file_key(arg: &clap::Arg) -> Option<String> {
    let key = arg.get_long()?.replace('-', "_");
    (!NOT_IN_FILE.contains(&key.as_str())).then_some(key)
}

/// What TOML type a key's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "a whole number",
            Kind::Bool => "true or false",
        }
    }
}

struct Resolver<'a> {
    matches: &'a ArgMatches,
    command: &'a clap::Command,
    file: Option<ConfigFile>,
    origins: Vec<Origin>,
}

impl Resolver<'_> {
    fn arg(&self, id: &str) -> &clap::Arg {
        self.command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| {
                unreachable!("`{id}` is an argument of `{}`", self.command.get_name())
            })
    }

    fn key(&self, id: &str) -> String {
        file_key(self.arg(id)).unwrap_or_else(|| id.to_string())
    }

    /// Flag, env or default, as clap saw it.
    fn clap_source(&self, id: &str) -> Source {
        let arg = self.arg(id);
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => {
                Source::Flag(format!("--{}", arg.get_long().unwrap_or(id)))
            }
            Some(ValueSource::EnvVariable) => Source::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            _ => Source::Default,
        }
    }

    fn source_of(&self, id: &str) -> Option<Source> {
        let key = self.key(id);
        self.origins
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.source.clone())
    }

    fn annotate(&mut self, id: &str, value: String, note: &str) {
        let key = self.key(id);
        if let Some(origin) = self.origins.iter_mut().find(|o| o.key == key) {
            origin.value = Some(value);
            origin.note = Some(note.to_string());
        }
    }

    /// The file's entry for `id`, when clap only had a default for it.
    fn file_entry(&self, id: &str) -> Option<(&FileEntry, Source)> {
        if self.clap_source(id) != Source::Default {
            return None;
        }
        let file = self.file.as_ref()?;
        let entry = file.entries.get(&self.key(id))?;
        Some((
            entry,
            Source::File {
                path: file.path.clone(),
                line: entry.line,
            },
        ))
    }

    /// A one-line error about `id`'s effective value, naming where it came from.
    fn error(&self, id: &str, why: &str) -> Failure {
        let key = self.key(id);
        let source = self.source_of(id).unwrap_or_else(|| self.clap_source(id));
        Failure::usage(match source {
            Source::File { path, line } => format!(
                "config file {}{}: `{key}`: {why}",
                path.display(),
                line.map(|l| format!(", line {l}")).unwrap_or_default()
            ),
            Source::Env(var) => format!("{var}: {why}"),
            Source::Flag(flag) => format!("{flag}: {why}"),
            Source::Default => format!("--{}: {why}", key.replace('_', "-")),
        })
    }

    fn file_error(&self, id: &str, entry: &FileEntry, why: &str) -> Failure {
        let file = self
            .file
            .as_ref()
            .map(|f| f.path.display().to_string())
            .unwrap_or_default();
        Failure::usage(format!(
            "config file {file}{}: `{}`: {why}",
            entry
                .line
                .map(|l| format!(", line {l}"))
                .unwrap_or_default(),
            self.key(id)
        ))
    }

    /// An example line for the file, from the option's default.
    fn example(&self, id: &str, kind: Kind) -> String {
        let key = self.key(id);
        let arg = self.arg(id);
        let default = arg
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned());
        let value = match (kind, default) {
            (Kind::Str, Some(d)) => show_str(&d),
            (Kind::Str, None) => show_str("..."),
            (Kind::Int, d) => d.unwrap_or_else(|| "1".into()),
            (Kind::Bool, _) => "true".into(),
        };
        format!("e.g. {key} = {value}")
    }

    fn record(&mut self, id: &str, value: Option<String>, source: Source) {
        let key = self.key(id);
        self.origins.push(Origin {
            key,
            value,
            source,
            note: None,
        });
    }

    fn file_scalar(&self, id: &str, entry: &FileEntry, kind: Kind) -> Result<String, Failure> {
        let text = match (&entry.value, kind) {
            (toml::Value::String(s), Kind::Str) => Some(s.clone()),
            (toml::Value::Integer(n), Kind::Int) => Some(n.to_string()),
            (toml::Value::Boolean(b), Kind::Bool) => Some(b.to_string()),
            _ => None,
        };
        text.ok_or_else(|| {
            self.file_error(
                id,
                entry,
                &format!(
                    "expected {}, found {}; {}",
                    kind.what(),
                    entry.value.type_str(),
                    self.example(id, kind)
                ),
            )
        })
    }

    /// The file's value for `id`, through the flag's parser, when clap only
    /// had a default for it.
    fn file_value<T>(
        &self,
        id: &str,
        kind: Kind,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<(T, Source)>, Failure> {
        let Some((entry, source)) = self.file_entry(id) else {
            return Ok(None);
        };
        let text = self.file_scalar(id, entry, kind)?;
        let value = parse(&text)
            .map_err(|why| self.file_error(id, entry, &format!("invalid value `{text}`: {why}")))?;
        Ok(Some((value, source)))
    }

    fn scalar<T>(
        &mut self,
        id: &str,
        clap_value: T,
        kind: Kind,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Result<T, Failure> {
        let (value, source) = self
            .file_value(id, kind, parse)?
            .unwrap_or_else(|| (clap_value, self.clap_source(id)));
        self.record(id, Some(show(&value)), source);
        Ok(value)
    }

    fn optional<T>(
        &mut self,
        id: &str,
        clap_value: Option<T>,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Result<Option<T>, Failure> {
        let (value, source) = match self.file_value(id, Kind::Str, parse)? {
            Some((value, source)) => (Some(value), source),
            None => (clap_value, self.clap_source(id)),
        };
        self.record(id, value.as_ref().map(show), source);
        Ok(value)
    }

    /// The file's list for `id`: an array of strings (a single string is a
    /// list of one).
    fn file_list(&self, id: &str, entry: &FileEntry) -> Result<Vec<String>, Failure> {
        let wrong = || {
            self.file_error(
                id,
                entry,
                &format!(
                    "expected an array of strings, found {}; e.g. {} = [{}]",
                    entry.value.type_str(),
                    self.key(id),
                    show_str(
                        &self
                            .arg(id)
                            .get_default_values()
                            .first()
                            .map(|v| v.to_string_lossy().into_owned())
                            .unwrap_or_else(|| engine::DEFAULT_SOCKET.to_string())
                    )
                ),
            )
        };
        match &entry.value {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string).ok_or_else(wrong))
                .collect(),
            _ => Err(wrong()),
        }
    }

    fn list<T: fmt::Display>(
        &mut self,
        id: &str,
        clap_values: Vec<T>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, Failure> {
        let (values, source) = match self.file_entry(id) {
            Some((entry, source)) => {
                let texts = self.file_list(id, entry)?;
                let values = texts
                    .iter()
                    .map(|text| {
                        parse(text).map_err(|why| {
                            self.file_error(id, entry, &format!("invalid value `{text}`: {why}"))
                        })
                    })
                    .collect::<Result<Vec<T>, Failure>>()?;
                (values, source)
            }
            None => (clap_values, self.clap_source(id)),
        };
        let shown = values
            .iter()
            .map(|v| show_str(&v.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        self.record(id, Some(format!("[{shown}]")), source);
        Ok(values)
    }

    /// Flag/env, then file, then `DOCKER_HOST`, then the local socket.
    fn docker_hosts(&mut self, clap_values: Vec<String>) -> Result<Vec<String>, Failure> {
        let id = "docker_host";
        let mut hosts = self.list(id, clap_values, cli::parse_docker_host)?;
        if self.source_of(id) == Some(Source::Default) {
            self.origins.pop();
            let (host, source) = match std::env::var("DOCKER_HOST") {
                Ok(host) if !host.trim().is_empty() => {
                    let host = host.trim().to_string();
                    engine::parse_host(&host).map_err(|why| {
                        Failure::usage(format!(
                            "DOCKER_HOST `{host}` is not a valid engine address: {why}; fix it, unset it, or pass --docker-host"
                        ))
                    })?;
                    (host, Source::Env("DOCKER_HOST".into()))
                }
                _ => (engine::DEFAULT_SOCKET.to_string(), Source::Default),
            };
            hosts = vec![host];
            self.record(id, Some(format!("[{}]", show_str(&hosts[0]))), source);
        }
        if hosts.is_empty() {
            return Err(self.error(id, "no engine given; list at least one, e.g. docker_host = [\"unix:///var/run/docker.sock\"]"));
        }
        let mut seen: Vec<(engine::Address, &String)> = Vec::new();
        for host in &hosts {
            let address = engine::parse_host(host).map_err(|why| self.error(id, &why))?;
            if let Some((_, first)) = seen.iter().find(|(a, _)| *a == address) {
                let why = if *first == host {
                    format!("`{host}` is given twice; list each engine once")
                } else {
                    format!("`{first}` and `{host}` are the same engine; list each engine once")
                };
                return Err(self.error(id, &why));
            }
            seen.push((address, host));
        }
        Ok(hosts)
    }
}

/// A key's value in the file and its line.
#[derive(Debug)]
struct FileEntry {
    value: toml::Value,
    line: Option<usize>,
}

#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    entries: BTreeMap<String, FileEntry>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

impl ConfigFile {
    fn read(path: &Path, source: &Source) -> Result<ConfigFile, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read config file {} ({e}); fix the path given by {source} or remove it",
                path.display()
            ))
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<ConfigFile, Failure> {
        type Spanned<T> = toml::Spanned<T>;
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> = toml::from_str(text)
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| format!(", line {}", line_of(text, s.start)))
                    .unwrap_or_default();
                let message = e.message().trim().replace('\n', " ");
                Failure::usage(format!(
                    "config file {}{line} is not valid TOML: {message}; write one `key = value` per line, e.g. min_age = \"10m\"",
                    path.display()
                ))
            })?;
        let entries = table
            .into_iter()
            .map(|(key, value)| {
                let line = Some(line_of(text, key.span().start));
                (
                    key.into_inner(),
                    FileEntry {
                        value: value.into_inner(),
                        line,
                    },
                )
            })
            .collect();
        Ok(ConfigFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Refuses keys that are no option at all; returns the notes for keys
    /// of another command, which are ignored.
    fn check_keys(
        &self,
        command: &str,
        keys: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<String>, Failure> {
        let mut ignored = Vec::new();
        for (key, entry) in &self.entries {
            let at = format!(
                "config file {}{}",
                self.path.display(),
                entry
                    .line
                    .map(|l| format!(", line {l}"))
                    .unwrap_or_default()
            );
            if let toml::Value::Table(_) = entry.value {
                return Err(Failure::usage(format!(
                    "{at}: `[{key}]`: the config file is flat, without sections; write its keys at the top level, e.g. interval = \"30m\""
                )));
            }
            match keys.get(key) {
                Some(commands) if commands.iter().any(|c| c == command) => {}
                Some(commands) => ignored.push(format!(
                    "{key} (line {}, only for {})",
                    entry.line.unwrap_or(0),
                    commands.join(", ")
                )),
                None if NOT_IN_FILE.contains(&key.as_str()) => {
                    return Err(Failure::usage(format!(
                        "{at}: `{key}` cannot be set in the config file; use --{} on the command line",
                        key.replace('_', "-")
                    )));
                }
                None => {
                    let valid: Vec<&str> = keys.keys().map(String::as_str).collect();
                    return Err(Failure::usage(format!(
                        "{at}: unknown key `{key}`; keys are the long options with - replaced by _: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        Ok(ignored)
    }
}

impl Settings {
    /// `--print-config`: the effective configuration as a TOML file that
    /// would reproduce it, each line saying where its value came from.
    pub fn render(&self, command: &str) -> String {
        let mut out = format!(
            "# cascade-janitor {command}: effective configuration (flag > env > file > default)\n"
        );
        match &self.config_file {
            Some((path, source)) => {
                out += &format!("# config file: {} ({source})\n", path.display());
            }
            None => out += "# config file: none\n",
        }
        let width = self
            .origins
            .iter()
            .map(|o| o.key.len() + o.value.as_deref().map_or(0, str::len))
            .max()
            .unwrap_or(0)
            + 3;
        for origin in &self.origins {
            let line = match &origin.value {
                Some(value) => format!("{} = {value}", origin.key),
                None => format!("# {} not set (off)", origin.key),
            };
            let note = origin
                .note
                .as_ref()
                .map(|n| format!(", {n}"))
                .unwrap_or_default();
            out += &format!("{line:<width$}  # {}{note}\n", origin.source);
        }
        for ignored in &self.ignored {
            out += &format!("# ignored from the config file: {ignored}\n");
        }
        out
    }
}

fn show_str(s: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn show_duration(d: &Duration) -> String {
    show_str(&humantime::format_duration(*d).to_string())
}

fn show_enum<T: ValueEnum>(value: &T) -> String {
    show_str(
        value
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .as_deref()
            .unwrap_or("?"),
    )
}

fn value_enum<T: ValueEnum>(s: &str) -> Result<T, String> {
    T::from_str(s, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("expected one of: {}", names.join(", "))
    })
}

fn parse_bool(s: &str) -> Result<bool, String> {
    s.parse().map_err(|_| "expected true or false".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<ConfigFile, Failure> {
        ConfigFile::parse(Path::new("/etc/janitor.toml"), text)
    }

    #[test]
    fn keys_come_from_the_long_options() {
        let keys = keys_by_command(&Cli::command());
        for key in [
            "docker_host",
            "label",
            "min_age",
            "concurrency",
            "timeout",
            "log_format",
            "interval",
            "stop_deadline",
            "metrics_addr",
            "stale_intervals",
            "no_events",
            "event_debounce",
            "min_sweep_gap",
            "dry_run",
            "output",
            "progress",
        ] {
            assert!(keys.contains_key(key), "{key}");
        }
        assert!(!keys.contains_key("config") && !keys.contains_key("print_config"));
        assert_eq!(keys["interval"], vec!["run".to_string()]);
        assert_eq!(keys["min_age"].len(), 3);
    }

    #[test]
    fn bad_toml_names_the_file_and_line() {
        let err = file("min_age = \"10m\"\ninterval = \n").expect_err("bad toml");
        assert!(
            err.message.contains("/etc/janitor.toml, line 2"),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert_eq!(err.code, crate::EXIT_USAGE);
    }

    #[test]
    fn keys_are_checked() {
        let keys = keys_by_command(&Cli::command());
        let f = file("min_age = \"1m\"\n\nintervl = \"5m\"\n").expect("toml");
        let err = f.check_keys("run", &keys).expect_err("unknown");
        assert!(
            err.message.contains("line 3: unknown key `intervl`"),
            "{}",
            err.message
        );
        let f = file("interval = \"5m\"\n").expect("toml");
        let ignored = f.check_keys("prune", &keys).expect("another command's key");
        assert_eq!(ignored, vec!["interval (line 1, only for run)".to_string()]);
        let f = file("[run]\ninterval = \"5m\"\n").expect("toml");
        assert!(
            f.check_keys("run", &keys)
                .expect_err("section")
                .message
                .contains("flat")
        );
        let f = file("config = \"/x\"\n").expect("toml");
        assert!(
            f.check_keys("run", &keys)
                .expect_err("config")
                .message
                .contains("--config")
        );
    }

    #[test]
    fn env_names_come_from_every_command() {
        let command = Cli::command();
        let names = env_names(&command);
        for name in [
            "CASCADE_JANITOR_CONFIG",
            "CASCADE_JANITOR_PRINT_CONFIG",
            "CASCADE_JANITOR_LABEL",
            "CASCADE_JANITOR_INTERVAL",
            "CASCADE_JANITOR_DRY_RUN",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
        let check = |name: &str| check_env_names([OsString::from(name)], &command);
        assert!(check("CASCADE_JANITOR_DRY_RUN").is_ok());
        assert!(check("DOCKER_HOST").is_ok());
        let err = check("CASCADE_JANITOR_LABELS").expect_err("plural");
        assert_eq!(err.code, crate::EXIT_USAGE);
        assert!(
            err.message.contains("did you mean CASCADE_JANITOR_LABEL?"),
            "{}",
            err.message
        );
        let err = check("CASCADE_JANITOR_\nX").expect_err("odd name");
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert_eq!(
            nearest("CASCADE_JANITOR_TIMOUT", &names),
            Some("CASCADE_JANITOR_TIMEOUT")
        );
        assert_eq!(nearest("CASCADE_JANITOR_ZZZZZZZZZZ", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
