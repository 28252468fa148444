//! A TLS engine, end to end through the binary: the nested engine behind a
//! TLS-terminating proxy on 127.0.0.1 that requires client certificates
//! (as `dockerd --tlsverify`), with certificates made in the test.

use std::process::Output;

use anyhow::Result;
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::tls::{Pki, TlsProxy};

async fn prune(host: &str, tls: &[(&str, &std::path::Path)]) -> Result<Output> {
    let mut command = integration::janitor();
    command
        .args(["prune", "--min-age", "0s", "--progress", "none"])
        .args(["--docker-host", host])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    for (flag, path) in tls {
        command.arg(flag).arg(path);
    }
    Ok(command.output().await?)
}

/// Exit 1, one line on stderr that names the engine, no panic, no report.
fn assert_clean_failure(out: &Output, host: &str, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{why}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{why}: one line: {stderr}"
    );
    assert!(stderr.contains(host), "{why}: names the engine: {stderr}");
    assert!(!stderr.contains("panicked"), "{why}: {stderr}");
    assert!(
        stderr.contains("the TLS handshake failed"),
        "{why}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{why}: no report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_engine_is_swept_only_with_the_right_ca_and_client_certificate() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let ids = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("bystander").label("other", "x"),
        ],
    )
    .await?;
    let pki = Pki::new("engine")?;
    let server = pki.issue("server", &["127.0.0.1", "localhost"])?;
    let client = pki.issue("client", &["janitor"])?;
    let proxy = TlsProxy::start(&engine.socket, &pki, &server).await?;
    let host = proxy.host();
    let other = Pki::new("other")?;
    let other_client = other.issue("client", &["janitor"])?;

    // Another CA: the engine's certificate is not trusted.
    let out = prune(
        &host,
        &[
            ("--tls-ca", &other.ca_pem()),
            ("--tls-cert", &client.cert),
            ("--tls-key", &client.key),
        ],
    )
    .await?;
    assert_clean_failure(&out, &host, "wrong CA");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"),
        "says why: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No client certificate: the engine refuses the connection.
    let out = prune(&host, &[("--tls-ca", &pki.ca_pem())]).await?;
    assert_clean_failure(&out, &host, "no client certificate");
    // A client certificate the engine's CA did not sign.
    let out = prune(
        &host,
        &[
            ("--tls-ca", &pki.ca_pem()),
            ("--tls-cert", &other_client.cert),
            ("--tls-key", &other_client.key),
        ],
    )
    .await?;
    assert_clean_failure(&out, &host, "foreign client certificate");
    assert!(all_image_ids(&engine.docker).await?.contains(&ids["ours"]));

    // The right ones: ours goes, the bystander stays.
    let out = prune(
        &host,
        &[
            ("--tls-ca", &pki.ca_pem()),
            ("--tls-cert", &client.cert),
            ("--tls-key", &client.key),
        ],
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = all_image_ids(&engine.docker).await?;
    assert!(!left.contains(&ids["ours"]), "ours was swept: {left:?}");
    assert!(left.contains(&ids["bystander"]), "the bystander stays");

    // The same through DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the CLI.
    let dir = tempfile::tempdir()?;
    std::fs::copy(pki.ca_pem(), dir.path().join("ca.pem"))?;
    std::fs::copy(&client.cert, dir.path().join("cert.pem"))?;
    std::fs::copy(&client.key, dir.path().join("key.pem"))?;
    let again = fixtures::load(&engine.docker, &[ImageSpec::new("ours-again").ours()]).await?;
    let out = integration::janitor()
        .args(["prune", "--min-age", "0s", "--progress", "none"])
        .env_remove("CASCADE_JANITOR_DOCKER_HOST")
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", dir.path())
        .output()
        .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = all_image_ids(&engine.docker).await?;
    assert!(!left.contains(&again["ours-again"]), "swept: {left:?}");
    assert!(left.contains(&ids["bystander"]));
    drop(proxy);
    engine.finish().await
}

/// The name checked is the address's host: a certificate for another name
/// is refused even though the CA signed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let pki = Pki::new("engine")?;
    let server = pki.issue("server", &["engine.example"])?;
    let client = pki.issue("client", &["janitor"])?;
    let proxy = TlsProxy::start(&engine.socket, &pki, &server).await?;
    let out = prune(
        &proxy.host(),
        &[
            ("--tls-ca", &pki.ca_pem()),
            ("--tls-cert", &client.cert),
            ("--tls-key", &client.key),
        ],
    )
    .await?;
    assert_clean_failure(&out, &proxy.host(), "another name");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not valid for name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(proxy);
    engine.finish().await
}

/// `run` over TLS: with a CA that did not sign the engine's certificate the
/// daemon stays up and reports a failed scan naming the engine; with the
/// right files it sweeps at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sweeps_a_tls_engine() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let ids = fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let pki = Pki::new("engine")?;
    let server = pki.issue("server", &["127.0.0.1"])?;
    let client = pki.issue("client", &["janitor"])?;
    let proxy = TlsProxy::start(&engine.socket, &pki, &server).await?;
    let other = Pki::new("other")?;
    let daemon = |ca: &std::path::Path| -> Result<tokio::process::Child> {
        Ok(integration::janitor()
            .args(["run", "--min-age", "0s", "--interval", "1h", "--no-events"])
            .args(["--docker-host", &proxy.host(), "--log-format", "text"])
            .arg("--tls-ca")
            .arg(ca)
            .arg("--tls-cert")
            .arg(&client.cert)
            .arg("--tls-key")
            .arg(&client.key)
            .env_remove("DOCKER_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?)
    };

    let mut wrong = daemon(&other.ca_pem())?;
    let log = integration::StderrLog::collect(&mut wrong);
    integration::wait_until(
        std::time::Duration::from_secs(20),
        "a failed scan",
        || async { log.contains("scan failed") },
    )
    .await?;
    assert!(wrong.try_wait()?.is_none(), "the daemon stays up");
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("scan failed") && l.contains(&proxy.host())),
        "{:?}",
        log.lines()
    );
    wrong.kill().await?;
    assert!(all_image_ids(&engine.docker).await?.contains(&ids["ours"]));

    let mut right = daemon(&pki.ca_pem())?;
    integration::wait_until(std::time::Duration::from_secs(20), "a sweep", || async {
        all_image_ids(&engine.docker)
            .await
            .is_ok_and(|ids_now| !ids_now.contains(&ids["ours"]))
    })
    .await?;
    right.kill().await?;
    drop(proxy);
    engine.finish().await
}
