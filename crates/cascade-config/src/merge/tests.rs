//! Precedence, end to end through `load`, with the environment as a map.

use std::path::Path;
use std::time::Duration;

use crate::{CommandSettings, EngineTransport, Environment, LoadError, Settings, Source, load};

fn env(pairs: &[(&str, &str)]) -> Environment {
    pairs.iter().copied().collect()
}

fn settings(args: &[&str], pairs: &[(&str, &str)]) -> Settings {
    let argv = std::iter::once("cascade-janitor").chain(args.iter().copied());
    match load(argv, &env(pairs)) {
        Ok(settings) => settings,
        Err(e) => panic!("{args:?} {pairs:?}: {e}"),
    }
}

fn refusal(args: &[&str], pairs: &[(&str, &str)]) -> String {
    let argv = std::iter::once("cascade-janitor").chain(args.iter().copied());
    match load(argv, &env(pairs)) {
        Err(LoadError::Config(e)) => {
            assert!(!e.message.contains('\n'), "one line: {}", e.message);
            e.message
        }
        Err(LoadError::Clap(e)) => e.to_string(),
        Ok(_) => panic!("{args:?} {pairs:?} was accepted"),
    }
}

/// The `--print-config` line of `key`.
fn line(settings: &Settings, key: &str) -> String {
    let text = settings.render();
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no {key}: {text}"))
        .to_string()
}

struct File {
    _dir: tempfile::TempDir,
    path: String,
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("janitor.toml");
    std::fs::write(&path, text).expect("write");
    File {
        path: path.display().to_string(),
        _dir: dir,
    }
}

fn run(settings: &Settings) -> &crate::RunSettings {
    match &settings.command {
        CommandSettings::Run(run) => run,
        other => panic!("not run: {other:?}"),
    }
}

fn file_source(f: &File, line: usize) -> Source {
    Source::File {
        path: Path::new(&f.path).to_path_buf(),
        line: Some(line),
    }
}

#[test]
fn a_scalar_flag_beats_env_beats_file_beats_default() {
    let f = file("min_age = \"5m\"\n");
    let cfg = f.path.as_str();
    let min_age = |s: &Settings| s.common.min_age;

    let s = settings(&["prune"], &[]);
    assert_eq!(min_age(&s), Duration::from_secs(600));
    assert!(line(&s, "min_age").ends_with("# default"));

    let s = settings(&["prune", "--config", cfg], &[]);
    assert_eq!(min_age(&s), Duration::from_secs(300));
    assert!(line(&s, "min_age").ends_with(&format!("# {}", file_source(&f, 1))));

    let e = [("CASCADE_JANITOR_MIN_AGE", "7m")];
    let s = settings(&["prune", "--config", cfg], &e);
    assert_eq!(min_age(&s), Duration::from_secs(420));
    assert!(line(&s, "min_age").ends_with("# env CASCADE_JANITOR_MIN_AGE"));
    // env > default without a file too
    assert_eq!(min_age(&settings(&["prune"], &e)), Duration::from_secs(420));

    let s = settings(&["prune", "--config", cfg, "--min-age", "9m"], &e);
    assert_eq!(min_age(&s), Duration::from_secs(540));
    assert!(line(&s, "min_age").ends_with("# flag --min-age"));
    // flag > file without env
    let s = settings(&["prune", "--config", cfg, "--min-age", "9m"], &[]);
    assert_eq!(min_age(&s), Duration::from_secs(540));
}

#[test]
fn lists_bools_and_optional_values_follow_the_same_order() {
    let f = file(
        "label = [\"team=a\", \"cascade.managed=true\"]\nno_events = true\nmetrics_addr = \"127.0.0.1:1\"\n",
    );
    let cfg = f.path.as_str();
    let labels = |s: &Settings| s.common.scope.to_string();

    let s = settings(&["run", "--config", cfg], &[]);
    assert!(labels(&s).contains("team=a"), "{}", labels(&s));
    assert!(!run(&s).events);
    assert_eq!(run(&s).metrics_addr.map(|a| a.port()), Some(1));

    let e = [
        ("CASCADE_JANITOR_LABEL", "team=b,cascade.managed=true"),
        ("CASCADE_JANITOR_NO_EVENTS", "false"),
        ("CASCADE_JANITOR_METRICS_ADDR", "127.0.0.1:2"),
    ];
    let s = settings(&["run", "--config", cfg], &e);
    assert!(labels(&s).contains("team=b") && !labels(&s).contains("team=a"));
    assert!(run(&s).events, "env false beats file true");
    assert_eq!(run(&s).metrics_addr.map(|a| a.port()), Some(2));

    let s = settings(
        &[
            "run",
            "--config",
            cfg,
            "--label",
            "team=c",
            "--no-events",
            "--metrics-addr",
            "127.0.0.1:3",
        ],
        &e,
    );
    assert_eq!(labels(&s), "team=c");
    assert!(!run(&s).events);
    assert_eq!(run(&s).metrics_addr.map(|a| a.port()), Some(3));

    let s = settings(&["run"], &[]);
    assert!(run(&s).events && run(&s).metrics_addr.is_none());
    assert!(line(&s, "metrics_addr").contains("not set (off)"));
}

