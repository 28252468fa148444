//! `run`'s janitor, built the way an embedder builds one: its configuration
//! through `cascade-embed`'s `JanitorConfig::builder`, so every rule the
//! library enforces holds for the daemon too, and the clients speak of the
//! binary's flags in their messages.
//!
//! `cascade-config` checks the same values first, with messages that name
//! the flag, the variable or the file's line (exit 2); the builder then
//! refuses nothing the command line accepted. The test below runs one table
//! of cases through both and checks that they refuse the same ones.

use std::sync::Arc;

use cascade_config::{CommonSettings, RunSettings};
use cascade_embed::{
    ConfigError, EngineClients, EngineConfig, EventOptions, Janitor, JanitorConfig,
};
use cascade_engine::EngineClient;

use crate::Failure;
use crate::engine::FLAGS;

/// `cascade-embed`'s configuration from the daemon's settings, checked by
/// the library's builder.
pub fn janitor_config(
    common: &CommonSettings,
    settings: &RunSettings,
) -> Result<JanitorConfig, ConfigError> {
    JanitorConfig::builder(common.engines.iter().map(|e| {
        let engine = EngineConfig::new(e.address.clone());
        match e.transport.tls() {
            Some(files) => engine.with_tls(files.clone()),
            None => engine,
        }
    }))
    .scope(common.scope.clone())
    .min_age(common.min_age)
    .concurrency(common.concurrency)
    .call_timeout(common.timeout)
    .interval(settings.interval)
    // Already capped to the interval when defaulted (`cascade-config`).
    .min_gap(settings.min_sweep_gap)
    .events(
        settings
            .events
            .then(|| EventOptions::with_debounce(settings.event_debounce)),
    )
    .stop_deadline(settings.stop_deadline)
    .stale_after(
        settings
            .interval
            .saturating_mul(settings.stale_intervals.get()),
    )
    .allow_unproven_engine(common.allow_unproven_engine)
    .allow_plain_tcp(common.allow_plain_tcp)
    .build()
}

