use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cascade_classify::Disposition;
use cascade_cleanup::{Failed, ImageRef, SkipReason, Skipped, SweepReport};

use crate::*;

const E1: &str = "unix:///var/run/docker.sock";
const E2: &str = "tcp://127.0.0.1:2375";
/// The manual clock's wall time at offset zero.
const WALL_BASE: u64 = 1_700_000_000;

/// A clock that moves only when told to.
#[derive(Debug)]
struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }
    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_BASE) + self.offset()
    }
}

/// A liveness probe the test flips.
fn probe(alive: &Arc<AtomicBool>) -> AliveProbe {
    let alive = Arc::clone(alive);
    Arc::new(move || alive.load(Ordering::SeqCst))
}

fn always_alive() -> AliveProbe {
    Arc::new(|| true)
}

fn image(n: u64, size: u64) -> ImageRef {
    ImageRef {
        id: format!("sha256:{n:064x}"),
        size_bytes: size,
        age_seconds: 3600,
    }
}

fn skipped(n: u64, reason: SkipReason) -> Skipped {
    Skipped {
        image: image(n, 1),
        reason,
    }
}

fn failed(n: u64, kind: Disposition) -> Failed {
    Failed {
        image: image(n, 1),
        kind,
        message: "boom".into(),
    }
}

/// Listed 7: removed 2 (100 + 250 bytes), skipped 5.
fn success_report() -> SweepReport {
    SweepReport {
        listed: 7,
        removed: vec![image(1, 100), image(2, 250)],
        skipped: vec![
            skipped(3, SkipReason::TooYoung),
            skipped(4, SkipReason::TooYoung),
            skipped(5, SkipReason::InUse),
            skipped(6, SkipReason::Gone),
            skipped(
                7,
                SkipReason::FailedVerification {
                    detail: "label `cascade.managed` is `True`, not `true`".into(),
                },
            ),
        ],
        reclaimed_bytes: 350,
        duration: Duration::from_millis(1500),
        ..SweepReport::default()
    }
}

/// Listed 4: removed 1 (10 bytes), 2 transient failures, 1 unexpected.
fn partial_report() -> SweepReport {
    SweepReport {
        listed: 4,
        removed: vec![image(1, 10)],
        failed: vec![
            failed(2, Disposition::Transient),
            failed(3, Disposition::Transient),
            failed(4, Disposition::Unexpected),
        ],
        reclaimed_bytes: 10,
        duration: Duration::from_secs(42),
        ..SweepReport::default()
    }
}

fn scan_failed_report() -> SweepReport {
    SweepReport {
        scan_error: Some("listing images: connection refused".into()),
        duration: Duration::from_millis(5),
        ..SweepReport::default()
    }
}

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of an exposition (comments skipped). Panics on a
/// line it does not understand, so a malformed page fails the test.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("numeric value");
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split("\",")
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the one sample with exactly this name and label set; `None`
/// when absent. Panics when two samples match.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} appears twice:\n{text}");
    found.first().copied()
}

fn v(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"))
}

fn telemetry(stale_after: Duration) -> (Arc<Telemetry>, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let t = Telemetry::with_clock(stale_after, Arc::clone(&clock) as Arc<dyn Clock>);
    (t, clock)
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_registered_engine_starts_at_zero() {
    let (t, _) = telemetry(HOUR);
    let _observe = t.engine(E1, always_alive());
    let text = t.render();
    for result in ["success", "partial", "scan_failed"] {
        let labels = [("engine", E1), ("result", result)];
        assert_eq!(v(&text, "cascade_janitor_sweeps_total", &labels), 0.0);
    }
    for kind in ["transient", "unexpected", "scan"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(v(&text, "cascade_janitor_errors_total", &labels), 0.0);
    }
    // Quiet dispositions are skips, never errors.
    for kind in ["in_use", "gone"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(value(&text, "cascade_janitor_errors_total", &labels), None);
    }
    let e = [("engine", E1)];
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 0.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 0.0);
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        0.0
    );
    // No success yet: no made-up 1970 timestamp, no made-up scope size.
    assert_eq!(
        value(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        None
    );
    assert_eq!(value(&text, "cascade_janitor_images_in_scope", &e), None);
}

