//! No log line, report, printed configuration or Sentry event carries a
//! credential: the Sentry DSN's key, the contents of the TLS key file, or
//! the user information of an engine URL. The binary runs with all three,
//! at debug level, against a TLS engine whose removals fail (errors logged
//! and reported), an engine that cannot be reached (failed scans logged and
//! reported), and with URLs that carry credentials (refused); Sentry sends
//! to a capture server on 127.0.0.1. Everything it wrote, and every event
//! it sent, is searched for each secret.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::tls::{Pki, TlsProxy};
use integration::{NestedEngine, StderrLog, wait_until};

/// Variables set for one run.
type Env = Vec<(&'static str, String)>;

/// The DSN's public key: what identifies the project to Sentry.
const DSN_KEY: &str = "5ecre7d5nkey0123456789abcdef0123";
const URL_USER: &str = "janitor-user-x9";
const URL_PASSWORD: &str = "s3cr3t-pa55-x9";

/// An HTTP server on 127.0.0.1 that takes every request as Sentry's
/// ingestion endpoint would, keeps its body, and answers 200.
struct SentryCapture {
    port: u16,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SentryCapture {
    async fn start() -> Result<SentryCapture> {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let sink = Arc::clone(&sink);
                            async move {
                                let body = req.into_body().collect().await?.to_bytes();
                                sink.lock().expect("bodies").push(body.to_vec());
                                Ok::<_, hyper::Error>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(SentryCapture { port, bodies, task })
    }

    fn dsn(&self) -> String {
        format!("http://{DSN_KEY}@127.0.0.1:{}/42", self.port)
    }

    /// The event items of every envelope received, as text. An envelope's
    /// first line is its header (the transport's own addressing); each
    /// item is a header line and a payload line.
    fn events(&self) -> Vec<String> {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .flat_map(|body| {
                let text = String::from_utf8_lossy(body).into_owned();
                text.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
            })
            .filter(|line| line.contains("\"event_id\"") || line.contains("\"type\""))
            .collect()
    }

    /// Every byte received, as text, headers of the envelopes included.
    fn everything(&self) -> Vec<String> {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

impl Drop for SentryCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The secret lines of a PEM key file: its base64 body, line by line.
fn key_lines(path: &std::path::Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect())
}

/// Fails naming the first text that holds one of `secrets`.
fn assert_clean(texts: &[String], secrets: &[String], what: &str) {
    for text in texts {
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} carries the secret `{secret}`: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_or_sentry_event_carries_a_credential() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("fails").ours(),
        ],
    )
    .await?;
    let faults = FaultProxy::start(&engine.socket)?;
    faults.set(Fault::FailRemovalOf(loaded["fails"].clone()));
    let pki = Pki::new("credentials")?;
    let server = pki.issue("server", &["127.0.0.1"])?;
    let client = pki.issue("client", &["janitor"])?;
    let tls = TlsProxy::start(&faults.socket, &pki, &server).await?;
    let capture = SentryCapture::start().await?;
    // An engine that cannot be reached: a port nothing listens on.
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let unreachable = format!("tcp://127.0.0.1:{closed}");

    let mut secrets: Vec<String> = key_lines(&client.key)?;
    assert!(secrets.len() >= 2, "a PEM key has body lines");
    secrets.extend([
        DSN_KEY.to_string(),
        URL_USER.to_string(),
        URL_PASSWORD.to_string(),
    ]);
    let tls_args = |command: &mut tokio::process::Command| {
        command
            .arg("--tls-ca")
            .arg(pki.ca_pem())
            .arg("--tls-cert")
            .arg(&client.cert)
            .arg("--tls-key")
            .arg(&client.key);
    };
    let mut emitted: Vec<String> = Vec::new();

    // The daemon: a removal that fails (a warning event with the engine's
    // error text) and an engine that cannot be reached (a failed scan each
    // pass), at debug level, in both log formats.
    for format in ["text", "json"] {
        let mut command = integration::janitor();
        command
            .args(["run", "--min-age", "0s", "--interval", "1s"])
            .args(["--min-sweep-gap", "1s", "--timeout", "3s"])
            .args(["--docker-host", &tls.host(), "--docker-host", &unreachable])
            .args(["--metrics-addr", "127.0.0.1:0", "--log-format", format])
            .env("SENTRY_DSN", capture.dsn())
            .env("RUST_LOG", "debug")
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tls_args(&mut command);
        let before = capture.events().len();
        let mut child = command.spawn()?;
        let log = StderrLog::collect(&mut child);
        wait_until(
            Duration::from_secs(60),
            "a removal failure and two failed scans sent to Sentry",
            || async {
                let events = capture.events().split_off(before);
                events
                    .iter()
                    .filter(|e| e.contains("dangling_image_remove"))
                    .count()
                    >= 1
                    && events
                        .iter()
                        .filter(|e| e.contains("dangling_image_cleanup_scan"))
                        .count()
                        >= 2
            },
        )
        .await?;
        let pid = child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()?;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
        let lines = log.finish().await;
        assert_eq!(
            status.code(),
            Some(0),
            "a clean shutdown: {status:?} {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("scan failed")),
            "the unreachable engine's failures were logged: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("dangling image removal failed")
                    || l.contains("not removed")
                    || l.contains("injected failure")),
            "the failed removal was logged: {lines:?}"
        );
        emitted.extend(lines);
    }

    // One-shot commands over the same engines: a report, the plan, doctor,
    // the printed configuration.
    for args in [
        vec!["prune", "--output", "json", "--min-age", "0s"],
        vec!["prune", "--dry-run", "--output", "text"],
        vec!["doctor"],
        vec!["run", "--print-config"],
    ] {
        let mut command = integration::janitor();
        command
            .args(&args)
            .args(["--docker-host", &tls.host(), "--docker-host", &unreachable])
            .args(["--timeout", "3s"])
            .env("SENTRY_DSN", capture.dsn())
            .env("RUST_LOG", "debug")
            .env_remove("DOCKER_HOST");
        tls_args(&mut command);
        let out = command.output().await?;
        for stream in [&out.stdout, &out.stderr] {
            emitted.extend(String::from_utf8_lossy(stream).lines().map(String::from));
        }
    }

    // Engine URLs with user information, given every way: refused, and the
    // refusal never repeats them.
    let with_credentials = format!("tcp://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{closed}");
    let config = tempfile::NamedTempFile::new()?;
    std::fs::write(
        config.path(),
        format!("docker_host = [\"{with_credentials}\"]\n"),
    )?;
    let ways: Vec<(Vec<String>, Env)> = vec![
        (
            vec![
                "prune".into(),
                "--docker-host".into(),
                with_credentials.clone(),
            ],
            vec![],
        ),
        (
            vec!["run".into()],
            vec![("DOCKER_HOST", with_credentials.clone())],
        ),
        (
            vec!["doctor".into()],
            vec![("CASCADE_JANITOR_DOCKER_HOST", with_credentials.clone())],
        ),
        (
            vec![
                "run".into(),
                "--config".into(),
                config.path().display().to_string(),
                "--print-config".into(),
            ],
            vec![],
        ),
        (
            vec!["prune".into()],
            vec![(
                "SENTRY_DSN",
                format!("http://{DSN_KEY}@127.0.0.1:notaport/42"),
            )],
        ),
    ];
    for (args, env) in ways {
        let mut command = integration::janitor();
        command.args(&args).env_remove("DOCKER_HOST");
        for (key, value) in &env {
            command.env(key, value);
        }
        let out = command.output().await?;
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?} is refused");
        for stream in [&out.stdout, &out.stderr] {
            emitted.extend(String::from_utf8_lossy(stream).lines().map(String::from));
        }
    }

    assert!(emitted.len() > 50, "the runs wrote {} lines", emitted.len());
    assert_clean(&emitted, &secrets, "a line the binary wrote");
    let events = capture.events();
    assert!(events.len() >= 3, "{events:?}");
    assert_clean(&events, &secrets, "a Sentry event");
    // The envelopes' own headers may address the project (the protocol's
    // business); the TLS key and the URL credentials never go there.
    assert_clean(
        &capture.everything(),
        &secrets[..secrets.len() - 3],
        "a request to Sentry",
    );
    assert_clean(
        &capture.everything(),
        &[URL_USER.to_string(), URL_PASSWORD.to_string()],
        "a request to Sentry",
    );
    drop(tls);
    drop(faults);
    engine.finish().await
}