/// The daemon's janitor: the settings through the library's builder (a
/// refusal there is exit 2, though `cascade-config` refused it first), one
/// lazily connecting client per engine whose messages name the flags
/// (`--docker-host`, `--tls-ca`); unusable TLS files are exit 2 as
/// `prune`'s are.
pub fn janitor(common: &CommonSettings, settings: &RunSettings) -> Result<Janitor, Failure> {
    let config = janitor_config(common, settings).map_err(|e| Failure::usage(e.to_string()))?;
    let timeout = config.call_timeout();
    Janitor::with_clients(config, |engine| {
        let client =
            EngineClient::with_tls(engine.address(), engine.tls(), timeout)?.with_names(FLAGS);
        Ok::<_, Failure>(EngineClients::of(Arc::new(client)))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cascade_config::{CommandSettings, Environment, LoadError, Settings, TlsFiles};
    use cascade_embed::{BadAddress, EngineAddress, JanitorConfigBuilder};

    use super::*;

    /// One configuration, as `run`'s options take it. Each is given to the
    /// command line as flags and to the library's builder as the same
    /// values (durations parsed the same way, without the command line's
    /// own checks). The table holds every rule of either that the other can
    /// express: the builder's rules on TLS files for a unix socket and on
    /// event backoffs have no option (the command line uses TLS for
    /// `tcp://` engines only, and the default backoffs).
    #[derive(Default)]
    struct Case {
        hosts: &'static [&'static str],
        interval: Option<&'static str>,
        min_sweep_gap: Option<&'static str>,
        stale_intervals: Option<u32>,
        timeout: Option<&'static str>,
        min_age: Option<&'static str>,
        stop_deadline: Option<&'static str>,
        event_debounce: Option<&'static str>,
        allow_plain_tcp: bool,
        /// A CA file for every `tcp://` engine.
        tls: bool,
    }

    /// What both must say of a case: accepted, or refused with the command
    /// line naming `flag` and the library naming `field`.
    enum Verdict {
        Accepted,
        Refused {
            flag: &'static str,
            field: &'static str,
        },
    }

    use Verdict::{Accepted, Refused};

    const LOCAL: &[&str] = &["unix:///run/cascade/docker.sock"];
    const REMOTE: &[&str] = &["tcp://192.0.2.10:2375"];

    fn table() -> Vec<(&'static str, Case, Verdict)> {
        let refused = |flag, field| Refused { flag, field };
        vec![
            ("the defaults", Case::default(), Accepted),
            (
                "the floors themselves",
                Case {
                    interval: Some("1s"),
                    min_sweep_gap: Some("1s"),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "a zero interval",
                Case {
                    interval: Some("0s"),
                    ..Case::default()
                },
                refused("--interval", "interval"),
            ),
            (
                "an interval below its floor",
                Case {
                    interval: Some("999ms"),
                    ..Case::default()
                },
                refused("--interval", "interval"),
            ),
            (
                "a zero gap",
                Case {
                    min_sweep_gap: Some("0s"),
                    ..Case::default()
                },
                refused("--min-sweep-gap", "min_gap"),
            ),
            (
                "a gap below its floor",
                Case {
                    min_sweep_gap: Some("500ms"),
                    ..Case::default()
                },
                refused("--min-sweep-gap", "min_gap"),
            ),
            (
                "a gap longer than the interval",
                Case {
                    interval: Some("1m"),
                    min_sweep_gap: Some("2m"),
                    ..Case::default()
                },
                refused("--min-sweep-gap", "min_gap"),
            ),
            (
                "the default gap with a shorter interval (capped)",
                Case {
                    interval: Some("10s"),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "a gap equal to the interval",
                Case {
                    interval: Some("1m"),
                    min_sweep_gap: Some("1m"),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "zero stale intervals (stale before the next pass)",
                Case {
                    stale_intervals: Some(0),
                    ..Case::default()
                },
                refused("--stale-intervals", "stale_after"),
            ),
            (
                "one stale interval",
                Case {
                    stale_intervals: Some(1),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "staleness past 100 years",
                Case {
                    interval: Some("36500d"),
                    ..Case::default()
                },
                refused("--stale-intervals", "stale_after"),
            ),
            (
                "an interval past 100 years",
                Case {
                    interval: Some("36501d"),
                    ..Case::default()
                },
                refused("--interval", "interval"),
            ),
            (
                "a zero call timeout",
                Case {
                    timeout: Some("0s"),
                    ..Case::default()
                },
                refused("--timeout", "call_timeout"),
            ),
            (
                "no minimum age",
                Case {
                    min_age: Some("0s"),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "a minimum age past 100 years",
                Case {
                    min_age: Some("36501d"),
                    ..Case::default()
                },
                refused("--min-age", "min_age"),
            ),
            (
                "a zero stop deadline",
                Case {
                    stop_deadline: Some("0s"),
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "a debounce past 100 years",
                Case {
                    event_debounce: Some("36501d"),
                    ..Case::default()
                },
                refused("--event-debounce", "events.debounce"),
            ),
            (
                "plain TCP off this host",
                Case {
                    hosts: REMOTE,
                    ..Case::default()
                },
                refused("--allow-plain-tcp", "engines[0]"),
            ),
            (
                "plain TCP off this host, allowed",
                Case {
                    hosts: REMOTE,
                    allow_plain_tcp: true,
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "plain TCP on loopback",
                Case {
                    hosts: &["tcp://127.0.0.1:2375", "tcp://localhost:2376"],
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "TLS off this host",
                Case {
                    hosts: REMOTE,
                    tls: true,
                    ..Case::default()
                },
                Accepted,
            ),
            (
                "a second engine off this host in plain TCP",
                Case {
                    hosts: &["unix:///run/cascade/docker.sock", "tcp://10.0.0.5:2375"],
                    ..Case::default()
                },
                refused("--allow-plain-tcp", "engines[1]"),
            ),
            (
                "credentials in an address",
                Case {
                    hosts: &["tcp://ops:s3cret@10.9.8.7:2376"],
                    tls: true,
                    ..Case::default()
                },
                refused("credentials in --docker-host", "engines"),
            ),
            (
                "a user name in an address",
                Case {
                    hosts: &["tcp://ops@10.9.8.7"],
                    ..Case::default()
                },
                refused("credentials in --docker-host", "engines"),
            ),
            (
                "an address of no engine",
                Case {
                    hosts: &["docker.sock"],
                    ..Case::default()
                },
                refused("--docker-host", "engines"),
            ),
            (
                "one engine twice, spelt two ways",
                Case {
                    hosts: &["tcp://127.0.0.1:2375", "http://127.0.0.1:2375/"],
                    ..Case::default()
                },
                refused("--docker-host", "engines[1]"),
            ),
        ]
    }

    fn hosts(case: &Case) -> &'static [&'static str] {
        if case.hosts.is_empty() {
            LOCAL
        } else {
            case.hosts
        }
    }

    /// The case through the command line, then (when it accepts) through
    /// the binary's own path to `cascade-embed`'s configuration.
    fn through_the_cli(case: &Case, ca: &str) -> Result<(Settings, JanitorConfig), String> {
        let mut args: Vec<String> = vec!["cascade-janitor".into(), "run".into()];
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(name.to_string());
                args.push(value);
            }
        };
        for host in hosts(case) {
            flag("--docker-host", Some(host.to_string()));
        }
        flag("--interval", case.interval.map(String::from));
        flag("--min-sweep-gap", case.min_sweep_gap.map(String::from));
        flag(
            "--stale-intervals",
            case.stale_intervals.map(|n| n.to_string()),
        );
        flag("--timeout", case.timeout.map(String::from));
        flag("--min-age", case.min_age.map(String::from));
        flag("--stop-deadline", case.stop_deadline.map(String::from));
        flag("--event-debounce", case.event_debounce.map(String::from));
        flag("--tls-ca", case.tls.then(|| ca.to_string()));
        if case.allow_plain_tcp {
            args.push("--allow-plain-tcp".into());
        }
        let env: Environment = std::iter::empty::<(&str, &str)>().collect();
        let settings = match cascade_config::load(args, &env) {
            Ok(settings) => settings,
            Err(LoadError::Config(e)) => return Err(e.message),
            Err(LoadError::Clap(e)) => return Err(e.to_string()),
        };
        let CommandSettings::Run(run) = &settings.command else {
            panic!("a run command");
        };
        let config = janitor_config(&settings.common, run)
            .map_err(|e| format!("the command line accepted what the builder refuses: {e}"))?;
        Ok((settings, config))
    }

    fn duration(text: &str) -> Duration {
        humantime::parse_duration(text).expect(text)
    }

    /// How the library refuses: an address is checked when it is made
    /// (`EngineAddress::parse`; an entry of `engines`), the rest by the
    /// builder.
    #[derive(Debug)]
    enum LibraryRefusal {
        Address(BadAddress),
        Config(ConfigError),
    }

    impl LibraryRefusal {
        fn field(&self) -> String {
            match self {
                LibraryRefusal::Address(_) => "engines".to_string(),
                LibraryRefusal::Config(e) => e.field(),
            }
        }
    }

    impl std::fmt::Display for LibraryRefusal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                LibraryRefusal::Address(e) => write!(f, "{e}"),
                LibraryRefusal::Config(e) => write!(f, "{e}"),
            }
        }
    }

    /// The same case through the library alone, as an embedder writes it.
    fn through_the_library(case: &Case, ca: &str) -> Result<JanitorConfig, LibraryRefusal> {
        let mut engines = Vec::new();
        for host in hosts(case) {
            let address = EngineAddress::parse(host).map_err(LibraryRefusal::Address)?;
            let engine = EngineConfig::new(address.clone());
            engines.push(if case.tls && !address.is_local() {
                engine.with_tls(TlsFiles {
                    ca: ca.into(),
                    client: None,
                })
            } else {
                engine
            });
        }
        let mut builder: JanitorConfigBuilder = JanitorConfig::builder(engines);
        let interval = duration(case.interval.unwrap_or("30m"));
        if let Some(i) = case.interval {
            builder = builder.interval(duration(i));
        }
        if let Some(gap) = case.min_sweep_gap {
            builder = builder.min_gap(duration(gap));
        }
        if let Some(n) = case.stale_intervals {
            builder = builder.stale_after(interval.saturating_mul(n));
        }
        if let Some(t) = case.timeout {
            builder = builder.call_timeout(duration(t));
        }
        if let Some(age) = case.min_age {
            builder = builder.min_age(duration(age));
        }
        if let Some(d) = case.stop_deadline {
            builder = builder.stop_deadline(duration(d));
        }
        if let Some(d) = case.event_debounce {
            builder = builder.events(Some(EventOptions::with_debounce(duration(d))));
        }
        builder
            .allow_plain_tcp(case.allow_plain_tcp)
            .build()
            .map_err(LibraryRefusal::Config)
    }

    #[test]
    fn the_command_line_and_the_library_refuse_the_same_configurations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write");
        let ca = ca.display().to_string();
        for (what, case, verdict) in table() {
            let cli = through_the_cli(&case, &ca);
            let library = through_the_library(&case, &ca);
            match verdict {
                Accepted => {
                    let (settings, from_cli) =
                        cli.unwrap_or_else(|e| panic!("{what}: the command line refused: {e}"));
                    let library =
                        library.unwrap_or_else(|e| panic!("{what}: the library refused: {e}"));
                    assert_eq!(
                        from_cli, library,
                        "{what}: the binary's configuration is the embedder's"
                    );
                    let CommandSettings::Run(run) = &settings.command else {
                        unreachable!("a run command");
                    };
                    assert_eq!(library.min_gap(), run.min_sweep_gap.min(library.interval()));
                }
                Refused { flag, field } => {
                    let cli = cli
                        .err()
                        .unwrap_or_else(|| panic!("{what}: the command line accepted it"));
                    assert!(
                        cli.contains(flag),
                        "{what}: the command line names `{flag}`: {cli}"
                    );
                    let library = library
                        .err()
                        .unwrap_or_else(|| panic!("{what}: the library accepted it"));
                    assert_eq!(library.field(), field, "{what}: {library}");
                    let text = library.to_string();
                    assert!(!text.contains("--"), "{what}: no flag: {text}");
                    if let LibraryRefusal::Config(_) = library {
                        assert!(
                            text.contains(&format!("`{field}`")),
                            "{what}: the library names its field: {text}"
                        );
                    }
                    for secret in ["s3cret", "ops@"] {
                        assert!(!cli.contains(secret) && !text.contains(secret), "{what}");
                    }
                }
            }
        }
    }
}