#[test]
fn docker_host_order_has_docker_host_below_the_file() {
    let a = "unix:///run/a.sock";
    let b = "unix:///run/b.sock";
    let hosts =
        |s: &Settings| -> Vec<String> { s.common.engines.iter().map(|e| e.host.clone()).collect() };
    let f = file(&format!("docker_host = [\"{a}\", \"{b}\"]\n"));
    let cfg = f.path.as_str();

    assert_eq!(
        hosts(&settings(&["doctor"], &[])),
        vec![crate::DEFAULT_SOCKET]
    );
    let s = settings(&["doctor"], &[("DOCKER_HOST", a)]);
    assert_eq!(hosts(&s), vec![a]);
    assert!(line(&s, "docker_host").ends_with("# env DOCKER_HOST"));
    // blank DOCKER_HOST is unset
    assert_eq!(
        hosts(&settings(&["doctor"], &[("DOCKER_HOST", " ")])),
        vec![crate::DEFAULT_SOCKET]
    );
    // file > DOCKER_HOST
    let s = settings(
        &["doctor", "--config", cfg],
        &[("DOCKER_HOST", "unix:///other.sock")],
    );
    assert_eq!(hosts(&s), vec![a, b]);
    // env > file
    let both = format!("{b},{a}");
    let s = settings(
        &["doctor", "--config", cfg],
        &[("CASCADE_JANITOR_DOCKER_HOST", &both)],
    );
    assert_eq!(hosts(&s), vec![b, a]);
    // flag > env
    let s = settings(
        &["doctor", "--config", cfg, "--docker-host", b],
        &[("CASCADE_JANITOR_DOCKER_HOST", a)],
    );
    assert_eq!(hosts(&s), vec![b]);
    assert!(
        s.common
            .engines
            .iter()
            .all(|e| e.transport == EngineTransport::Unix)
    );
}

#[test]
fn the_config_path_comes_from_the_flag_or_its_variable() {
    let f = file("min_age = \"5m\"\n");
    let other = file("min_age = \"6m\"\n");
    let s = settings(&["prune"], &[("CASCADE_JANITOR_CONFIG", &f.path)]);
    assert_eq!(s.common.min_age, Duration::from_secs(300));
    let s = settings(
        &["prune", "--config", &other.path],
        &[("CASCADE_JANITOR_CONFIG", &f.path)],
    );
    assert_eq!(s.common.min_age, Duration::from_secs(360));
    assert!(
        s.render()
            .contains(&format!("# config file: {} (flag --config)", other.path))
    );
}

