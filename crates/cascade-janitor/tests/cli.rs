//! The binary's contract for bad input: one line naming the culprit and the
//! fix, the documented exit code, no panic, and no request to the engine.

use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any one run of the binary may take here: every case exits
/// before it contacts an engine, or within its own `--timeout` of 1 s.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `command` to its end, or fails the test when it is still running
/// after [`LIMIT`] (and kills it): a hang is a failure, not a stuck suite.
fn finished(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("the binary's output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the binary did not exit within {LIMIT:?}: {command:?}");
        }
    }
}

fn janitor(args: &[&str], docker_host: &str) -> Output {
    finished(
        Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("SENTRY_DSN")
            .env("CASCADE_JANITOR_DOCKER_HOST", docker_host)
            .env("RUST_BACKTRACE", "1"),
    )
}

/// A unix socket that records whether anyone connected to it.
struct Witness {
    _dir: tempfile::TempDir,
    listener: UnixListener,
    host: String,
}

impl Witness {
    fn new() -> Witness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Witness {
            host: format!("unix://{}", path.display()),
            _dir: dir,
            listener,
        }
    }

    fn was_contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

fn assert_one_line_error(out: &Output, code: i32, culprit: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code for {culprit}: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(culprit), "names `{culprit}`: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_input_is_one_line_exit_2_and_never_reaches_the_engine() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["prune", "--label", "=x"], "=x", "KEY=VALUE"),
        (
            &["prune", "--label", "a b=c"],
            "a b=c",
            "cannot contain spaces",
        ),
        (&["prune", "--label", "k"], "`k`", "KEY=VALUE"),
        (&["prune", "--label", "k="], "k=", "KEY=VALUE"),
        (
            &["prune", "--label", "a=1", "--label", "a=2"],
            "a",
            "keep one",
        ),
        (&["prune", "--min-age", "-5m"], "-5m", "e.g. 0s"),
        (&["prune", "--min-age", "soon"], "soon", "e.g. 0s"),
        (
            &["prune", "--concurrency", "0"],
            "--concurrency",
            "at least 1",
        ),
        (
            &["run", "--interval", "0s"],
            "--interval",
            "longer than zero",
        ),
        (&["prune", "--output", "yaml"], "yaml", "text"),
        (&["prune", "--bogus"], "--bogus", "--help"),
        (&[], "command", "run, prune or doctor"),
    ];
    for (args, culprit, fix) in cases {
        let witness = Witness::new();
        let out = janitor(args, &witness.host);
        assert_one_line_error(&out, 2, culprit);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(fix),
            "{args:?} says how to fix it"
        );
        assert!(!witness.was_contacted(), "{args:?} contacted the engine");
    }
}

#[test]
fn malformed_docker_host_is_exit_2() {
    for host in [
        "ftp://x",
        "docker.sock",
        "/var/run/docker.sock",
        "tcp://nohostport",
        "unix://relative",
    ] {
        let out = janitor(&["prune", "--dry-run"], host);
        assert_one_line_error(&out, 2, host);
    }
}

#[test]
fn unreachable_engine_is_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("unix://{}/absent.sock", dir.path().display());
    // `run` keeps running instead: see
    // an_engine_down_at_start_does_not_stop_the_daemon.
    for command in ["prune", "doctor"] {
        let out = janitor(&[command], &missing);
        assert_one_line_error(&out, 1, "absent.sock");
    }
    // A socket that accepts but never answers: unreachable within --timeout.
    let witness = Witness::new();
    let out = janitor(&["prune", "--timeout", "1s"], &witness.host);
    assert_one_line_error(&out, 1, "no answer within 1s");
}

