//! The Grafana dashboard and the Prometheus alerts in `deploy/` name only
//! metrics the janitor exports. A renamed family, or a typo in a panel,
//! would otherwise give an empty panel or an alert that can never fire.
//!
//! The exported names come from a real [`Telemetry`] with an engine
//! registered (its `# TYPE` lines and samples); the used names from every
//! PromQL expression in `deploy/grafana/*.json` (panel targets and template
//! queries), `deploy/prometheus/alerts.yaml` (`expr:`) and the series of
//! `alerts.test.yaml` (so the alert tests feed real series).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cascade_cleanup::{ImageRef, SkipReason, Skipped, SweepReport};
use cascade_metrics::Telemetry;

/// Series Prometheus makes itself for every target, not the janitor.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are never a metric name.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
];
/// Aggregators may be followed by `by (...)` before their `(`.
const AGGREGATORS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Keywords followed by a parenthesised list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Every series name the janitor's `/metrics` page can carry.
fn exported() -> BTreeSet<String> {
    exported_series().0
}

/// Series names, and each sample's name with its label keys.
fn exported_series() -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let telemetry = Telemetry::new(Duration::from_secs(3600));
    let observe = telemetry.engine("unix:///var/run/docker.sock", Arc::new(|| true));
    // A family appears on the page with its first series: one pass that
    // moves every family (a skip creates `images_skipped_total`).
    observe(&SweepReport {
        skipped: vec![Skipped {
            image: ImageRef {
                id: "sha256:young".into(),
                size_bytes: 1,
                age_seconds: 1,
            },
            reason: SkipReason::TooYoung,
        }],
        ..SweepReport::default()
    });
    let text = telemetry.render();
    let mut names = BTreeSet::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                panic!("malformed TYPE line: {line}");
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "gauge" => &[""],
                other => panic!("a {other} family: teach this test its series names"),
            };
            names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = line[..end].to_string();
            let keys = labels.entry(name.clone()).or_default();
            if let Some(inner) = line[end..]
                .strip_prefix('{')
                .and_then(|rest| rest.split('}').next())
            {
                keys.extend(label_keys(inner));
            }
            names.insert(name);
        }
    }
    (names, labels)
}

/// The keys of a selector's or a sample's `k="v", k2=~"..."` list.
fn label_keys(inner: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    let chars: Vec<char> = inner.chars().collect();
    let push = |from: usize, to: usize, keys: &mut Vec<String>| {
        let part: String = chars[from..to].iter().collect();
        let key: String = part
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !key.is_empty() {
            keys.push(key);
        }
    };
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if in_quotes => i += 1,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                push(start, i, &mut keys);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(start, chars.len(), &mut keys);
    keys
}

/// The byte offset of the `}` that closes the `{` at the start of `text`,
/// skipping quoted label values.
fn closing_brace(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(at),
            _ => {}
        }
    }
    None
}

/// `(metric, label key)` of every selector `metric{key=...}` in `expr`.
fn selector_labels(expr: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let name: String = rest[..open]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || "_:".contains(*c))
            .collect::<Vec<char>>()
            .into_iter()
            .rev()
            .collect();
        let Some(close) = closing_brace(&rest[open..]) else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        if !name.is_empty() {
            found.extend(label_keys(inner).into_iter().map(|k| (name.clone(), k)));
        }
        rest = &rest[open + close + 1..];
    }
    found
}