#[test]
fn print_config_comes_from_the_flag_or_its_variable() {
    assert!(!settings(&["prune"], &[]).print_config);
    assert!(settings(&["prune"], &[("CASCADE_JANITOR_PRINT_CONFIG", "true")]).print_config);
    assert!(
        settings(
            &["prune", "--print-config"],
            &[("CASCADE_JANITOR_PRINT_CONFIG", "false")]
        )
        .print_config
    );
    let err = refusal(&["prune"], &[("CASCADE_JANITOR_PRINT_CONFIG", "1")]);
    assert!(
        err.contains("CASCADE_JANITOR_PRINT_CONFIG: invalid value `1`: expected true or false"),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_its_source() {
    let f = file("\nmin_age = \"soon\"\n");
    let err = refusal(&["prune", "--config", &f.path], &[]);
    assert!(
        err.starts_with(&format!(
            "config file {}, line 2: `min_age`: invalid value `soon`",
            f.path
        )),
        "{err}"
    );
    let err = refusal(&["prune"], &[("CASCADE_JANITOR_MIN_AGE", "soon")]);
    assert!(
        err.starts_with("CASCADE_JANITOR_MIN_AGE: invalid value `soon`: expected a number"),
        "{err}"
    );
    let err = refusal(&["prune"], &[("CASCADE_JANITOR_LABEL", "a=1,b")]);
    assert!(
        err.starts_with("CASCADE_JANITOR_LABEL: invalid value `b`"),
        "{err}"
    );
    let err = refusal(&["prune", "--min-age", "soon"], &[]);
    assert!(err.contains("'soon'") && err.contains("--min-age"), "{err}");
}

#[test]
fn floors_refuse_spin_from_flag_env_and_file() {
    let floor = "below its floor of 1s";
    let err = refusal(&["run", "--interval", "500ms"], &[]);
    assert!(
        err.contains("--interval 500ms is below its floor of 1s"),
        "{err}"
    );
    let err = refusal(&["run"], &[("CASCADE_JANITOR_INTERVAL", "1ns")]);
    assert!(
        err.starts_with("CASCADE_JANITOR_INTERVAL: invalid value `1ns`: --interval 1ns is")
            && err.contains(floor),
        "{err}"
    );
    let f = file("interval = \"100ms\"\n");
    let err = refusal(&["run", "--config", &f.path], &[]);
    assert!(
        err.contains("line 1: `interval`") && err.contains(floor),
        "{err}"
    );

    let err = refusal(&["run", "--min-sweep-gap", "0s"], &[]);
    assert!(
        err.contains("--min-sweep-gap 0s is below its floor of 1s"),
        "{err}"
    );
    let err = refusal(&["run"], &[("CASCADE_JANITOR_MIN_SWEEP_GAP", "0s")]);
    assert!(
        err.starts_with("CASCADE_JANITOR_MIN_SWEEP_GAP") && err.contains(floor),
        "{err}"
    );
    let f = file("min_sweep_gap = \"999ms\"\n");
    let err = refusal(&["run", "--config", &f.path], &[]);
    assert!(
        err.contains("`min_sweep_gap`") && err.contains(floor),
        "{err}"
    );

    // At the floors: accepted, and the defaulted gap is capped to the interval.
    let s = settings(&["run", "--interval", "1s"], &[]);
    assert_eq!(run(&s).interval, Duration::from_secs(1));
    assert_eq!(run(&s).min_sweep_gap, Duration::from_secs(1));
    let s = settings(&["run", "--min-sweep-gap", "1s"], &[]);
    assert_eq!(run(&s).min_sweep_gap, Duration::from_secs(1));
}

#[test]
fn credentials_in_the_engine_url_are_refused_from_every_source_without_echo() {
    let secret = "hunter2";
    let url = format!("tcp://admin:{secret}@10.0.0.5:2376");
    let user_only = "tcp://admin@10.0.0.5";
    let f = file(&format!("docker_host = [\"{url}\"]\n"));
    // A comma in the password splits the variable; no piece may leak.
    let split = format!("tcp://admin:{secret},x@10.0.0.5:2376");
    for (args, pairs, culprit) in [
        (
            vec!["prune", "--docker-host", url.as_str()],
            vec![],
            "--docker-host:",
        ),
        (
            vec!["prune", "--docker-host", user_only],
            vec![],
            "--docker-host:",
        ),
        (
            vec!["prune"],
            vec![("CASCADE_JANITOR_DOCKER_HOST", url.as_str())],
            "CASCADE_JANITOR_DOCKER_HOST:",
        ),
        (
            vec!["prune"],
            vec![("CASCADE_JANITOR_DOCKER_HOST", split.as_str())],
            "CASCADE_JANITOR_DOCKER_HOST:",
        ),
        (
            vec!["prune"],
            vec![("DOCKER_HOST", url.as_str())],
            "DOCKER_HOST:",
        ),
        (
            vec!["prune", "--config", f.path.as_str()],
            vec![],
            "line 1: `docker_host`:",
        ),
        (
            vec!["run", "--print-config"],
            vec![("DOCKER_HOST", url.as_str())],
            "DOCKER_HOST:",
        ),
    ] {
        let err = refusal(&args, &pairs);
        assert!(
            err.starts_with(culprit) || err.contains(culprit),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("credentials in --docker-host are refused; use TLS client certificates"),
            "{err}"
        );
        assert!(
            !err.contains(secret) && !err.contains("admin"),
            "leaks: {err}"
        );
    }
}

#[test]
fn plain_tcp_off_loopback_needs_allow_plain_tcp_from_any_source() {
    let remote = "tcp://10.0.0.5:2375";
    let err = refusal(&["prune", "--docker-host", remote], &[]);
    assert!(
        err.starts_with("--docker-host: `tcp://10.0.0.5:2375` is plain tcp://"),
        "{err}"
    );
    let err = refusal(&["prune"], &[("DOCKER_HOST", remote)]);
    assert!(err.starts_with("DOCKER_HOST: "), "{err}");

    let plain = |s: &Settings| s.common.engines[0].transport == EngineTransport::PlainTcp;
    assert!(plain(&settings(
        &["prune", "--docker-host", remote, "--allow-plain-tcp"],
        &[]
    )));
    assert!(plain(&settings(
        &["prune", "--docker-host", remote],
        &[("CASCADE_JANITOR_ALLOW_PLAIN_TCP", "true")]
    )));
    let f = file("allow_plain_tcp = true\n");
    let s = settings(
        &["prune", "--docker-host", remote, "--config", &f.path],
        &[],
    );
    assert!(plain(&s));
    assert!(line(&s, "allow_plain_tcp").contains("true"));
    // env false beats file true
    let err = refusal(
        &["prune", "--docker-host", remote, "--config", &f.path],
        &[("CASCADE_JANITOR_ALLOW_PLAIN_TCP", "false")],
    );
    assert!(err.contains("--allow-plain-tcp"), "{err}");
    // loopback needs nothing
    assert!(plain(&settings(
        &["prune", "--docker-host", "tcp://127.0.0.1:2375"],
        &[]
    )));
}

#[test]
fn tls_settings_reach_every_tcp_engine_and_print_as_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.path().join(name), "SECRET KEY MATERIAL").expect("write");
    }
    let certs = dir.path().display().to_string();
    let s = settings(
        &[
            "prune",
            "--print-config",
            "--docker-host",
            "tcp://10.0.0.5:2376",
            "--docker-host",
            "unix:///run/docker.sock",
        ],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &certs)],
    );
    match &s.common.engines[0].transport {
        EngineTransport::Tls(files) => {
            assert_eq!(files.ca, dir.path().join("ca.pem"));
            let client = files.client.as_ref().expect("client cert");
            assert_eq!(client.key, dir.path().join("key.pem"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.common.engines[1].transport, EngineTransport::Unix);
    let ca = line(&s, "tls_ca");
    assert!(
        ca.contains(&certs) && ca.ends_with("# env DOCKER_CERT_PATH"),
        "{ca}"
    );
    assert!(line(&s, "tls_key").contains("key.pem"));
    assert!(!s.render().contains("SECRET"), "prints paths, not contents");

    // An explicit option from the file wins over the folder.
    let mine = dir.path().join("mine.pem");
    std::fs::write(&mine, "x").expect("write");
    let f = file(&format!("tls_ca = \"{}\"\n", mine.display()));
    let s = settings(
        &[
            "prune",
            "--docker-host",
            "tcp://10.0.0.5:2376",
            "--config",
            &f.path,
        ],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &certs)],
    );
    match &s.common.engines[0].transport {
        EngineTransport::Tls(files) => assert_eq!(files.ca, mine),
        other => panic!("{other:?}"),
    }

    // A missing file named by its variable.
    let err = refusal(
        &["prune", "--docker-host", "tcp://10.0.0.5:2376"],
        &[("CASCADE_JANITOR_TLS_CA", "/nonexistent/ca.pem")],
    );
    assert!(
        err.starts_with("CASCADE_JANITOR_TLS_CA: cannot read /nonexistent/ca.pem"),
        "{err}"
    );

    // Unix engines only: TLS is not needed, and not checked.
    let s = settings(
        &["prune", "--tls-ca", "/nonexistent/ca.pem"],
        &[("DOCKER_TLS_VERIFY", "1")],
    );
    assert_eq!(s.common.engines[0].transport, EngineTransport::Unix);
    assert!(line(&s, "tls_ca").contains("unused: no tcp:// engine"));
}