#[test]
fn malformed_sentry_dsn_is_exit_2() {
    let witness = Witness::new();
    let out = finished(
        Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
            .args(["prune", "--dry-run"])
            .env("CASCADE_JANITOR_DOCKER_HOST", &witness.host)
            .env("SENTRY_DSN", "not a dsn"),
    );
    assert_one_line_error(&out, 2, "SENTRY_DSN");
    assert!(!witness.was_contacted());
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["--version"], &["prune", "--help"]] {
        let out = janitor(args, "unix:///nonexistent");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn an_engine_down_at_start_does_not_stop_the_daemon() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("unix://{}/absent.sock", dir.path().display());
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args(["run", "--interval", "1s"])
        .env_clear()
        .env("CASCADE_JANITOR_DOCKER_HOST", &missing)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = daemon.stderr.take().expect("stderr");
    // Read on a thread, so each wait below has a deadline: a daemon that
    // hangs without logging fails the test instead of stalling it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("scan failed") && tx.send(line).is_err() {
                return;
            }
        }
    });
    // The first pass fails and names the engine; a second failed pass
    // proves the daemon outlived the first one and keeps trying.
    let next_failure = |what: &str| {
        rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-KILL", &daemon.id().to_string()])
                .status();
            panic!("{what} within {LIMIT:?}")
        })
    };
    let failed = next_failure("a failed pass is logged");
    assert!(failed.contains("absent.sock"), "names the engine: {failed}");
    let again = next_failure("a second failed pass is logged: run did not exit after the first");
    assert!(again.contains("absent.sock"), "names the engine: {again}");
    assert!(
        daemon.try_wait().expect("wait").is_none(),
        "run must not exit"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = daemon.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
}

/// The binary with a clean environment: only what the test sets counts.
fn configured(args: &[&str], env: &[(&str, &str)]) -> Output {
    finished(
        Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
            .args(args)
            .env_clear()
            .envs(env.iter().copied()),
    )
}

/// A config file in a temporary folder.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: String,
}

fn config_file(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("janitor.toml");
    std::fs::write(&path, text).expect("write config");
    ConfigFile {
        path: path.display().to_string(),
        _dir: dir,
    }
}

/// The `--print-config` line for `key`.
fn printed(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no line for {key}: {stdout}"))
        .to_string()
}

#[test]
fn each_level_wins_over_the_next() {
    let file = config_file("min_age = \"5m\"\nlabel = [\"team=a\", \"cascade.managed=true\"]\n");
    let config = file.path.as_str();

    // default
    let out = configured(&["prune", "--print-config"], &[]);
    let line = printed(&out, "min_age");
    assert!(
        line.contains("\"10m\"") && line.ends_with("# default"),
        "{line}"
    );

    // file > default
    let out = configured(&["prune", "--print-config", "--config", config], &[]);
    let line = printed(&out, "min_age");
    assert!(line.contains("\"5m\""), "{line}");
    assert!(
        line.ends_with(&format!("# file {config} (line 1)")),
        "{line}"
    );
    let line = printed(&out, "label");
    assert!(
        line.contains("[\"team=a\", \"cascade.managed=true\"]") && line.contains("(line 2)"),
        "{line}"
    );

    // env > file
    let env = [("CASCADE_JANITOR_MIN_AGE", "7m")];
    let out = configured(&["prune", "--print-config", "--config", config], &env);
    let line = printed(&out, "min_age");
    assert!(line.contains("\"7m\""), "{line}");
    assert!(line.ends_with("# env CASCADE_JANITOR_MIN_AGE"), "{line}");

    // flag > env
    let out = configured(
        &[
            "prune",
            "--print-config",
            "--config",
            config,
            "--min-age",
            "9m",
        ],
        &env,
    );
    let line = printed(&out, "min_age");
    assert!(
        line.contains("\"9m\"") && line.ends_with("# flag --min-age"),
        "{line}"
    );

    // The config path itself comes from the flag or CASCADE_JANITOR_CONFIG.
    let out = configured(
        &["prune", "--print-config"],
        &[("CASCADE_JANITOR_CONFIG", config)],
    );
    assert!(printed(&out, "min_age").contains("\"5m\""));
}