#[test]
fn a_successful_pass_sets_every_family() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    clock.advance(Duration::from_secs(30));
    observe(&success_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| {
        v(
            &text,
            "cascade_janitor_sweeps_total",
            &[("engine", E1), ("result", r)],
        )
    };
    assert_eq!(sweeps("success"), 1.0);
    assert_eq!(sweeps("partial"), 0.0);
    assert_eq!(sweeps("scan_failed"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 2.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 350.0);
    let skipped = |r| {
        v(
            &text,
            "cascade_janitor_images_skipped_total",
            &[("engine", E1), ("reason", r)],
        )
    };
    assert_eq!(skipped("too_young"), 2.0);
    assert_eq!(skipped("in_use"), 1.0);
    assert_eq!(skipped("gone"), 1.0);
    assert_eq!(skipped("failed_verification"), 1.0);
    assert_eq!(
        value(
            &text,
            "cascade_janitor_images_skipped_total",
            &[("engine", E1), ("reason", "cancelled")]
        ),
        None
    );
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 7.0);
    assert_eq!(
        v(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        (WALL_BASE + 30) as f64
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        1.0
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_sum", &e),
        1.5
    );
    let bucket = |le| {
        v(
            &text,
            "cascade_janitor_sweep_duration_seconds_bucket",
            &[("engine", E1), ("le", le)],
        )
    };
    assert_eq!(bucket("1.0"), 0.0);
    assert_eq!(bucket("2.5"), 1.0);
    assert_eq!(bucket("600.0"), 1.0);
    assert_eq!(bucket("+Inf"), 1.0);
    for kind in ["transient", "unexpected", "scan"] {
        let labels = [("engine", E1), ("kind", kind)];
        assert_eq!(v(&text, "cascade_janitor_errors_total", &labels), 0.0);
    }
}

#[test]
fn a_partial_pass_counts_errors_by_kind_and_is_not_a_success() {
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&partial_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| {
        v(
            &text,
            "cascade_janitor_sweeps_total",
            &[("engine", E1), ("result", r)],
        )
    };
    assert_eq!(sweeps("success"), 0.0);
    assert_eq!(sweeps("partial"), 1.0);
    let errors = |k| {
        v(
            &text,
            "cascade_janitor_errors_total",
            &[("engine", E1), ("kind", k)],
        )
    };
    assert_eq!(errors("transient"), 2.0);
    assert_eq!(errors("unexpected"), 1.0);
    assert_eq!(errors("scan"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 1.0);
    assert_eq!(v(&text, "cascade_janitor_reclaimed_bytes_total", &e), 10.0);
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 4.0);
    assert_eq!(
        value(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        None
    );
    let bucket = |le| {
        v(
            &text,
            "cascade_janitor_sweep_duration_seconds_bucket",
            &[("engine", E1), ("le", le)],
        )
    };
    assert_eq!(bucket("30.0"), 0.0);
    assert_eq!(bucket("60.0"), 1.0);
}

#[test]
fn a_failed_scan_counts_as_a_scan_error_and_keeps_the_last_scope_size() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(Duration::from_secs(600));
    observe(&scan_failed_report());
    let text = t.render();
    let e = [("engine", E1)];
    let sweeps = |r| {
        v(
            &text,
            "cascade_janitor_sweeps_total",
            &[("engine", E1), ("result", r)],
        )
    };
    assert_eq!(sweeps("success"), 1.0);
    assert_eq!(sweeps("scan_failed"), 1.0);
    let errors = |k| {
        v(
            &text,
            "cascade_janitor_errors_total",
            &[("engine", E1), ("kind", k)],
        )
    };
    assert_eq!(errors("scan"), 1.0);
    assert_eq!(errors("transient"), 0.0);
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 7.0);
    // The success's time, not the failed pass's.
    assert_eq!(
        v(&text, "cascade_janitor_last_success_timestamp_seconds", &e),
        WALL_BASE as f64
    );
    assert_eq!(
        v(&text, "cascade_janitor_sweep_duration_seconds_count", &e),
        2.0
    );
}