#[test]
fn service_links_are_ignored_and_listed() {
    let s = settings(
        &["run"],
        &[
            ("CASCADE_JANITOR_SERVICE_HOST", "10.0.0.1"),
            ("CASCADE_JANITOR_PORT", "tcp://10.0.0.1:9464"),
        ],
    );
    assert_eq!(
        s.ignored_variables,
        vec![
            "CASCADE_JANITOR_PORT".to_string(),
            "CASCADE_JANITOR_SERVICE_HOST".to_string()
        ]
    );
    assert!(
        s.render()
            .contains("# ignored variable (a Kubernetes service link): CASCADE_JANITOR_PORT")
    );
    let err = refusal(&["run"], &[("CASCADE_JANITOR_PORTS", "1")]);
    assert!(
        err.contains("CASCADE_JANITOR_PORTS is no cascade-janitor option"),
        "{err}"
    );
}

#[test]
fn a_bad_engine_address_names_its_source() {
    let err = refusal(&["prune", "--docker-host", "ftp://x"], &[]);
    assert!(
        err.starts_with("invalid value 'ftp://x' for '--docker-host <URL>': unsupported scheme"),
        "{err}"
    );
    let err = refusal(
        &["prune"],
        &[("CASCADE_JANITOR_DOCKER_HOST", "unix:///a.sock,ftp://x")],
    );
    assert!(
        err.starts_with("CASCADE_JANITOR_DOCKER_HOST: invalid value `ftp://x`"),
        "{err}"
    );
    let err = refusal(&["prune"], &[("DOCKER_HOST", "docker.sock")]);
    assert!(
        err.starts_with("DOCKER_HOST `docker.sock` is not a valid engine address"),
        "{err}"
    );
    let f = file("docker_host = []\n");
    let err = refusal(&["prune", "--config", &f.path], &[]);
    assert!(
        err.contains("line 1: `docker_host`: no engine given"),
        "{err}"
    );
    let err = refusal(
        &[
            "prune",
            "--docker-host",
            "tcp://127.0.0.1:2375",
            "--docker-host",
            "http://127.0.0.1:2375/",
        ],
        &[],
    );
    assert!(
        err.starts_with(
            "--docker-host: `tcp://127.0.0.1:2375` and `http://127.0.0.1:2375/` are the same engine"
        ),
        "{err}"
    );
}