/// The metric names a PromQL expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| {
        let mut j = from;
        while j < chars.len() && chars[j] != close {
            // Strings inside selectors may hold the closing character.
            if chars[j] == '"' || chars[j] == '\'' {
                let quote = chars[j];
                j += 1;
                while j < chars.len() && chars[j] != quote {
                    j += usize::from(chars[j] == '\\') + 1;
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '"' || c == '\'' {
            i = skip_to(i + 1, c);
        } else if c == '$' || c.is_ascii_digit() {
            // A Grafana variable, a number or a duration.
            while i + 1 < chars.len()
                && (chars[i + 1].is_alphanumeric() || "_.".contains(chars[i + 1]))
            {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) && called {
                i = skip_to(next + 1, ')');
            } else if !called
                && !KEYWORDS.contains(&word.as_str())
                && !AGGREGATORS.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The value of every `key:` in a YAML file, with `|`/`>` blocks joined.
/// A text scan: the files are ours and use these two forms only.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = Vec::new();
    let prefixes = [format!("{key}:"), format!("- {key}:")];
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = prefixes
            .iter()
            .find_map(|p| trimmed.strip_prefix(p.as_str()))
        else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            values.push(block.join(" "));
        } else {
            values.push(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    values
}

/// Every PromQL expression in a Grafana dashboard: panel targets and
/// template-variable queries (`label_values(metric, label)` reads `metric`).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        ("query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out.into_iter()
        .map(|e| match e.trim().strip_prefix("label_values(") {
            Some(args) => args.split(',').next().unwrap_or_default().to_string(),
            None => e,
        })
        // The data-source variable's query is a plugin type, not PromQL.
        .filter(|e| e != "prometheus")
        .collect()
}

/// `(file, expression, unknown names)` for every expression naming a metric
/// the janitor does not export.
fn unknown(
    exprs: &[(String, String)],
    exported: &BTreeSet<String>,
) -> Vec<(String, String, Vec<String>)> {
    exprs
        .iter()
        .filter_map(|(file, expr)| {
            let missing: Vec<String> = metric_names(expr)
                .into_iter()
                .filter(|n| !exported.contains(n) && !PROMETHEUS_OWN.contains(&n.as_str()))
                .collect();
            (!missing.is_empty()).then(|| (file.clone(), expr.clone(), missing))
        })
        .collect()
}

fn deploy_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let grafana = deploy_dir().join("grafana");
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(&grafana)
        .unwrap_or_else(|e| panic!("{}: {e}", grafana.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    dashboards.sort();
    assert!(
        !dashboards.is_empty(),
        "no dashboard in {}",
        grafana.display()
    );
    for path in dashboards {
        let json: serde_json::Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        for expr in dashboard_exprs(&json) {
            exprs.push((path.display().to_string(), expr));
        }
    }
    let prometheus = deploy_dir().join("prometheus");
    for (file, key) in [("alerts.yaml", "expr"), ("alerts.test.yaml", "series")] {
        let path = prometheus.join(file);
        for expr in yaml_values(&read(&path), key) {
            exprs.push((path.display().to_string(), expr));
        }
    }
    exprs
}

#[test]
fn every_dashboard_and_alert_metric_is_exported() {
    let exported = exported();
    let exprs = deploy_exprs();
    let missing = unknown(&exprs, &exported);
    assert!(
        missing.is_empty(),
        "metrics the janitor does not export (it exports {exported:?}):\n{missing:#?}"
    );
    // Coverage, so a scan that silently found nothing cannot pass.
    let used: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    for family in [
        "cascade_janitor_sweeps_total",
        "cascade_janitor_images_removed_total",
        "cascade_janitor_reclaimed_bytes_total",
        "cascade_janitor_images_skipped_total",
        "cascade_janitor_errors_total",
        "cascade_janitor_sweep_duration_seconds_bucket",
        "cascade_janitor_last_success_timestamp_seconds",
        "cascade_janitor_images_in_scope",
        "cascade_janitor_panics_total",
        "up",
    ] {
        assert!(
            used.contains(family),
            "nothing in deploy/ uses {family}: {used:?}"
        );
    }
    let alert_exprs = exprs
        .iter()
        .filter(|(f, _)| f.ends_with("alerts.yaml"))
        .count();
    assert_eq!(alert_exprs, 6, "one expression per alert");
}

#[test]
fn a_misspelt_or_unexported_metric_is_caught() {
    let exported = exported();
    let exprs = [
        (
            "panel".to_string(),
            r#"sum by (engine) (increase(cascade_janitor_images_remove_total{engine=~"$engine"}[1h]))"#
                .to_string(),
        ),
        (
            "alert".to_string(),
            "time() - cascade_janitor_last_success_timestamp_seconds > 5400 or cascade_janitor_disk_free_bytes < 1"
                .to_string(),
        ),
    ];
    let missing: Vec<Vec<String>> = unknown(&exprs, &exported)
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(
        missing,
        vec![
            vec!["cascade_janitor_images_remove_total".to_string()],
            vec!["cascade_janitor_disk_free_bytes".to_string()],
        ]
    );
}

#[test]
fn the_scanner_reads_metric_names_only() {
    let expr = r#"histogram_quantile(0.9, sum by (engine, le) (increase(a_bucket{engine=~"$engine", x="}b"}[6h])))
        / on (engine) group_left sum without (kind) (b_total offset 1h) > bool 3 and c:recorded unless max(d) by (e)
        or label_replace(f, "dst", "$1", "src", "(.*)") or absent(up{job="j"}) or time() - g[$__rate_interval]"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        ["a_bucket", "b_total", "c:recorded", "d", "f", "g", "up"]
    );
}

#[test]
fn exported_names_follow_the_families() {
    let exported = exported();
    for name in [
        "cascade_janitor_sweeps_total",
        "cascade_janitor_sweep_duration_seconds_bucket",
        "cascade_janitor_sweep_duration_seconds_sum",
        "cascade_janitor_sweep_duration_seconds_count",
        "cascade_janitor_images_in_scope",
        "cascade_janitor_images_skipped_total",
    ] {
        assert!(exported.contains(name), "{name} not in {exported:?}");
    }
    assert!(!exported.contains("cascade_janitor_sweeps"), "{exported:?}");
}

#[test]
fn every_selector_label_is_one_the_metric_carries() {
    let (_, labels) = exported_series();
    let mut wrong = Vec::new();
    for (file, expr) in deploy_exprs() {
        for (metric, key) in selector_labels(&expr) {
            if TARGET_LABELS.contains(&key.as_str()) {
                continue;
            }
            let known = labels.get(&metric).is_some_and(|keys| keys.contains(&key));
            if !known {
                wrong.push(format!("{file}: {metric}{{{key}=...}} in `{expr}`"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "labels the janitor does not set:\n{}",
        wrong.join("\n")
    );
    let keys: Vec<(String, String)> =
        selector_labels(r#"a{engine=~"$engine", kind="x,y}", le!="1"} + b{} + c:d{x=~"a\"b"}"#);
    assert_eq!(
        keys,
        [("a", "engine"), ("a", "kind"), ("a", "le"), ("c:d", "x")]
            .map(|(m, k)| (m.to_string(), k.to_string()))
    );
}
