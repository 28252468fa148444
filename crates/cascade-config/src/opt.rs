//! Every option as a value of one enum: its clap id, flag, variable, file
//! key and commands come from one `match`, so no option is looked up by a
//! string that could be misspelt (the tests check each against clap).

use std::fmt;

/// One option of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Opt {
    DockerHost,
    Label,
    MinAge,
    Concurrency,
    Timeout,
    LogFormat,
    TlsCa,
    TlsCert,
    TlsKey,
    AllowPlainTcp,
    AllowUnprovenEngine,
    Config,
    PrintConfig,
    Interval,
    StopDeadline,
    MetricsAddr,
    StaleIntervals,
    NoEvents,
    EventDebounce,
    MinSweepGap,
    DryRun,
    Output,
    Progress,
}

/// A command, for "this key belongs to another command" notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandName {
    Run,
    Prune,
    Doctor,
}

impl CommandName {
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

const ALL_COMMANDS: &[CommandName] = &[CommandName::Run, CommandName::Prune, CommandName::Doctor];

impl Opt {
    pub const ALL: [Opt; 23] = [
        Opt::DockerHost,
        Opt::Label,
        Opt::MinAge,
        Opt::Concurrency,
        Opt::Timeout,
        Opt::LogFormat,
        Opt::TlsCa,
        Opt::TlsCert,
        Opt::TlsKey,
        Opt::AllowPlainTcp,
        Opt::AllowUnprovenEngine,
        Opt::Config,
        Opt::PrintConfig,
        Opt::Interval,
        Opt::StopDeadline,
        Opt::MetricsAddr,
        Opt::StaleIntervals,
        Opt::NoEvents,
        Opt::EventDebounce,
        Opt::MinSweepGap,
        Opt::DryRun,
        Opt::Output,
        Opt::Progress,
    ];

    /// The long option name with `-` replaced by `_`: the file key.
    pub fn name(self) -> &'static str {
        match self {
            Opt::DockerHost => "docker_host",
            Opt::Label => "label",
            Opt::MinAge => "min_age",
            Opt::Concurrency => "concurrency",
            Opt::Timeout => "timeout",
            Opt::LogFormat => "log_format",
            Opt::TlsCa => "tls_ca",
            Opt::TlsCert => "tls_cert",
            Opt::TlsKey => "tls_key",
            Opt::AllowPlainTcp => "allow_plain_tcp",
            Opt::AllowUnprovenEngine => "allow_unproven_engine",
            Opt::Config => "config",
            Opt::PrintConfig => "print_config",
            Opt::Interval => "interval",
            Opt::StopDeadline => "stop_deadline",
            Opt::MetricsAddr => "metrics_addr",
            Opt::StaleIntervals => "stale_intervals",
            Opt::NoEvents => "no_events",
            Opt::EventDebounce => "event_debounce",
            Opt::MinSweepGap => "min_sweep_gap",
            Opt::DryRun => "dry_run",
            Opt::Output => "output",
            Opt::Progress => "progress",
        }
    }

    /// clap's id: the field name in `cli.rs`.
    pub fn id(self) -> &'static str {
        match self {
            Opt::Label => "labels",
            other => other.name(),
        }
    }

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

    /// Options that configure the configuration itself are no file keys.
    pub fn in_file(self) -> bool {
        !matches!(self, Opt::Config | Opt::PrintConfig)
    }

    pub fn commands(self) -> &'static [CommandName] {
        match self {
            Opt::Interval
            | Opt::StopDeadline
            | Opt::MetricsAddr
            | Opt::StaleIntervals
            | Opt::NoEvents
            | Opt::EventDebounce
            | Opt::MinSweepGap => &[CommandName::Run],
            Opt::DryRun | Opt::Output | Opt::Progress => &[CommandName::Prune],
            _ => ALL_COMMANDS,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Opt::DockerHost | Opt::Label => Kind::List,
            Opt::Concurrency => Kind::IntOrStr,
            Opt::StaleIntervals => Kind::Int,
            Opt::AllowPlainTcp
            | Opt::AllowUnprovenEngine
            | Opt::NoEvents
            | Opt::DryRun
            | Opt::PrintConfig => Kind::Bool,
            _ => Kind::Str,
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