#[test]
fn passes_accumulate_and_engines_stay_apart() {
    let (t, clock) = telemetry(HOUR);
    let one = t.engine(E1, always_alive());
    let two = t.engine(E2, always_alive());
    one(&success_report());
    clock.advance(Duration::from_secs(60));
    one(&success_report());
    two(&partial_report());
    let text = t.render();
    let removed = |e| {
        v(
            &text,
            "cascade_janitor_images_removed_total",
            &[("engine", e)],
        )
    };
    assert_eq!(removed(E1), 4.0);
    assert_eq!(removed(E2), 1.0);
    let reclaimed = |e| {
        v(
            &text,
            "cascade_janitor_reclaimed_bytes_total",
            &[("engine", e)],
        )
    };
    assert_eq!(reclaimed(E1), 700.0);
    assert_eq!(reclaimed(E2), 10.0);
    let too_young = v(
        &text,
        "cascade_janitor_images_skipped_total",
        &[("engine", E1), ("reason", "too_young")],
    );
    assert_eq!(too_young, 4.0);
    assert_eq!(
        v(
            &text,
            "cascade_janitor_last_success_timestamp_seconds",
            &[("engine", E1)]
        ),
        (WALL_BASE + 60) as f64
    );
    assert_eq!(
        value(
            &text,
            "cascade_janitor_last_success_timestamp_seconds",
            &[("engine", E2)]
        ),
        None
    );
    let errors = |e| {
        v(
            &text,
            "cascade_janitor_errors_total",
            &[("engine", e), ("kind", "transient")],
        )
    };
    assert_eq!(errors(E1), 0.0);
    assert_eq!(errors(E2), 2.0);
}

#[test]
fn every_family_has_help_and_type() {
    let (t, _) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    let text = t.render();
    let families = [
        ("sweeps", "counter"),
        ("images_removed", "counter"),
        ("reclaimed_bytes", "counter"),
        ("images_skipped", "counter"),
        ("errors", "counter"),
        ("sweep_duration_seconds", "histogram"),
        ("last_success_timestamp_seconds", "gauge"),
        ("images_in_scope", "gauge"),
    ];
    for (family, kind) in families {
        let name = format!("cascade_janitor_{family}");
        assert!(
            text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
            "no TYPE line for {name}:\n{text}"
        );
        let help = format!("# HELP {name} ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len() + 10),
            "no HELP text for {name}:\n{text}"
        );
    }
    // Every sample belongs to one of these families and carries `engine`.
    for s in samples(&text) {
        assert!(s.name.starts_with("cascade_janitor_"), "{}", s.name);
        assert_eq!(s.labels.get("engine").map(String::as_str), Some(E1));
    }
    assert_eq!(text.lines().last(), Some("# EOF"));
}

// ---- health ----

#[test]
fn no_engine_is_unhealthy() {
    let (t, _) = telemetry(HOUR);
    let h = t.health();
    assert!(!h.healthy);
    assert!(h.engines.is_empty());
}

#[test]
fn healthy_until_stale_after_without_a_pass() {
    let (t, clock) = telemetry(HOUR);
    let _observe = t.engine(E1, always_alive());
    assert!(t.health().healthy);
    clock.advance(HOUR);
    let h = t.health();
    assert!(h.healthy, "exactly stale_after is still fresh: {h:?}");
    assert_eq!(h.engines[0].seconds_since_last_pass, None);
    clock.advance(Duration::from_secs(1));
    let h = t.health();
    assert!(!h.healthy);
    assert!(!h.engines[0].healthy);
    assert!(h.engines[0].alive);
    let problem = h.engines[0].problem.as_deref().unwrap_or_default();
    assert!(
        problem.contains("since registration 3601 s ago"),
        "{problem}"
    );
}

#[test]
fn a_pass_of_any_result_keeps_the_loop_fresh() {
    let (t, clock) = telemetry(HOUR);
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(HOUR);
    assert!(t.health().healthy);
    clock.advance(Duration::from_secs(1));
    assert!(!t.health().healthy);
    // A failed scan still proves the loop runs.
    observe(&scan_failed_report());
    let h = t.health();
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.engines[0].seconds_since_last_pass, Some(0));
    assert_eq!(h.engines[0].seconds_since_last_success, Some(3601));
    clock.advance(Duration::from_secs(10));
    observe(&partial_report());
    let h = t.health();
    assert_eq!(h.engines[0].seconds_since_last_pass, Some(0));
    assert_eq!(h.engines[0].seconds_since_last_success, Some(3611));
}