#[test]
fn docker_host_falls_back_to_docker_host_below_the_file() {
    let a = "unix:///run/a.sock";
    let b = "unix:///run/b.sock";
    let out = configured(&["doctor", "--print-config"], &[]);
    let line = printed(&out, "docker_host");
    assert!(
        line.contains("unix:///var/run/docker.sock") && line.ends_with("# default"),
        "{line}"
    );

    let out = configured(&["doctor", "--print-config"], &[("DOCKER_HOST", a)]);
    let line = printed(&out, "docker_host");
    assert!(
        line.contains(a) && line.ends_with("# env DOCKER_HOST"),
        "{line}"
    );

    let file = config_file(&format!("docker_host = [\"{a}\", \"{b}\"]\n"));
    let out = configured(
        &["doctor", "--print-config", "--config", &file.path],
        &[("DOCKER_HOST", "unix:///run/other.sock")],
    );
    let line = printed(&out, "docker_host");
    assert!(
        line.contains(&format!("[\"{a}\", \"{b}\"]")) && line.contains("# file"),
        "{line}"
    );

    let out = configured(
        &["doctor", "--print-config", "--config", &file.path],
        &[("CASCADE_JANITOR_DOCKER_HOST", &format!("{b},{a}"))],
    );
    let line = printed(&out, "docker_host");
    assert!(
        line.contains(&format!("[\"{b}\", \"{a}\"]"))
            && line.ends_with("# env CASCADE_JANITOR_DOCKER_HOST"),
        "{line}"
    );

    let out = configured(
        &[
            "doctor",
            "--print-config",
            "--docker-host",
            a,
            "--docker-host",
            b,
        ],
        &[],
    );
    let line = printed(&out, "docker_host");
    assert!(line.ends_with("# flag --docker-host"), "{line}");
}

#[test]
fn print_config_shows_every_option_and_contacts_nothing() {
    let witness = Witness::new();
    let file = config_file("interval = \"5m\"\noutput = \"json\"\n");
    let out = configured(
        &[
            "run",
            "--print-config",
            "--config",
            &file.path,
            "--docker-host",
            &witness.host,
            "--metrics-addr",
            "127.0.0.1:9464",
        ],
        &[],
    );
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
    ] {
        printed(&out, key);
    }
    assert!(printed(&out, "metrics_addr").contains("\"127.0.0.1:9464\""));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# ignored from the config file: output (line 2, only for prune)"),
        "a key of another command is ignored with a note: {stdout}"
    );
    assert!(
        !witness.was_contacted(),
        "--print-config contacted the engine"
    );

    let out = configured(&["prune", "--print-config", "--progress", "log"], &[]);
    assert!(printed(&out, "progress").contains("\"log\""));
    let out = configured(&["run", "--print-config"], &[]);
    assert!(printed(&out, "metrics_addr").contains("not set (off)"));

    // A defaulted gap longer than a short interval is capped, and says so.
    let out = configured(&["run", "--print-config", "--interval", "30s"], &[]);
    let line = printed(&out, "min_sweep_gap");
    assert!(
        line.contains("\"30s\"") && line.contains("capped"),
        "{line}"
    );
}

