//! One value per option: flag > `CASCADE_JANITOR_*` variable > file >
//! default (for the engine address: ... > file > `DOCKER_HOST` > the local
//! socket), each recorded with its [`Source`] for `--print-config`.
//!
//! A flag's value was parsed by clap; a variable's and a file's go through
//! the same parser here, so every source refuses the same values, and the
//! error names the source (flag, variable, or file and line).

use std::path::PathBuf;

use cascade_scope::Scope;
use clap::ArgMatches;
use clap::parser::ValueSource;
use toml::Spanned;

use crate::address::{self, Address, DEFAULT_SOCKET};
use crate::cli::{self, Common};
use crate::env::{self, Environment};
use crate::file::{ConfigFile, FileConfig, FileText, Strings};
use crate::opt::{CommandName, Opt};
use crate::print::{Origin, show_concurrency, show_duration, show_enum, show_list, show_str};
use crate::tls::{self, Engine, Given};
use crate::{
    CommandSettings, CommonSettings, ConfigError, PruneSettings, RunSettings, Settings, Source,
};

/// Resolves the parsed command line, the environment and the file.
pub fn resolve(
    command: cli::Command,
    matches: &ArgMatches,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let (name, common) = match &command {
        cli::Command::Run(args) => (CommandName::Run, &args.common),
        cli::Command::Prune(args) => (CommandName::Prune, &args.common),
        cli::Command::Doctor(args) => (CommandName::Doctor, &args.common),
    };
    let mut m = Merger {
        command: name,
        matches,
        env,
        file: None,
        origins: Vec::new(),
    };
    let (print_config, _) = m.value(Opt::PrintConfig, common.print_config, no_file, parse_bool)?;
    let (config, config_source) = m.value(Opt::Config, common.config.clone(), no_file, |s| {
        Ok(Some(PathBuf::from(s)))
    })?;
    let config_file = match config {
        Some(path) => {
            m.file = Some(ConfigFile::read(&path, &config_source, name)?);
            Some((path, config_source))
        }
        None => None,
    };
    if name == CommandName::Run {
        env::refuse_dry_run(env)?;
    }
    let common = m.common(common)?;
    let command = match &command {
        cli::Command::Run(args) => CommandSettings::Run(m.run(args)?),
        cli::Command::Prune(args) => CommandSettings::Prune(m.prune(args)?),
        cli::Command::Doctor(_) => CommandSettings::Doctor,
    };
    let ignored_keys = m.file.as_ref().map(|f| f.ignored(name)).unwrap_or_default();
    Ok(Settings {
        common,
        command,
        print_config,
        config_file,
        ignored_variables: Vec::new(),
        origins: m.origins,
        ignored_keys,
    })
}

/// For options that have no file key.
fn no_file(_: &FileConfig) -> Option<&Spanned<bool>> {
    None
}

fn parse_bool(s: &str) -> Result<bool, String> {
    s.parse().map_err(|_| "expected true or false".to_string())
}

fn value_enum<T: clap::ValueEnum>(s: &str) -> Result<T, String> {
    T::from_str(s, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("expected one of: {}", names.join(", "))
    })
}

fn invalid(source: &Source, key: Opt, text: &str, why: &str) -> ConfigError {
    ConfigError::new(format!(
        "{}: invalid value `{}`: {why}",
        source.culprit(key),
        text.escape_debug()
    ))
}

struct Merger<'a> {
    command: CommandName,
    matches: &'a ArgMatches,
    env: &'a Environment,
    file: Option<ConfigFile>,
    origins: Vec<Origin>,
}

