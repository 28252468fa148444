//! `sentry_report`: the event shape the router's alerts and dashboards read.

use std::sync::Arc;
use std::time::Duration;

use sentry::protocol::Event;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fake::{FakeDocker, ours};

/// The whole Sentry event, as the router's alerts and dashboards read it.
fn sentry_view(event: &Event<'static>) -> serde_json::Value {
    let mut tags: Vec<(&str, &str)> = event
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tags.sort();
    let mut extra: Vec<(&str, &serde_json::Value)> =
        event.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    extra.sort_by_key(|(k, _)| *k);
    serde_json::json!({
        "level": event.level.to_string(),
        "message": event.message,
        "tags": tags,
        "extra": extra,
        "fingerprint": event.fingerprint.iter().map(|f| f.as_ref()).collect::<Vec<&str>>(),
    })
}

#[test]
fn a_removal_failure_is_one_fixed_message_grouped_by_source_and_disposition() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| {
        for id in ["sha256:a", "sha256:b"] {
            s.remove_errors.insert(
                id.into(),
                DockerError::status(500, format!("driver failed on {id}")),
            );
        }
    });
    let (_, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    let mut views: Vec<serde_json::Value> = events.iter().map(sentry_view).collect();
    views.sort_by_key(|v| v["extra"][1][1].to_string());
    let expected = |id: &str| {
        serde_json::json!({
            "level": "warning",
            "message": "dangling image removal failed",
            "tags": [["disposition", "unexpected"], ["source", "dangling_image_remove"]],
            "extra": [["error", format!("driver failed on {id}")], ["imageId", id]],
            "fingerprint": ["dangling_image_remove", "unexpected"],
        })
    };
    assert_eq!(views, vec![expected("sha256:a"), expected("sha256:b")]);
}

#[test]
fn a_scan_failure_is_one_fixed_message_grouped_by_source_and_disposition() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_error = Some(DockerError::status(503, "engine is busy")));
    let (_, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    let views: Vec<serde_json::Value> = events.iter().map(sentry_view).collect();
    assert_eq!(
        views,
        vec![serde_json::json!({
            "level": "error",
            "message": "dangling image cleanup scan failed",
            "tags": [["disposition", "transient"], ["source", "dangling_image_cleanup_scan"]],
            "extra": [["error", "engine is busy"]],
            "fingerprint": ["dangling_image_cleanup_scan", "transient"],
        })]
    );
}