#[test]
fn bad_config_is_one_line_exit_2_and_never_reaches_the_engine() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "min_age = \"5m\"\n\nintervl = \"5m\"\n",
            "line 3: unknown key `intervl`",
            "keys are",
        ),
        ("min_age = 5\n", "`min_age`", "e.g. min_age = \"10m\""),
        ("min_age = \"soon\"\n", "`min_age`", "e.g. 0s"),
        (
            "concurrency = true\n",
            "`concurrency`",
            "e.g. concurrency = \"auto\"",
        ),
        ("concurrency = \"fast\"\n", "`concurrency`", "expected auto"),
        ("concurrency = 0\n", "`concurrency`", "at least 1"),
        (
            "min_age = \"5m\n",
            "line 1 is not valid TOML",
            "key = value",
        ),
        ("[run]\ninterval = \"5m\"\n", "`[run]`", "top level"),
        ("config = \"/x.toml\"\n", "`config`", "--config"),
        (
            "label = \"a=1\"\nmin_age = [\"a\"]\n",
            "line 2: `min_age`",
            "a string",
        ),
        ("label = [\"a=1\", \"a=2\"]\n", "`label`", "keep one"),
        ("label = [1]\n", "`label`", "array of strings"),
        (
            "docker_host = [\"ftp://x\"]\n",
            "ftp://x",
            "unix:///path/to/docker.sock",
        ),
        ("docker_host = []\n", "`docker_host`", "at least one"),
        ("log_format = \"yaml\"\n", "`log_format`", "text, json"),
        (
            "metrics_addr = \"localhost\"\n",
            "`metrics_addr`",
            "127.0.0.1:9464",
        ),
        (
            "interval = \"1m\"\nmin_sweep_gap = \"2m\"\n",
            "`min_sweep_gap`",
            "at most the interval",
        ),
        ("stale_intervals = 0\n", "`stale_intervals`", "at least 1"),
        ("no_events = \"yes\"\n", "`no_events`", "true or false"),
    ];
    for (text, culprit, fix) in cases {
        let witness = Witness::new();
        let file = config_file(text);
        // The engine comes from the env var, except where the file's
        // docker_host is under test (the env var would win over it).
        let env = [("CASCADE_JANITOR_DOCKER_HOST", witness.host.as_str())];
        let env: &[(&str, &str)] = if text.starts_with("docker_host") {
            &[]
        } else {
            &env
        };
        let out = configured(&["run", "--config", &file.path], env);
        assert_one_line_error(&out, 2, culprit);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&file.path), "names the file: {stderr}");
        assert!(
            stderr.contains(fix),
            "{text:?} says how to fix it: {stderr}"
        );
        assert!(!witness.was_contacted(), "{text:?} contacted the engine");
    }

    let out = configured(&["run", "--config", "/nonexistent/janitor.toml"], &[]);
    assert_one_line_error(&out, 2, "/nonexistent/janitor.toml");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn bad_new_run_options_are_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--metrics-addr", "localhost:9464"],
            "--metrics-addr",
        ),
        (&["run", "--stale-intervals", "0"], "--stale-intervals"),
        (&["run", "--event-debounce", "soon"], "soon"),
        (
            &["run", "--interval", "1m", "--min-sweep-gap", "2m"],
            "--min-sweep-gap",
        ),
        (&["prune", "--progress", "fancy"], "fancy"),
        (
            &[
                "prune",
                "--docker-host",
                "unix:///a.sock",
                "--docker-host",
                "unix:///a.sock",
            ],
            "given twice",
        ),
        (
            &[
                "prune",
                "--docker-host",
                "tcp://127.0.0.1:2375",
                "--docker-host",
                "tcp://127.0.0.1:2375/",
            ],
            "same engine",
        ),
        (
            &[
                "doctor",
                "--docker-host",
                "tcp://127.0.0.1:2375",
                "--docker-host",
                "http://127.0.0.1:2375",
            ],
            "same engine",
        ),
        (&["prune", "--min-age", "36501d"], "at most 100 years"),
        (&["run", "--interval", "200y"], "at most 100 years"),
        (&["run", "--interval", "36500d"], "--stale-intervals"),
    ];
    for (args, culprit) in cases {
        let witness = Witness::new();
        let out = janitor(args, &witness.host);
        assert_one_line_error(&out, 2, culprit);
        assert!(!witness.was_contacted(), "{args:?} contacted the engine");
    }
}

#[test]
fn several_engines_one_unreachable_is_exit_1_and_each_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = format!("unix://{}/a.sock", dir.path().display());
    let b = format!("unix://{}/b.sock", dir.path().display());
    let out = configured(&["prune", "--docker-host", &a, "--docker-host", &b], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for host in [&a, &b] {
        assert!(stdout.contains(&format!("== engine {host} ==")), "{stdout}");
    }
    let out = configured(
        &[
            "prune",
            "--output",
            "json",
            "--docker-host",
            &a,
            "--docker-host",
            &b,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let engines = json["engines"].as_array().expect("engines");
    assert_eq!(engines.len(), 2);
    assert_eq!(engines[0]["docker_host"].as_str(), Some(a.as_str()));
    assert!(
        engines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("b.sock"))
    );

    let out = configured(&["doctor", "--docker-host", &a, "--docker-host", &b], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("== engine {b} ==")), "{stdout}");
    assert!(stdout.contains("0 of 2 engines healthy"), "{stdout}");
}