impl Merger<'_> {
    fn on_command_line(&self, key: Opt) -> bool {
        // clap (in debug builds) panics on an id that is not an argument of
        // this command; `Opt::commands` and `Opt::id` are checked against
        // clap in opt.rs, so asking only for this command's options is safe.
        key.commands().contains(&self.command)
            && matches!(
                self.matches.value_source(key.id()),
                Some(ValueSource::CommandLine)
            )
    }

    /// flag > variable > file > default, for one value.
    fn value<T, F: FileText>(
        &self,
        key: Opt,
        clap: T,
        field: impl Fn(&FileConfig) -> Option<&Spanned<F>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(T, Source), ConfigError> {
        if self.on_command_line(key) {
            return Ok((clap, Source::Flag(key.flag())));
        }
        let name = key.env();
        if let Some(text) = self.env.get(&name) {
            let source = Source::Env(name);
            let value = parse(text).map_err(|why| invalid(&source, key, text, &why))?;
            return Ok((value, source));
        }
        if let Some(file) = &self.file
            && let Some(spanned) = field(&file.values)
        {
            let source = file.source(spanned);
            let text = spanned.get_ref().text();
            let value = parse(&text).map_err(|why| invalid(&source, key, &text, &why))?;
            return Ok((value, source));
        }
        Ok((clap, Source::Default))
    }

    /// The raw texts of a list option, when given (variables are
    /// comma-separated, as on the command line).
    fn texts(
        &self,
        key: Opt,
        clap: &[String],
        field: impl Fn(&FileConfig) -> Option<&Spanned<Strings>>,
    ) -> Option<(Vec<String>, Source)> {
        if self.on_command_line(key) {
            return Some((clap.to_vec(), Source::Flag(key.flag())));
        }
        let name = key.env();
        if let Some(text) = self.env.get(&name) {
            let texts = text.split(',').map(str::to_string).collect();
            return Some((texts, Source::Env(name)));
        }
        let file = self.file.as_ref()?;
        let spanned = field(&file.values)?;
        Some((spanned.get_ref().to_vec(), file.source(spanned)))
    }

    fn record(&mut self, key: Opt, value: Option<String>, source: Source) {
        self.origins.push(Origin {
            key,
            value,
            source,
            note: None,
        });
    }

    fn annotate(&mut self, key: Opt, value: String, note: &str) {
        if let Some(origin) = self.origins.iter_mut().find(|o| o.key == key) {
            origin.value = Some(value);
            origin.note = Some(note.to_string());
        }
    }

    fn source_of(&self, key: Opt) -> Source {
        self.origins
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.source.clone())
            .unwrap_or(Source::Default)
    }

    fn error(&self, key: Opt, why: &str) -> ConfigError {
        ConfigError::new(format!("{}: {why}", self.source_of(key).culprit(key)))
    }

    fn common(&mut self, args: &Common) -> Result<CommonSettings, ConfigError> {
        let hosts = self.docker_hosts(&args.docker_host)?;
        // Flags were parsed by clap; a variable's or the file's texts here.
        let (labels, source) = match self.texts(Opt::Label, &[], |f| f.label.as_ref()) {
            _ if self.on_command_line(Opt::Label) => {
                (args.labels.clone(), Source::Flag(Opt::Label.flag()))
            }
            Some((texts, source)) => {
                let labels = texts
                    .iter()
                    .map(|t| {
                        cli::parse_label(t).map_err(|why| invalid(&source, Opt::Label, t, &why))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (labels, source)
            }
            None => (args.labels.clone(), Source::Default),
        };
        self.record(Opt::Label, Some(show_list(&labels)), source);
        let scope = Scope::new(labels).map_err(|e| self.error(Opt::Label, &e.to_string()))?;

        let (min_age, s) = self.value(
            Opt::MinAge,
            args.min_age,
            |f| f.min_age.as_ref(),
            cli::parse_duration,
        )?;
        self.record(Opt::MinAge, Some(show_duration(&min_age)), s);
        let (concurrency, s) = self.value(
            Opt::Concurrency,
            args.concurrency,
            |f| f.concurrency.as_ref(),
            cli::parse_concurrency,
        )?;
        self.record(Opt::Concurrency, Some(show_concurrency(&concurrency)), s);
        let (timeout, s) = self.value(
            Opt::Timeout,
            args.timeout,
            |f| f.timeout.as_ref(),
            cli::parse_positive_duration,
        )?;
        self.record(Opt::Timeout, Some(show_duration(&timeout)), s);
        let (log_format, s) = self.value(
            Opt::LogFormat,
            args.log_format,
            |f| f.log_format.as_ref(),
            value_enum,
        )?;
        self.record(Opt::LogFormat, Some(show_enum(&log_format)), s);
        let (allow_unproven_engine, s) = self.value(
            Opt::AllowUnprovenEngine,
            args.allow_unproven_engine,
            |f| f.allow_unproven_engine.as_ref(),
            parse_bool,
        )?;
        self.record(
            Opt::AllowUnprovenEngine,
            Some(allow_unproven_engine.to_string()),
            s,
        );

        let engines = self.engines(hosts, args)?;
        Ok(CommonSettings {
            engines,
            scope,
            min_age,
            concurrency,
            timeout,
            log_format,
            allow_unproven_engine,
        })
    }

    /// Flag/variable, then file, then `DOCKER_HOST`, then the local socket;
    /// credentials refused before any message could quote them.
    fn docker_hosts(&mut self, clap: &[String]) -> Result<Vec<(String, Address)>, ConfigError> {
        let key = Opt::DockerHost;
        let docker_host = self
            .env
            .non_empty("DOCKER_HOST")
            .map(|h| h.trim().to_string());
        let (hosts, source) = match self.texts(key, clap, |f| f.docker_host.as_ref()) {
            Some(given) => given,
            None => match docker_host {
                Some(host) => (vec![host], Source::Env("DOCKER_HOST".into())),
                None => (vec![DEFAULT_SOCKET.to_string()], Source::Default),
            },
        };
        let culprit = match &source {
            Source::Env(name) if name == "DOCKER_HOST" => name.clone(),
            other => other.culprit(key),
        };
        if let Some(host) = hosts.iter().find(|h| address::has_credentials(h)) {
            return Err(ConfigError::new(format!(
                "{culprit}: credentials in --docker-host are refused; use TLS client certificates (--tls-cert and --tls-key): {}",
                address::redact(host)
            )));
        }
        self.record(key, Some(show_list(&hosts)), source.clone());
        if hosts.is_empty() {
            return Err(self.error(
                key,
                "no engine given; list at least one, e.g. docker_host = [\"unix:///var/run/docker.sock\"]",
            ));
        }
        let mut parsed: Vec<(String, Address)> = Vec::new();
        for host in hosts {
            let address = address::parse_host(&host).map_err(|why| match &source {
                Source::Env(name) if name == "DOCKER_HOST" => ConfigError::new(format!(
                    "DOCKER_HOST `{host}` is not a valid engine address: {why}; fix it, unset it, or pass --docker-host"
                )),
                // Worded as clap worded it when clap checked the flag.
                Source::Flag(_) => ConfigError::new(format!(
                    "invalid value '{host}' for '--docker-host <URL>': {why}; see `cascade-janitor --help`"
                )),
                other => invalid(other, key, &host, &why),
            })?;
            if let Some((first, _)) = parsed.iter().find(|(_, a)| *a == address) {
                let why = if *first == host {
                    format!("`{host}` is given twice; list each engine once")
                } else {
                    format!("`{first}` and `{host}` are the same engine; list each engine once")
                };
                return Err(self.error(key, &why));
            }
            parsed.push((host, address));
        }
        Ok(parsed)
    }

    /// A `--tls-*` path as given (flag, variable or file), recorded.
    fn tls_path(
        &self,
        key: Opt,
        clap: Option<PathBuf>,
        field: impl Fn(&FileConfig) -> Option<&Spanned<String>>,
    ) -> Result<Option<Given>, ConfigError> {
        let (path, source) = self.value(key, clap, field, |s| {
            if s.trim().is_empty() {
                Err("expected the path of a PEM file".to_string())
            } else {
                Ok(Some(PathBuf::from(s)))
            }
        })?;
        Ok(path.map(|path| Given { key, path, source }))
    }

    /// Each engine with its transport; TLS files are checked only when some
    /// engine is `tcp://`.
    fn engines(
        &mut self,
        hosts: Vec<(String, Address)>,
        args: &Common,
    ) -> Result<Vec<Engine>, ConfigError> {
        let ca = self.tls_path(Opt::TlsCa, args.tls_ca.clone(), |f| f.tls_ca.as_ref())?;
        let cert = self.tls_path(Opt::TlsCert, args.tls_cert.clone(), |f| f.tls_cert.as_ref())?;
        let key = self.tls_path(Opt::TlsKey, args.tls_key.clone(), |f| f.tls_key.as_ref())?;
        let (allow_plain_tcp, allow_source) = self.value(
            Opt::AllowPlainTcp,
            args.allow_plain_tcp,
            |f| f.allow_plain_tcp.as_ref(),
            parse_bool,
        )?;
        let any_tcp = hosts.iter().any(|(_, a)| matches!(a, Address::Http(_)));
        let given = [ca.clone(), cert.clone(), key.clone()];
        let resolved = if any_tcp {
            tls::resolve(ca, cert, key, self.env)?
        } else {
            None
        };
        let effective: [Option<(PathBuf, Source)>; 3] = match &resolved {
            Some(r) => {
                let (cert, key) = match (&r.files.client, &r.client) {
                    (Some(c), Some((cs, ks))) => (
                        Some((c.cert.clone(), cs.clone())),
                        Some((c.key.clone(), ks.clone())),
                    ),
                    _ => (None, None),
                };
                [Some((r.files.ca.clone(), r.ca.clone())), cert, key]
            }
            None => [None, None, None],
        };
        for ((k, given), effective) in [Opt::TlsCa, Opt::TlsCert, Opt::TlsKey]
            .into_iter()
            .zip(given)
            .zip(effective)
        {
            match (effective, given) {
                (Some((path, source)), _) => {
                    self.record(k, Some(show_str(&path.display().to_string())), source);
                }
                (None, Some(given)) => {
                    self.record(
                        k,
                        Some(show_str(&given.path.display().to_string())),
                        given.source,
                    );
                    self.annotate(
                        k,
                        show_str(&given.path.display().to_string()),
                        "unused: no tcp:// engine",
                    );
                }
                (None, None) => self.record(k, None, Source::Default),
            }
        }
        self.record(
            Opt::AllowPlainTcp,
            Some(allow_plain_tcp.to_string()),
            allow_source,
        );

        let culprit = self.source_of(Opt::DockerHost);
        let culprit = match &culprit {
            Source::Env(name) if name == "DOCKER_HOST" => name.clone(),
            other => other.culprit(Opt::DockerHost),
        };
        let files = resolved.map(|r| r.files);
        hosts
            .into_iter()
            .map(|(host, address)| {
                let transport =
                    tls::transport(&host, &address, files.as_ref(), allow_plain_tcp, &culprit)?;
                Ok(Engine { host, transport })
            })
            .collect()
    }

    fn run(&mut self, args: &cli::RunArgs) -> Result<RunSettings, ConfigError> {
        let (interval, s) = self.value(
            Opt::Interval,
            args.interval,
            |f| f.interval.as_ref(),
            cli::parse_interval,
        )?;
        self.record(Opt::Interval, Some(show_duration(&interval)), s);
        let (stop_deadline, s) = self.value(
            Opt::StopDeadline,
            args.stop_deadline,
            |f| f.stop_deadline.as_ref(),
            cli::parse_duration,
        )?;
        self.record(Opt::StopDeadline, Some(show_duration(&stop_deadline)), s);
        let (metrics_addr, s) = self.value(
            Opt::MetricsAddr,
            args.metrics_addr,
            |f| f.metrics_addr.as_ref(),
            |s| cli::parse_metrics_addr(s).map(Some),
        )?;
        self.record(
            Opt::MetricsAddr,
            metrics_addr.map(|a| show_str(&a.to_string())),
            s,
        );
        let (stale_intervals, s) = self.value(
            Opt::StaleIntervals,
            args.stale_intervals,
            |f| f.stale_intervals.as_ref(),
            cli::parse_stale_intervals,
        )?;
        self.record(Opt::StaleIntervals, Some(stale_intervals.to_string()), s);
        if interval.saturating_mul(stale_intervals.get()) > cli::MAX_DURATION {
            return Err(self.error(
                Opt::StaleIntervals,
                &format!(
                    "{stale_intervals} intervals of {} is too long; at most 100 years (36500d): lower it or the interval",
                    humantime::format_duration(interval)
                ),
            ));
        }
        let (no_events, s) = self.value(
            Opt::NoEvents,
            args.no_events,
            |f| f.no_events.as_ref(),
            parse_bool,
        )?;
        self.record(Opt::NoEvents, Some(no_events.to_string()), s);
        let (event_debounce, s) = self.value(
            Opt::EventDebounce,
            args.event_debounce,
            |f| f.event_debounce.as_ref(),
            cli::parse_duration,
        )?;
        self.record(Opt::EventDebounce, Some(show_duration(&event_debounce)), s);
        let (mut min_sweep_gap, s) = self.value(
            Opt::MinSweepGap,
            args.min_sweep_gap,
            |f| f.min_sweep_gap.as_ref(),
            cli::parse_min_sweep_gap,
        )?;
        let defaulted = s == Source::Default;
        self.record(Opt::MinSweepGap, Some(show_duration(&min_sweep_gap)), s);
        if min_sweep_gap > interval {
            if defaulted {
                // The default gap is meant as a floor against event storms,
                // not as a way to slow an operator's short --interval.
                min_sweep_gap = interval;
                self.annotate(
                    Opt::MinSweepGap,
                    show_duration(&interval),
                    "capped at interval (the default is 60s)",
                );
            } else {
                return Err(self.error(
                    Opt::MinSweepGap,
                    &format!(
                        "{} is longer than interval ({}); scheduled sweeps would be skipped: lower it to at most the interval",
                        humantime::format_duration(min_sweep_gap),
                        humantime::format_duration(interval)
                    ),
                ));
            }
        }
        Ok(RunSettings {
            interval,
            stop_deadline,
            metrics_addr,
            stale_intervals,
            events: !no_events,
            event_debounce,
            min_sweep_gap,
        })
    }

    fn prune(&mut self, args: &cli::PruneArgs) -> Result<PruneSettings, ConfigError> {
        let (dry_run, s) = self.value(
            Opt::DryRun,
            args.dry_run,
            |f| f.dry_run.as_ref(),
            parse_bool,
        )?;
        self.record(Opt::DryRun, Some(dry_run.to_string()), s);
        let (output, s) =
            self.value(Opt::Output, args.output, |f| f.output.as_ref(), value_enum)?;
        self.record(Opt::Output, Some(show_enum(&output)), s);
        let (progress, s) = self.value(
            Opt::Progress,
            args.progress,
            |f| f.progress.as_ref(),
            value_enum,
        )?;
        self.record(Opt::Progress, Some(show_enum(&progress)), s);
        Ok(PruneSettings {
            dry_run,
            output,
            progress,
        })
    }
}

#[cfg(test)]
mod tests;