#[test]
fn concurrency_is_auto_or_a_number_from_every_source() {
    use cascade_cleanup::Concurrency;
    let fixed = |n| Concurrency::Fixed(std::num::NonZeroUsize::new(n).expect("nz"));

    let s = settings(&["prune"], &[]);
    assert_eq!(s.common.concurrency, Concurrency::AUTO);
    let shown = line(&s, "concurrency");
    assert!(shown.starts_with("concurrency = \"auto\" "), "{shown}");
    assert!(shown.ends_with("# default"), "{shown}");

    let s = settings(&["prune", "--concurrency", "6"], &[]);
    assert_eq!(s.common.concurrency, fixed(6));
    assert!(line(&s, "concurrency").starts_with("concurrency = 6 "));

    let s = settings(&["run"], &[("CASCADE_JANITOR_CONCURRENCY", "3")]);
    assert_eq!(s.common.concurrency, fixed(3));
    let s = settings(
        &["run", "--concurrency", "auto"],
        &[("CASCADE_JANITOR_CONCURRENCY", "3")],
    );
    assert_eq!(s.common.concurrency, Concurrency::AUTO);

    for (text, expected) in [
        ("concurrency = \"auto\"\n", Concurrency::AUTO),
        ("concurrency = 2\n", fixed(2)),
        ("concurrency = \"5\"\n", fixed(5)),
    ] {
        let f = file(text);
        let s = settings(&["prune", "--config", &f.path], &[]);
        assert_eq!(s.common.concurrency, expected, "{text}");
        assert!(line(&s, "concurrency").ends_with(&format!("# {}", file_source(&f, 1))));
    }

    for (text, why) in [
        (
            "concurrency = 0\n",
            "invalid value `0`: must be at least 1; use auto",
        ),
        (
            "concurrency = \"fast\"\n",
            "invalid value `fast`: expected auto or a whole number",
        ),
        (
            "concurrency = -1\n",
            "invalid value `-1`: expected auto or a whole number",
        ),
    ] {
        let f = file(text);
        let err = refusal(&["prune", "--config", &f.path], &[]);
        assert!(
            err.starts_with(&format!(
                "config file {}, line 1: `concurrency`: {why}",
                f.path
            )),
            "{err}"
        );
    }
    let err = refusal(&["run"], &[("CASCADE_JANITOR_CONCURRENCY", "max")]);
    assert!(
        err.starts_with("CASCADE_JANITOR_CONCURRENCY: invalid value `max`: expected auto"),
        "{err}"
    );
    let err = refusal(&["prune", "--concurrency", "0"], &[]);
    assert!(
        err.contains("--concurrency") && err.contains("at least 1"),
        "{err}"
    );
}