#[test]
fn an_unknown_cascade_janitor_variable_is_exit_2() {
    let witness = Witness::new();
    let host = witness.host.as_str();
    let cases: &[(&str, &[&str], &str)] = &[
        // The plural would silently leave the default, wider scope.
        (
            "CASCADE_JANITOR_LABELS",
            &["prune"],
            "CASCADE_JANITOR_LABEL?",
        ),
        (
            "CASCADE_JANITOR_MINAGE",
            &["prune"],
            "CASCADE_JANITOR_MIN_AGE?",
        ),
        (
            "CASCADE_JANITOR_DOCKER_HOSTS",
            &["doctor"],
            "CASCADE_JANITOR_DOCKER_HOST?",
        ),
        (
            "CASCADE_JANITOR_INTERVALL",
            &["run", "--print-config"],
            "CASCADE_JANITOR_INTERVAL?",
        ),
        (
            "CASCADE_JANITOR_WHATEVER",
            &["run", "--print-config"],
            "unset it",
        ),
    ];
    for (name, args, hint) in cases {
        let out = configured(
            args,
            &[("CASCADE_JANITOR_DOCKER_HOST", host), (name, "team=x")],
        );
        assert_one_line_error(&out, 2, name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(hint), "{name}: {stderr}");
        assert!(stderr.contains("unset it"), "{name}: {stderr}");
    }
    assert!(!witness.was_contacted());

    // Another command's variable is fine (one environment can serve all).
    let out = configured(
        &["doctor", "--print-config"],
        &[
            ("CASCADE_JANITOR_INTERVAL", "5m"),
            ("CASCADE_JANITOR_OUTPUT", "json"),
            ("CASCADE_JANITOR_PRINT_CONFIG", "false"),
        ],
    );
    printed(&out, "min_age");
}