#[test]
fn a_dead_loop_is_unhealthy_at_once_and_spoils_the_whole_process() {
    let (t, _) = telemetry(HOUR);
    let alive = Arc::new(AtomicBool::new(true));
    let one = t.engine(E1, always_alive());
    let two = t.engine(E2, probe(&alive));
    one(&success_report());
    two(&success_report());
    assert!(t.health().healthy);
    alive.store(false, Ordering::SeqCst);
    let h = t.health();
    assert!(!h.healthy);
    assert!(h.engines[0].healthy);
    assert_eq!(h.engines[1].engine, E2);
    assert!(!h.engines[1].alive);
    assert!(!h.engines[1].healthy);
    assert_eq!(
        h.engines[1].problem.as_deref(),
        Some("the sweep loop is not running")
    );
    alive.store(true, Ordering::SeqCst);
    assert!(t.health().healthy);
}

#[test]
fn health_json_shape() {
    let (t, clock) = telemetry(Duration::from_secs(5400));
    let observe = t.engine(E1, always_alive());
    observe(&success_report());
    clock.advance(Duration::from_secs(12));
    let json = serde_json::to_value(t.health()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "healthy": true,
            "stale_after_seconds": 5400,
            "engines": [{
                "engine": E1,
                "healthy": true,
                "alive": true,
                "seconds_since_last_pass": 12,
                "seconds_since_last_success": 12,
            }],
        })
    );
}

// ---- --metrics-addr ----

#[test]
fn metrics_addr_parses_ip_and_port_only() {
    assert_eq!(
        parse_metrics_addr("127.0.0.1:9464").unwrap(),
        "127.0.0.1:9464".parse().unwrap()
    );
    assert_eq!(
        parse_metrics_addr("[::1]:9464").unwrap(),
        "[::1]:9464".parse().unwrap()
    );
    for bad in ["localhost:9464", "9464", "127.0.0.1", "127.0.0.1:99999", ""] {
        let err = parse_metrics_addr(bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "--metrics-addr {bad}: not an IP:PORT address; write e.g. 127.0.0.1:9464"
            )),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}

#[tokio::test]
async fn a_port_in_use_names_the_flag_and_the_fix() {
    let held = bind_metrics_addr(parse_metrics_addr("127.0.0.1:0").unwrap())
        .await
        .unwrap();
    let addr = held.local_addr().unwrap();
    let err = bind_metrics_addr(addr).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("--metrics-addr {addr}: cannot bind: ")),
        "{err}"
    );
    assert!(
        err.ends_with("choose a free port and an address of this host, e.g. 127.0.0.1:9464"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

// ---- the server, over loopback ----

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// One GET on a fresh HTTP/1 connection; the connection ends with the call.
async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    conn.await.unwrap().unwrap();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_and_healthz_until_cancelled() {
    let (t, clock) = telemetry(HOUR);
    let alive = Arc::new(AtomicBool::new(true));
    let observe = t.engine(E1, probe(&alive));
    observe(&success_report());

    let listener = bind_metrics_addr(parse_metrics_addr("127.0.0.1:0").unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(listener, Arc::clone(&t), shutdown.clone()));

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.content_type, OPENMETRICS_CONTENT_TYPE);
    assert_eq!(metrics.body, t.render());
    assert_eq!(
        v(
            &metrics.body,
            "cascade_janitor_images_removed_total",
            &[("engine", E1)]
        ),
        2.0
    );

    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["engines"][0]["engine"], E1);

    clock.advance(HOUR + Duration::from_secs(1));
    let stale = get(addr, "/healthz").await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    let json: serde_json::Value = serde_json::from_str(&stale.body).unwrap();
    assert_eq!(json["engines"][0]["seconds_since_last_pass"], 3601);

    observe(&success_report());
    assert_eq!(get(addr, "/healthz").await.status, 200);
    alive.store(false, Ordering::SeqCst);
    let dead = get(addr, "/healthz").await;
    assert_eq!(dead.status, 503, "{}", dead.body);
    assert_eq!(json_alive(&dead.body), Some(false));

    assert_eq!(get(addr, "/").await.status, 404);

    shutdown.cancel();
    // A watchdog, not a timing assertion: a server that ignores the token
    // fails here instead of hanging the suite.
    let ended = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("serve returns after the token is cancelled");
    ended.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

fn json_alive(body: &str) -> Option<bool> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["engines"][0]["alive"].as_bool()
}

