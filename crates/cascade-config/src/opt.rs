//! Every option of the janitor, declared once, in the table below. An entry
//! says:
//!
//! - `key`: the file key; the flag is `--` and the key with `-`, the
//!   variable `CASCADE_JANITOR_` and the key in capitals;
//! - `toml`: the TOML kind of its value in the file ([`Kind`]);
//! - `value`: its shape, type and default (see `declare.rs`);
//! - `parse`: the parser every source shares (clap's for the flag, unless
//!   `clap` sets another);
//! - `below_file`: a variable read after the file, before the default;
//! - `help`, and any other clap setting (`clap`).
//!
//! The section says which commands have it: `all`, `all_not_in_file` (the
//! options that configure the configuration itself), `run` or `prune`.
//! The `options!` macro (`declare.rs`) turns the table into the [`Opt`]
//! enum, the clap arguments, the file's serde struct and the merge of each
//! option with its `--print-config` line, so no option is looked up by a
//! string that could be misspelt, and adding one is one entry here plus its
//! field in the `Settings` (read in `resolve.rs`).
//!
//! Entries are in the order of `--help` and of the file's key list.

mod declare;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use cascade_cleanup::Concurrency;
use cascade_scope::{DEFAULT_LABEL, Label};

use crate::address::DEFAULT_SOCKET;
use crate::cli::{
    LogFormat, Output, Progress, parse_concurrency, parse_duration, parse_interval, parse_label,
    parse_metrics_addr, parse_min_sweep_gap, parse_path, parse_pem_path, parse_positive_duration,
    parse_stale_intervals, parse_text,
};
use declare::options;

