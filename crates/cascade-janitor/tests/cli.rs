//! The binary's contract for bad input: one line naming the culprit and the
//! fix, the documented exit code, no panic, and no request to the engine.

use std::os::unix::net::UnixListener;
use std::process::{Command, Output};

fn janitor(args: &[&str], docker_host: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("SENTRY_DSN")
        .env("CASCADE_JANITOR_DOCKER_HOST", docker_host)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the binary runs")
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
    for command in ["prune", "doctor", "run"] {
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
    let out = Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args(["prune", "--dry-run"])
        .env("CASCADE_JANITOR_DOCKER_HOST", &witness.host)
        .env("SENTRY_DSN", "not a dsn")
        .output()
        .expect("runs");
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
