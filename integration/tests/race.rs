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

/// What the pass reports for the raced image, and the one `DELETE` it
/// sends: by the dangling name on the containerd store (404 once tagged:
/// `gone`), by the removal name elsewhere (the engine takes only that name
/// off: `changed`). `[ref:removal_name]`
fn expected(engine: &NestedEngine, id: &str) -> (&'static str, String) {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    match engine.engine.store {
        Store::Containerd => ("gone", format!("/images/moby-dangling@{id}")),
        _ => (
            "changed",
            format!("/images/localhost/cascade-janitor-removing:{hex}"),
        ),
    }
}

/// Checks one raced pass: nothing removed or failed, the image kept for
/// the store's reason with the test's tag only, one `DELETE` by the store's
/// conditional name.
async fn survived(
    engine: &NestedEngine,
    proxy: &FaultProxy,
    report: &SweepReport,
    id: &str,
) -> Result<()> {
    let name = engine.engine.name();
    let (reason, delete) = expected(engine, id);
    assert!(report.removed.is_empty(), "{name}: {report:#?}");
    assert!(!report.has_failures(), "{name}: {report:#?}");
    assert_eq!(report.skipped.len(), 1, "{name}: {report:#?}");
    assert_eq!(report.skipped[0].reason.as_str(), reason, "{name}");
    assert_eq!(
        tags_of(engine, id).await?,
        Some(vec!["cascade-snapshot-raced:latest".to_string()]),
        "{name}: the image survives with its tag, and without the removal name"
    );
    let deletes: Vec<String> = proxy
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 1, "{name}: {deletes:?}");
    assert!(deletes[0].ends_with(&delete), "{name}: {deletes:?}");
    Ok(())
}

#[tokio::test]
async fn an_image_tagged_after_the_listing_survives_with_its_tag() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("raced").ours()]).await?;
    let id = &loaded["raced"];
    let proxy = FaultProxy::start(&engine.socket)?;

    // The first request about the image after the listing is held: the tag
    // with its removal name, or on the containerd store the conditional
    // DELETE by the dangling name.
    let report = tag_while_held(
        &engine,
        &proxy,
        Fault::HoldImageRequests,
        FaultProxy::held,
        id,
    )
    .await?;

    survived(&engine, &proxy, &report, id).await?;
    drop(proxy);
    engine.finish().await
}

/// No window is left between the janitor's last look and its removal: a
/// tag that lands while the `DELETE` is on its way (held at the proxy) is
/// seen by the engine itself, which then only takes the janitor's name off
/// (removal name) or does not resolve the name at all (containerd's
/// dangling name). Before removal names, the classic store's re-check left
/// this window open and such a tag was removed with the image.
#[tokio::test]
async fn a_tag_while_the_delete_is_on_its_way_survives_on_every_engine() -> Result<()> {
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

    survived(&engine, &proxy, &report, id).await?;
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
    // The negotiation, and the pass's look at which engine this is.
    assert!(
        !unversioned.is_empty() && unversioned.iter().all(|p| *p == "GET /version"),
        "{name}: {paths:?}"
    );
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
