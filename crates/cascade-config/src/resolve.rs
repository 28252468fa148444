//! The per-option values become [`Settings`]: every check that needs more
//! than one option's value, or the environment around them, is here and
//! nowhere else (ripgrep's `HiArgs`).
//!
//! Options are read in the order `--print-config` lists them, and each
//! check runs as soon as the values it needs are read, so the first
//! refusal is always the same one. The one rule checked before the values
//! are typed, `run` refusing a dry run, is called from here for the
//! variable (`env::refuse_dry_run`) and from `ConfigFile::parse` for the
//! file, so `dry_run = "yes"` is refused as a dry run, not as a bad type.

use cascade_scope::Scope;
use clap::ArgMatches;

use crate::address::{self, EngineAddress};
use crate::env::{self, Environment};
use crate::file::ConfigFile;
use crate::merge::{Merger, invalid};
use crate::opt::{CommandName, Opt};
use crate::tls::{self, EngineSettings, Given};
use crate::{
    CommandSettings, CommonSettings, ConfigError, PruneSettings, RunSettings, Settings, Source, cli,
};

/// Resolves the parsed command line (`matches`: the subcommand's), the
/// environment and the file.
pub fn resolve(
    command: CommandName,
    matches: &ArgMatches,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let mut m = Merger::new(command, matches, env);
    let print_config = m.print_config()?;
    let config_file = match m.config()? {
        Some(path) => {
            let source = m.source_of(Opt::Config);
            m.file = Some(ConfigFile::read(&path, &source, command)?);
            Some((path, source))
        }
        None => None,
    };
    if command == CommandName::Run {
        env::refuse_dry_run(env)?;
    }
    let common = common(&mut m)?;
    let command_settings = match command {
        CommandName::Run => CommandSettings::Run(run(&mut m)?),
        CommandName::Prune => CommandSettings::Prune(PruneSettings {
            dry_run: m.dry_run()?,
            output: m.output()?,
            progress: m.progress()?,
        }),
        CommandName::Doctor => CommandSettings::Doctor,
    };
    let ignored_keys = m
        .file
        .as_ref()
        .map(|f| f.ignored(command))
        .unwrap_or_default();
    Ok(Settings {
        common,
        command: command_settings,
        print_config,
        config_file,
        ignored_variables: Vec::new(),
        origins: m.origins.into_iter().filter(|o| o.key.in_file()).collect(),
        ignored_keys,
    })
}

fn common(m: &mut Merger) -> Result<CommonSettings, ConfigError> {
    let hosts = addresses(m)?;
    let scope = Scope::new(m.label()?).map_err(|e| m.error(Opt::Label, &e.to_string()))?;
    let min_age = m.min_age()?;
    let concurrency = m.concurrency()?;
    let timeout = m.timeout()?;
    let log_format = m.log_format()?;
    let allow_unproven_engine = m.allow_unproven_engine()?;
    let (engines, allow_plain_tcp) = engines(m, hosts)?;
    Ok(CommonSettings {
        engines,
        scope,
        min_age,
        concurrency,
        timeout,
        log_format,
        allow_unproven_engine,
        allow_plain_tcp,
    })
}

/// The engines' addresses: credentials refused before any message could
/// quote them, then each parsed, none twice (however spelt).
fn addresses(m: &mut Merger) -> Result<Vec<(String, EngineAddress)>, ConfigError> {
    let key = Opt::DockerHost;
    let hosts = m.docker_host()?;
    let source = m.source_of(key);
    if let Some(host) = hosts.iter().find(|h| address::has_credentials(h)) {
        return Err(ConfigError::new(format!(
            "{}: credentials in --docker-host are refused; use TLS client certificates (--tls-cert and --tls-key): {}",
            source.culprit(key),
            address::redact(host)
        )));
    }
    if hosts.is_empty() {
        return Err(m.error(
            key,
            "no engine given; list at least one, e.g. docker_host = [\"unix:///var/run/docker.sock\"]",
        ));
    }
    let mut parsed: Vec<(String, EngineAddress)> = Vec::new();
    for host in hosts {
        let address = EngineAddress::parse(&host).map_err(|why| match &source {
            Source::Env(name) if Some(name.as_str()) == key.below_file() => ConfigError::new(format!(
                "{name} `{host}` is not a valid engine address: {why}; fix it, unset it, or pass --docker-host"
            )),
            // Worded as clap worded it when clap checked the flag.
            Source::Flag(_) => ConfigError::new(format!(
                "invalid value '{host}' for '--docker-host <URL>': {why}; see `cascade-janitor --help`"
            )),
            other => invalid(other, key, &host, &why.to_string()),
        })?;
        if let Some((first, _)) = parsed.iter().find(|(_, a)| a.same_engine(&address)) {
            let why = if *first == host {
                format!("`{host}` is given twice; list each engine once")
            } else {
                format!("`{first}` and `{host}` are the same engine; list each engine once")
            };
            return Err(m.error(key, &why));
        }
        parsed.push((host, address));
    }
    Ok(parsed)
}