options! {
    all: {
        DockerHost {
            // Checked after the merge, not by a parser: a URL with
            // credentials must be refused before any message quotes it.
            key: docker_host, toml: List, value: list(String) = DEFAULT_SOCKET, parse: parse_text,
            below_file: "DOCKER_HOST",
            help: "Docker engine address: unix:///path/to/docker.sock or tcp://HOST:PORT. \
                   Repeatable: `run` sweeps each engine independently",
            clap: { value_name("URL") },
        }
        Label {
            // clap's id is `labels`, as it always was; users see the flag and the key.
            key: label as "labels", toml: List, value: list(Label) = DEFAULT_LABEL,
            parse: parse_label,
            help: "Only images carrying this label with exactly this value \
                   (repeatable: all must match)",
            clap: { value_name("KEY=VALUE") },
        }
        MinAge {
            key: min_age, toml: Str, value: one(Duration) = "10m", parse: parse_duration,
            help: "Keep images younger than this: they may be steps of a running build \
                   (0s disables)",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
        Concurrency {
            key: concurrency, toml: IntOrStr, value: one(Concurrency) = "auto",
            parse: parse_concurrency,
            help: "Removals in flight at once: auto (a window that follows the engine's \
                   latency, up to a per-store maximum, pausing when the engine is slow so its \
                   other clients are served) or a fixed number N (at least 1)",
            clap: { value_name("auto|N"), allow_hyphen_values(true) },
        }
        Timeout {
            key: timeout, toml: Str, value: one(Duration) = "60s", parse: parse_positive_duration,
            help: "Deadline of each Docker call",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
        LogFormat {
            key: log_format, toml: Str, value: choice(LogFormat) = "text",
            help: "Log format (logs go to stderr; RUST_LOG sets the level, default info)",
        }
        TlsCa {
            key: tls_ca, toml: Str, value: maybe(PathBuf), parse: parse_pem_path,
            help: "CA certificate (PEM) that signed the engine's certificate, for tcp:// \
                   engines over TLS (default with DOCKER_TLS_VERIFY: $DOCKER_CERT_PATH/ca.pem)",
            // On the command line any path, as clap takes it.
            clap: { value_name("PATH"), value_parser(clap::value_parser!(PathBuf)) },
        }
        TlsCert {
            key: tls_cert, toml: Str, value: maybe(PathBuf), parse: parse_pem_path,
            help: "Client certificate (PEM) for tcp:// engines over TLS; needs --tls-key",
            clap: { value_name("PATH"), value_parser(clap::value_parser!(PathBuf)) },
        }
        TlsKey {
            key: tls_key, toml: Str, value: maybe(PathBuf), parse: parse_pem_path,
            help: "Private key (PEM) of --tls-cert",
            clap: { value_name("PATH"), value_parser(clap::value_parser!(PathBuf)) },
        }
        AllowPlainTcp {
            key: allow_plain_tcp, toml: Bool, value: switch,
            help: "Allow plain (unencrypted, unauthenticated) tcp:// to an engine that is \
                   not on the loopback address",
        }
        AllowUnprovenEngine {
            key: allow_unproven_engine, toml: Bool, value: switch,
            help: "Remove on an engine the janitor has not been proven on (Docker 29 and \
                   later, Podman other than 4.3 and 5.4 to 5.8, other implementations), with \
                   its most careful strategy; without it such an engine is refused for removal \
                   (prune and run exit 1; doctor and prune --dry-run still work)",
        }
    }
    all_not_in_file: {
        Config {
            key: config, toml: Str, value: maybe(PathBuf), parse: parse_path,
            help: "TOML file of defaults (keys = long option names with - replaced by _); \
                   flags and CASCADE_JANITOR_* variables win over it",
            clap: { value_name("PATH"), value_parser(clap::value_parser!(PathBuf)) },
        }
        PrintConfig {
            key: print_config, toml: Bool, value: switch,
            help: "Print the effective configuration and where each value came from, then \
                   exit 0 without contacting any engine",
        }
    }
    run: {
        Interval {
            key: interval, toml: Str, value: one(Duration) = "30m", parse: parse_interval,
            help: "Time between sweeps (at least 1s)",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
        StopDeadline {
            key: stop_deadline, toml: Str, value: one(Duration) = "30s", parse: parse_duration,
            help: "How long shutdown waits for an in-flight sweep",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
        MetricsAddr {
            key: metrics_addr, toml: Str, value: maybe(SocketAddr), parse: parse_metrics_addr,
            help: "Serve /metrics and /healthz on this address, e.g. 127.0.0.1:9464 \
                   (off when unset)",
            clap: { value_name("ADDR") },
        }
        StaleIntervals {
            key: stale_intervals, toml: Int, value: one(NonZeroU32) = "3",
            parse: parse_stale_intervals,
            help: "/healthz fails when the last completed sweep (of any result) is older \
                   than this many intervals",
            clap: { value_name("N"), allow_hyphen_values(true) },
        }
        NoEvents {
            key: no_events, toml: Bool, value: switch,
            help: "Do not sweep on Docker events; sweep on the interval only",
        }
        EventDebounce {
            key: event_debounce, toml: Str, value: one(Duration) = "5s", parse: parse_duration,
            help: "Wait this long after the last relevant event before sweeping",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
        MinSweepGap {
            key: min_sweep_gap, toml: Str, value: one(Duration) = "60s",
            parse: parse_min_sweep_gap,
            help: "Never sweep one engine more often than this, whatever triggers the sweep \
                   (at least 1s, at most --interval)",
            clap: { value_name("DURATION"), allow_hyphen_values(true) },
        }
    }
    prune: {
        DryRun {
            key: dry_run, toml: Bool, value: switch,
            help: "Remove nothing; print what would be removed and why each other image is kept",
        }
        Output {
            key: output, toml: Str, value: choice(Output) = "text",
            help: "Report format on stdout",
        }
        Progress {
            key: progress, toml: Str, value: choice(Progress) = "auto",
            help: "Progress on stderr: bar on a terminal, log lines otherwise (auto), or none",
        }
    }
}

/// A command, for "this key belongs to another command" notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandName {
    Run,
    Prune,
    Doctor,
}

impl CommandName {
    pub const ALL: [CommandName; 3] = [CommandName::Run, CommandName::Prune, CommandName::Doctor];

    pub fn from_name(name: &str) -> Option<CommandName> {
        CommandName::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::Run => "run",
            CommandName::Prune => "prune",
            CommandName::Doctor => "doctor",
        }
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What TOML type a key's value has in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    /// A whole number, or a string such as `"auto"`.
    IntOrStr,
    Bool,
    List,
}

impl Kind {
    pub fn what(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "a whole number",
            Kind::IntOrStr => "a whole number or a string",
            Kind::Bool => "true or false",
            Kind::List => "an array of strings",
        }
    }
}

impl Opt {
    /// The option of a clap argument (the tests check clap against the table).
    #[cfg(test)]
    pub fn from_id(id: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|k| k.id() == id)
    }

    pub fn from_name(name: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|k| k.name() == name)
    }

    /// `--min-age`.
    pub fn flag(self) -> String {
        format!("--{}", self.name().replace('_', "-"))
    }

    /// `CASCADE_JANITOR_MIN_AGE`.
    pub fn env(self) -> String {
        format!("{}{}", crate::env::PREFIX, self.name().to_ascii_uppercase())
    }

    /// The help line, ending with where else the value can come from.
    fn help(self) -> String {
        let help = self.help_text();
        match self.below_file() {
            Some(below) => format!(
                "{help} [env: {} (comma-separated), then {below}; default: {}]",
                self.env(),
                self.default().unwrap_or_default()
            ),
            None => format!("{help} [env: {}]", self.env()),
        }
    }
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key is an argument of exactly its commands, with its long name;
    /// every argument of every command is a key.
    #[test]
    fn keys_are_the_clap_arguments() {
        let command = crate::cli::command();
        for sub in command.get_subcommands() {
            let name = sub.get_name();
            for arg in sub.get_arguments() {
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                let key = Opt::from_id(arg.get_id().as_str())
                    .unwrap_or_else(|| panic!("{name}: `{}` is no Opt", arg.get_id()));
                assert_eq!(arg.get_long().map(|l| format!("--{l}")), Some(key.flag()));
                assert!(
                    key.commands().iter().any(|c| c.as_str() == name),
                    "{key} is an argument of {name}"
                );
            }
            for key in Opt::ALL {
                let has = sub.get_arguments().any(|a| a.get_id() == key.id());
                let should = key.commands().iter().any(|c| c.as_str() == name);
                assert_eq!(has, should, "{key} in {name}");
            }
        }
        assert_eq!(Opt::MinAge.env(), "CASCADE_JANITOR_MIN_AGE");
        assert_eq!(Opt::Label.flag(), "--label");
        assert_eq!(Opt::Label.id(), "labels");
    }
}
