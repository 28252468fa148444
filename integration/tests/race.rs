//! A removal never takes an image tagged again after the pass listed it,
//! and every request speaks the negotiated API version: proven on the real
//! engine `CASCADE_TEST_ENGINE` names, through the fault proxy, which holds
//! the one request that matters while the test tags the image.
//! `[ref:scope_invariant]`

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cascade_cleanup::{DanglingImageSweep, SweepConfig, SweepReport};
use integration::engine::Store;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, wait_until};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// Starts a one-image sweep through `proxy` under `fault`, waits until the
/// proxy holds the request `held` counts, tags the image, lets the request
/// go and returns the report.
async fn tag_while_held(
    engine: &NestedEngine,
    proxy: &FaultProxy,
    fault: Fault,
    held: impl Fn(&FaultProxy) -> usize,
    id: &str,
) -> Result<SweepReport> {
    proxy.set(fault);
    let janitor = cascade_engine::connect(&proxy.host(), WAIT).await?;
    let sweep = DanglingImageSweep::new(
        Arc::new(janitor),
        SweepConfig {
            min_age: Duration::ZERO,
            ..SweepConfig::default()
        },
    );
    let pass = tokio::spawn(async move { sweep.run(&CancellationToken::new()).await });
    wait_until(WAIT, "the request to be held at the proxy", || async {
        held(proxy) >= 1
    })
    .await?;
    // The race, made deterministic: listed as dangling, tagged now.
    fixtures::tag(&engine.docker, id, "cascade-snapshot-raced", "latest").await?;
    proxy.set(Fault::None);
    pass.await.context("the pass")
}

/// The image's tags as they were given (Podman answers
/// `docker.io/library/<name>` for a short name), or `None` once it is gone.
async fn tags_of(engine: &NestedEngine, id: &str) -> Result<Option<Vec<String>>> {
    match engine.docker.inspect_image(id).await {
        Ok(image) => Ok(Some(
            image
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| fixtures::short_name(t))
                .collect(),
        )),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn an_image_tagged_after_the_listing_survives_with_its_tag() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("raced").ours()]).await?;
    let id = &loaded["raced"];
    let proxy = FaultProxy::start(&engine.socket)?;

    // The first request about the image after the listing is held: on the
    // classic store the re-check inspect, on the containerd store the
    // conditional DELETE by the dangling name.
    let report = tag_while_held(
        &engine,
        &proxy,
        Fault::HoldImageRequests,
        FaultProxy::held,
        id,
    )
    .await?;

    let name = engine.engine.name();
    assert!(report.removed.is_empty(), "{name}: {report:#?}");
    assert!(!report.has_failures(), "{name}: {report:#?}");
    assert_eq!(report.skipped.len(), 1, "{name}: {report:#?}");
    // Podman has no conditional delete either: the janitor re-checks as on
    // the classic store.
    let expected = match engine.engine.store {
        Store::Classic | Store::ContainersStorage => "changed",
        Store::Containerd => "gone",
    };
    assert_eq!(report.skipped[0].reason.as_str(), expected, "{name}");
    assert_eq!(
        tags_of(&engine, id).await?,
        Some(vec!["cascade-snapshot-raced:latest".to_string()]),
        "{name}: the image survives with its tag"
    );
    let deletes: Vec<String> = proxy
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("DELETE "))
        .collect();
    match engine.engine.store {
        Store::Classic | Store::ContainersStorage => {
            assert!(deletes.is_empty(), "{name}: {deletes:?}")
        }
        Store::Containerd => {
            assert_eq!(deletes.len(), 1, "{name}: {deletes:?}");
            assert!(
                deletes[0].ends_with(&format!("/images/moby-dangling@{id}")),
                "{name}: {deletes:?}"
            );
        }
    }
    drop(proxy);
    engine.finish().await
}

/// The one window left on the classic store, pinned: a tag that lands after
/// the re-check answered and before the DELETE arrives is removed with the
/// image (Docker untags and deletes an image with one tag, and so does
/// Podman when asked by ID). On the containerd store the same timing leaves
/// the image and its tag.
#[tokio::test]
async fn the_window_left_is_between_the_recheck_and_the_delete_on_the_classic_store_only()
-> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("raced").ours()]).await?;
    let id = &loaded["raced"];
    let proxy = FaultProxy::start(&engine.socket)?;

    let report = tag_while_held(
        &engine,
        &proxy,
        Fault::HoldRemovals,
        FaultProxy::removals,
        id,
    )
    .await?;

    let name = engine.engine.name();
    match engine.engine.store {
        Store::Classic | Store::ContainersStorage => {
            assert_eq!(report.removed.len(), 1, "{name}: {report:#?}");
            assert_eq!(
                tags_of(&engine, id).await?,
                None,
                "{name}: the known window"
            );
        }
        Store::Containerd => {
            assert!(report.removed.is_empty(), "{name}: {report:#?}");
            assert_eq!(
                tags_of(&engine, id).await?,
                Some(vec!["cascade-snapshot-raced:latest".to_string()]),
                "{name}"
            );
        }
    }
    drop(proxy);
    engine.finish().await
}

/// The API version each engine of the matrix speaks: the lower of its own
/// and bollard 0.21.1's (1.53).
fn expected_api(engine: &NestedEngine) -> &'static str {
    engine.engine.api_version()
}

#[tokio::test]
async fn every_request_of_prune_carries_the_negotiated_api_version() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("theirs").tagged("theirs:1"),
        ],
    )
    .await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    // Async: the proxy runs on this test's runtime.
    let out = integration::janitor()
        .args(["prune", "--min-age", "0s", "--docker-host", &proxy.host()])
        .output()
        .await?;
    let name = engine.engine.name();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths = proxy.paths();
    let prefix = format!("/v{}/", expected_api(&engine));
    // Only the negotiation itself asks unversioned.
    let unversioned: Vec<&String> = paths
        .iter()
        .filter(|p| {
            let path = p.split_once(' ').map_or(p.as_str(), |(_, path)| path);
            !path.starts_with(&prefix)
        })
        .collect();
    assert_eq!(unversioned, ["GET /version"], "{name}: {paths:?}");
    for call in ["GET {p}images/json", "GET {p}info", "DELETE {p}images/"] {
        let call = call.replace("{p}", &prefix);
        assert!(
            paths.iter().any(|p| p.starts_with(&call)),
            "{name}: no `{call}` in {paths:?}"
        );
    }
    drop(proxy);
    engine.finish().await
}