/// Each engine with its transport, and `--allow-plain-tcp` (read here, in
/// `--print-config`'s order); TLS files are checked only when some engine
/// is `tcp://`, and `--print-config` shows the files in use.
fn engines(
    m: &mut Merger,
    hosts: Vec<(String, EngineAddress)>,
) -> Result<(Vec<EngineSettings>, bool), ConfigError> {
    let given = |m: &Merger, key, path| Given {
        key,
        path,
        source: m.source_of(key),
    };
    let ca = m.tls_ca()?.map(|path| given(m, Opt::TlsCa, path));
    let cert = m.tls_cert()?.map(|path| given(m, Opt::TlsCert, path));
    let key = m.tls_key()?.map(|path| given(m, Opt::TlsKey, path));
    let allow_plain_tcp = m.allow_plain_tcp()?;
    let any_tcp = hosts.iter().any(|(_, a)| !a.is_local());
    let resolved = if any_tcp {
        tls::resolve(ca, cert, key, m.env())?
    } else {
        for unused in [ca, cert, key].into_iter().flatten() {
            m.note(unused.key, "unused: no tcp:// engine");
        }
        None
    };
    if let Some(r) = &resolved {
        // The files in use, which may come from DOCKER_CERT_PATH.
        m.settle(Opt::TlsCa, &r.files.ca, r.ca.clone());
        if let (Some(files), Some((cert, key))) = (&r.files.client, &r.client) {
            m.settle(Opt::TlsCert, &files.cert, cert.clone());
            m.settle(Opt::TlsKey, &files.key, key.clone());
        }
    }

    let culprit = m.source_of(Opt::DockerHost).culprit(Opt::DockerHost);
    let files = resolved.map(|r| r.files);
    let engines = hosts
        .into_iter()
        .map(|(host, address)| {
            let transport = tls::transport(
                &host,
                address.target(),
                files.as_ref(),
                allow_plain_tcp,
                &culprit,
            )?;
            Ok(EngineSettings {
                host,
                address,
                transport,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok((engines, allow_plain_tcp))
}

fn run(m: &mut Merger) -> Result<RunSettings, ConfigError> {
    let interval = m.interval()?;
    let stop_deadline = m.stop_deadline()?;
    let metrics_addr = m.metrics_addr()?;
    let stale_intervals = m.stale_intervals()?;
    if interval.saturating_mul(stale_intervals.get()) > cli::MAX_DURATION {
        return Err(m.error(
            Opt::StaleIntervals,
            &format!(
                "{stale_intervals} intervals of {} is too long; at most 100 years (36500d): lower it or the interval",
                humantime::format_duration(interval)
            ),
        ));
    }
    let events = !m.no_events()?;
    let event_debounce = m.event_debounce()?;
    let mut min_sweep_gap = m.min_sweep_gap()?;
    if min_sweep_gap > interval {
        if m.source_of(Opt::MinSweepGap) == Source::Default {
            // The default gap is meant as a floor against event storms,
            // not as a way to slow an operator's short --interval.
            min_sweep_gap = interval;
            m.settle(Opt::MinSweepGap, &interval, Source::Default);
            m.note(Opt::MinSweepGap, "capped at interval (the default is 60s)");
        } else {
            return Err(m.error(
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
        events,
        event_debounce,
        min_sweep_gap,
    })
}
