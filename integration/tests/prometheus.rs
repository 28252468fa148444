//! `deploy/prometheus` run, not only read: a real Prometheus (Debian's
//! `prometheus` package) scrapes a running daemon with the shipped scrape
//! job (`scrape.yaml`) and evaluates the shipped rules (`alerts.yaml`).
//! Removals fail through a proxy: `CascadeJanitorRemovalErrorsRising` goes
//! pending, then firing; the fault is lifted: it resolves.
//!
//! The rules hold for hours (a 1 h window, 90 min before firing), so the
//! test runs them with every duration divided by [`SCALE`] (1 h becomes
//! 10 s), and Prometheus scrapes and evaluates every second. The
//! expressions, labels and annotations are the shipped ones; the unscaled
//! timing is pinned by `promtool test rules alerts.test.yaml`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use integration::daemon::{http_get, metrics_port};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, StderrLog, wait_until};
use serde_yaml_ng::Value;

const SCALE: u64 = 360;
const ALERT: &str = "CascadeJanitorRemovalErrorsRising";

fn deploy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// A Prometheus duration (`90m`, `1h`, `30s`) divided by [`SCALE`], in ms.
fn scaled(duration: &str) -> Option<String> {
    let split = duration.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = duration.split_at(split);
    let number: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(format!("{}ms", number * ms / SCALE))
}

/// The rules with every `[range]`, `offset` and `for:` duration scaled.
fn scale_rules(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut replaced = 0;
    while let Some(at) = ["[", "offset ", "for: "]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| (i, m.len())))
        .min()
    {
        let (index, len) = at;
        out.push_str(&rest[..index + len]);
        rest = &rest[index + len..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        match scaled(&rest[..end]) {
            Some(duration) => {
                out.push_str(&duration);
                replaced += 1;
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    ensure!(replaced >= 2, "no durations found to scale in alerts.yaml");
    Ok(out)
}

/// `scrape.yaml` pointed at the daemon, every second, with the scaled rules.
fn prometheus_config(dir: &Path, janitor_port: u16) -> Result<()> {
    let rules = std::fs::read_to_string(deploy().join("alerts.yaml"))?;
    std::fs::write(dir.join("alerts.yaml"), scale_rules(&rules)?)?;
    let mut config: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(deploy().join("scrape.yaml"))?)?;
    config["global"] = serde_yaml_ng::from_str("{scrape_interval: 1s, evaluation_interval: 1s}")?;
    let job = &mut config["scrape_configs"][0];
    ensure!(
        job["job_name"].as_str() == Some("cascade-janitor"),
        "scrape.yaml's job is not the one alerts.yaml expects"
    );
    job["scrape_interval"] = Value::from("1s");
    job["scrape_timeout"] = Value::from("1s");
    job["static_configs"][0]["targets"][0] = Value::from(format!("127.0.0.1:{janitor_port}"));
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_yaml_ng::to_string(&config)?,
    )?;
    Ok(())
}

fn api(port: u16, path: &str) -> Result<serde_json::Value> {
    let (status, body) = http_get(port, path)?;
    ensure!(status == 200, "GET {path}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The state of `ALERT` on Prometheus (`pending`, `firing`), if active.
fn alert_state(port: u16) -> Result<Option<(String, serde_json::Value)>> {
    let alerts = api(port, "/api/v1/alerts")?;
    let list = alerts["data"]["alerts"].as_array().context("alerts")?;
    Ok(list
        .iter()
        .find(|a| a["labels"]["alertname"] == ALERT)
        .map(|a| {
            (
                a["state"].as_str().unwrap_or("").to_string(),
                a["labels"].clone(),
            )
        }))
}

async fn wait_for_state(port: u16, limit: Duration, want: Option<&str>) -> Result<()> {
    let what = format!("{ALERT} to be {}", want.unwrap_or("resolved"));
    wait_until(limit, &what, || async {
        alert_state(port)
            .map(|s| s.map(|(state, _)| state).as_deref() == want)
            .unwrap_or(false)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_daemon_and_removal_errors_fire_then_resolve() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("a").ours(),
            ImageSpec::new("b").ours(),
            ImageSpec::new("theirs"),
        ],
    )
    .await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::FailAllRemovals);

    let mut daemon = integration::janitor()
        .args(["run", "--min-age", "0s", "--interval", "1s", "--no-events"])
        .args(["--docker-host", &proxy.host()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let daemon_log = StderrLog::collect(&mut daemon);
    let janitor_port = metrics_port(&daemon_log).await?;

    let dir = tempfile::Builder::new().prefix("prometheus").tempdir()?;
    prometheus_config(dir.path(), janitor_port)?;
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("Debian's prometheus package (.ci/run installs it)")?;
    let prometheus_log = StderrLog::collect(&mut prometheus);
    let listening = "msg=\"Listening on\" address=127.0.0.1:";
    wait_until(Duration::from_secs(30), "Prometheus listening", || async {
        prometheus_log.contains(listening)
    })
    .await?;
    let port: u16 = prometheus_log
        .lines()
        .iter()
        .find_map(|l| {
            l.split(listening)
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .context("Prometheus's port")?;
    let started = Instant::now();

    // The shipped job scrapes the daemon.
    wait_until(
        Duration::from_secs(30),
        "up{job=\"cascade-janitor\"} == 1",
        || async {
            api(
                port,
                "/api/v1/query?query=up%7Bjob%3D%22cascade-janitor%22%7D",
            )
            .map(|v| v["data"]["result"][0]["value"][1] == "1")
            .unwrap_or(false)
        },
    )
    .await?;

    // Removals fail pass after pass: pending, then firing after `for`.
    wait_for_state(port, Duration::from_secs(30), Some("pending")).await?;
    let pending = started.elapsed();
    let Some((_, labels)) = alert_state(port)? else {
        bail!("{ALERT} vanished")
    };
    assert_eq!(labels["engine"], proxy.host().as_str());
    assert_eq!(labels["job"], "cascade-janitor");
    assert_eq!(labels["severity"], "warning");
    wait_for_state(port, Duration::from_secs(60), Some("firing")).await?;
    let firing = started.elapsed();

    // The engine heals: the next pass removes both images, the window
    // empties, the alert resolves.
    proxy.set(Fault::None);
    let lifted = started.elapsed();
    wait_for_state(port, Duration::from_secs(60), None).await?;
    let resolved = started.elapsed();
    let left: Vec<String> = all_image_ids(d)
        .await?
        .iter()
        .map(|id| fixtures::listed_id(id))
        .collect();
    let id = |name: &str| fixtures::listed_id(&loaded[name]);
    assert_eq!(left, vec![id("theirs")], "after the healed passes");
    eprintln!(
        "alert timeline (durations / {SCALE}): pending {:.1} s after Prometheus started, firing {:.1} s, fault lifted {:.1} s, resolved {:.1} s",
        pending.as_secs_f64(),
        firing.as_secs_f64(),
        lifted.as_secs_f64(),
        resolved.as_secs_f64()
    );

    daemon.kill().await?;
    prometheus.kill().await?;
    engine.finish().await
}