#[test]
fn run_refuses_a_dry_run_request() {
    let witness = Witness::new();
    let host = witness.host.as_str();
    for text in ["dry_run = true\n", "min_age = \"1m\"\ndry_run = \"yes\"\n"] {
        let file = config_file(text);
        let out = configured(
            &["run", "--config", &file.path],
            &[("CASCADE_JANITOR_DOCKER_HOST", host)],
        );
        assert_one_line_error(&out, 2, "dry_run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("run has no dry-run mode"), "{stderr}");
        assert!(stderr.contains("prune --dry-run"), "{stderr}");
        assert!(
            stderr.contains(&format!("remove dry_run from {}", file.path)),
            "{stderr}"
        );
    }
    for value in ["true", "1", "yes"] {
        let out = configured(
            &["run"],
            &[
                ("CASCADE_JANITOR_DOCKER_HOST", host),
                ("CASCADE_JANITOR_DRY_RUN", value),
            ],
        );
        assert_one_line_error(&out, 2, "CASCADE_JANITOR_DRY_RUN");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("use `prune --dry-run`, or unset CASCADE_JANITOR_DRY_RUN"),
            "{stderr}"
        );
    }
    assert!(
        !witness.was_contacted(),
        "a dry-run request reached the engine"
    );

    // false is accepted and ignored, as any key of another command.
    let file = config_file("dry_run = false\n");
    let out = configured(
        &["run", "--print-config", "--config", &file.path],
        &[("CASCADE_JANITOR_DRY_RUN", "false")],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ignored from the config file: dry_run"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // prune still takes the same file and variable.
    let file = config_file("dry_run = true\n");
    let out = configured(
        &["prune", "--print-config", "--config", &file.path],
        &[("CASCADE_JANITOR_DRY_RUN", "true")],
    );
    assert!(printed(&out, "dry_run").contains("true"));
}

#[test]
fn config_file_durations_are_bounded_too() {
    for text in [
        "min_age = \"36501d\"\n",
        "interval = \"101years\"\n",
        "stop_deadline = \"99999999999999999999s\"\n",
    ] {
        let witness = Witness::new();
        let file = config_file(text);
        let out = configured(
            &["run", "--config", &file.path],
            &[("CASCADE_JANITOR_DOCKER_HOST", witness.host.as_str())],
        );
        assert_one_line_error(&out, 2, &file.path);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("too long; at most 100 years"),
            "{text}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!witness.was_contacted());
    }
}

/// Arguments, environment and the culprit the one-line error names.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn sweep_floors_are_exit_2_from_flag_env_and_file() {
    let witness = Witness::new();
    let host = witness.host.as_str();
    let file = config_file("interval = \"100ms\"\n");
    let gap = config_file("min_sweep_gap = \"0s\"\n");
    let cases: &[Case] = &[
        (&["run", "--interval", "500ms"], &[], "--interval 500ms"),
        (
            &["run"],
            &[("CASCADE_JANITOR_INTERVAL", "1ns")],
            "CASCADE_JANITOR_INTERVAL",
        ),
        (&["run", "--config", &file.path], &[], "`interval`"),
        (&["run", "--min-sweep-gap", "0s"], &[], "--min-sweep-gap 0s"),
        (
            &["run"],
            &[("CASCADE_JANITOR_MIN_SWEEP_GAP", "200ms")],
            "CASCADE_JANITOR_MIN_SWEEP_GAP",
        ),
        (&["run", "--config", &gap.path], &[], "`min_sweep_gap`"),
    ];
    for (args, env, culprit) in cases {
        let mut env = env.to_vec();
        env.push(("CASCADE_JANITOR_DOCKER_HOST", host));
        let out = configured(args, &env);
        assert_one_line_error(&out, 2, culprit);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("below its floor of 1s"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!witness.was_contacted());
}

type Vars<'a> = &'a [(&'a str, &'a str)];

#[test]
fn credentials_in_the_engine_url_are_exit_2_and_never_printed() {
    let file = config_file("docker_host = [\"tcp://ops:s3cret@10.9.8.7:2376\"]\n");
    let cases: &[(&[&str], Vars)] = &[
        (
            &["prune", "--docker-host", "tcp://ops:s3cret@10.9.8.7:2376"],
            &[],
        ),
        (&["doctor", "--docker-host", "tcp://ops@10.9.8.7"], &[]),
        (
            &["run", "--print-config"],
            &[(
                "CASCADE_JANITOR_DOCKER_HOST",
                "tcp://ops:s3cret@10.9.8.7:2376",
            )],
        ),
        (
            &["prune"],
            &[("DOCKER_HOST", "tcp://ops:s3cret@10.9.8.7:2376")],
        ),
        (&["prune", "--config", &file.path], &[]),
    ];
    for (args, env) in cases {
        let out = configured(args, env);
        assert_one_line_error(&out, 2, "credentials in --docker-host are refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("use TLS client certificates"), "{stderr}");
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("ops"),
            "{args:?} printed the credentials: {stderr}"
        );
    }
}

#[test]
fn plain_tcp_off_loopback_is_exit_2_unless_allowed() {
    let out = configured(&["prune", "--docker-host", "tcp://192.0.2.10:2375"], &[]);
    assert_one_line_error(&out, 2, "--allow-plain-tcp");
    let out = configured(&["doctor"], &[("DOCKER_HOST", "tcp://192.0.2.10:2375")]);
    assert_one_line_error(&out, 2, "DOCKER_HOST");
    // Allowed, or on loopback: accepted (print-config contacts nothing).
    let out = configured(
        &[
            "prune",
            "--print-config",
            "--docker-host",
            "tcp://192.0.2.10:2375",
        ],
        &[("CASCADE_JANITOR_ALLOW_PLAIN_TCP", "true")],
    );
    assert!(printed(&out, "allow_plain_tcp").contains("true"));
    let out = configured(
        &[
            "prune",
            "--print-config",
            "--docker-host",
            "tcp://127.0.0.1:2375",
        ],
        &[],
    );
    assert!(printed(&out, "docker_host").contains("127.0.0.1"));
}

#[test]
fn unreadable_tls_files_are_exit_2_naming_option_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("ca.pem").display().to_string();
    let cert_path = dir.path().display().to_string();
    let remote = "tcp://192.0.2.10:2376";
    let cases: &[Case] = &[
        (
            &["prune", "--docker-host", remote, "--tls-ca", &missing],
            &[],
            "--tls-ca",
        ),
        (
            &["prune", "--docker-host", remote],
            &[("CASCADE_JANITOR_TLS_CA", &missing)],
            "CASCADE_JANITOR_TLS_CA",
        ),
        (
            &["doctor", "--docker-host", remote],
            &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
            "DOCKER_CERT_PATH",
        ),
    ];
    for (args, env, culprit) in cases {
        let out = configured(args, env);
        assert_one_line_error(&out, 2, culprit);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&missing),
            "names the path: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // With the files there, TLS is configured and print-config shows paths.
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.path().join(name), "-----BEGIN PRIVATE KEY-----").expect("write");
    }
    let out = configured(
        &["prune", "--print-config", "--docker-host", remote],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
    );
    let line = printed(&out, "tls_key");
    assert!(
        line.contains(&format!("{cert_path}/key.pem")) && line.ends_with("# env DOCKER_CERT_PATH"),
        "{line}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("BEGIN PRIVATE KEY"));
}