// ---- wired to a real loop, the way the binary does it ----

/// An engine holding one old, labelled, dangling image that any removal
/// succeeds on.
#[derive(Debug)]
struct OneImageEngine;

#[async_trait::async_trait]
impl cascade_cleanup::DockerImages for OneImageEngine {
    async fn list_images(
        &self,
        _filters: &std::collections::HashMap<String, Vec<String>>,
    ) -> Result<Vec<cascade_cleanup::ListedImage>, cascade_cleanup::DockerError> {
        Ok(vec![cascade_cleanup::ListedImage {
            id: "sha256:aaaa".into(),
            created: 0,
            size: 4096,
            labels: [("cascade.managed".to_owned(), "true".to_owned())].into(),
            repo_tags: vec!["<none>:<none>".into()],
            parent_id: String::new(),
        }])
    }
    async fn images_used_by_containers(
        &self,
    ) -> Result<std::collections::HashSet<String>, cascade_cleanup::DockerError> {
        Ok(Default::default())
    }
    async fn inspect_image(
        &self,
        _id: &str,
    ) -> Result<Option<cascade_cleanup::ListedImage>, cascade_cleanup::DockerError> {
        let listed = self.list_images(&Default::default()).await?;
        Ok(listed.into_iter().next())
    }
    async fn image_store(
        &self,
    ) -> Result<cascade_cleanup::ImageStore, cascade_cleanup::DockerError> {
        Ok(cascade_cleanup::ImageStore::Classic {
            driver: "vfs".into(),
        })
    }
    async fn remove_image(&self, _id: &str) -> Result<(), cascade_cleanup::DockerError> {
        Ok(())
    }
}

#[tokio::test]
async fn wired_to_a_cleanup_loop_through_new_cyclic() {
    use cascade_cleanup::{DanglingImageCleanup, DanglingImageSweep, SweepConfig};
    use std::sync::Weak;

    let (t, _) = telemetry(HOUR);
    let (passed, mut pass_ended) = tokio::sync::mpsc::unbounded_channel();
    // The probe needs the cleanup and the cleanup needs the observer:
    // `Arc::new_cyclic` ties the knot with a Weak, so no reference cycle.
    let cleanup = Arc::new_cyclic(|me: &Weak<DanglingImageCleanup>| {
        let me = me.clone();
        let observe = t.engine(
            E1,
            Arc::new(move || me.upgrade().is_some_and(|c| c.is_running())),
        );
        let observe: cascade_cleanup::ReportObserver = Arc::new(move |report: &SweepReport| {
            observe(report);
            let _ = passed.send(());
        });
        DanglingImageCleanup::new(
            DanglingImageSweep::new(Arc::new(OneImageEngine), SweepConfig::default()),
            HOUR,
            Duration::from_secs(5),
        )
        .with_observer(observe)
    });

    let h = t.health();
    assert!(!h.healthy, "not started yet: {h:?}");
    assert!(!h.engines[0].alive);

    assert!(cleanup.start());
    pass_ended
        .recv()
        .await
        .expect("the first pass runs at start");
    let h = t.health();
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.engines[0].seconds_since_last_success, Some(0));
    let text = t.render();
    let e = [("engine", E1)];
    assert_eq!(v(&text, "cascade_janitor_images_removed_total", &e), 1.0);
    assert_eq!(
        v(&text, "cascade_janitor_reclaimed_bytes_total", &e),
        4096.0
    );
    assert_eq!(v(&text, "cascade_janitor_images_in_scope", &e), 1.0);

    cleanup.stop().await;
    let h = t.health();
    assert!(!h.healthy);
    assert_eq!(
        h.engines[0].problem.as_deref(),
        Some("the sweep loop is not running")
    );
    drop(cleanup);
    assert!(!t.health().engines[0].alive, "a dropped loop reads as dead");
}