/// Files that exist but are no PEM certificate or key: exit 2 before any
/// contact, naming the file, never quoting it (a key file is a secret).
#[test]
fn tls_files_that_are_not_pem_are_exit_2_and_never_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let junk = write("junk.pem", "SECRET-JUNK\n");
    let key = write(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nSECRET-KEY\n-----END X-----\n",
    );
    let remote = "tcp://127.0.0.1:9";
    let out = configured(&["prune", "--docker-host", remote, "--tls-ca", &junk], &[]);
    assert_one_line_error(&out, 2, &junk);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no PEM certificate"));
    // A good CA and certificate, but the key file is not a key.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = rcgen::CertificateParams::new(vec!["engine".to_string()])
        .expect("params")
        .self_signed(&ca_key)
        .expect("ca");
    let ca = write("ca.pem", &ca.pem());
    let out = configured(
        &[
            "prune",
            "--docker-host",
            remote,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &ca,
            "--tls-key",
            &key,
        ],
        &[],
    );
    assert_one_line_error(&out, 2, &key);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("SECRET"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_service_links_do_not_stop_the_janitor() {
    let witness = Witness::new();
    let out = configured(
        &["run", "--print-config"],
        &[
            ("CASCADE_JANITOR_DOCKER_HOST", witness.host.as_str()),
            ("CASCADE_JANITOR_SERVICE_HOST", "10.96.0.12"),
            ("CASCADE_JANITOR_SERVICE_PORT", "9464"),
            ("CASCADE_JANITOR_PORT", "tcp://10.96.0.12:9464"),
            ("CASCADE_JANITOR_PORT_9464_TCP_ADDR", "10.96.0.12"),
        ],
    );
    printed(&out, "min_age");
    let out = configured(
        &["run", "--print-config"],
        &[
            ("CASCADE_JANITOR_DOCKER_HOST", witness.host.as_str()),
            ("CASCADE_JANITOR_PORTS", "9464"),
        ],
    );
    assert_one_line_error(&out, 2, "CASCADE_JANITOR_PORTS");
    assert!(!witness.was_contacted());

    // Each ignored variable is one debug line, once logging is up.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("unix://{}/absent.sock", dir.path().display());
    let out = configured(
        &["doctor"],
        &[
            ("CASCADE_JANITOR_DOCKER_HOST", missing.as_str()),
            ("CASCADE_JANITOR_SERVICE_HOST", "10.96.0.12"),
            ("RUST_LOG", "cascade_janitor=debug"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "the engine is unreachable");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("DEBUG")
            && l.contains("ignoring a Kubernetes service link variable")
            && l.contains("CASCADE_JANITOR_SERVICE_HOST")),
        "{stderr}"
    );
}
