//! The janitor's removal names (`[ref:removal_name]`) never outlive the
//! next pass: a janitor killed between naming an image and deleting it,
//! and a container created on an image after its check (409), each leave
//! the name on the image; the next pass finishes the image once every rule
//! passes again, and no image keeps the name. On the containerd store
//! nothing is named (removal by `moby-dangling@`), and the same steps leave
//! nothing behind either.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Every tag on the engine that is a removal name.
async fn removal_names(engine: &NestedEngine) -> Result<Vec<String>> {
    let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
        .all(true)
        .build();
    Ok(engine
        .docker
        .list_images(Some(options))
        .await?
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|t| t.contains("cascade-janitor-removing"))
        .collect())
}

async fn prune(host: &str) -> Result<std::process::Output> {
    Ok(integration::janitor()
        .args(["prune", "--min-age", "0s", "--docker-host", host])
        .output()
        .await?)
}

#[tokio::test]
async fn a_janitor_killed_between_naming_and_deleting_is_finished_by_the_next_pass() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("theirs").tagged("theirs:1"),
        ],
    )
    .await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::HoldRemovals);
    let mut child = integration::janitor()
        .args(["prune", "--min-age", "0s", "--docker-host", &proxy.host()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_until(WAIT, "the removal to be held", || async {
        proxy.removals() >= 1
    })
    .await?;
    child.start_kill()?;
    child.wait().await?;
    proxy.set(Fault::None);
    let name = engine.engine.name();
    let strategy = integration::removal_strategy(&engine).await?;
    let named = removal_names(&engine).await?;
    let left = usize::from(strategy.method == cascade_cleanup::RemovalMethod::RemovalName);
    assert_eq!(named.len(), left, "{name}: what the kill left: {named:?}");
    assert!(
        all_image_ids(&engine.docker)
            .await?
            .contains(&loaded["ours"])
    );

    let out = prune(&engine.host()).await?;
    assert!(out.status.success(), "{name}: {out:?}");
    let after = all_image_ids(&engine.docker).await?;
    assert!(!after.contains(&loaded["ours"]), "{name}: finished");
    assert!(after.contains(&loaded["theirs"]), "{name}");
    assert_eq!(
        removal_names(&engine).await?,
        Vec::<String>::new(),
        "{name}"
    );
    drop(proxy);
    engine.finish().await
}

#[tokio::test]
async fn a_container_created_after_the_check_keeps_the_image_until_it_is_gone() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let id = loaded["ours"].clone();
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::HoldRemovals);
    let host = proxy.host();
    let pass = tokio::spawn(async move { prune(&host).await });
    wait_until(WAIT, "the removal to be held", || async {
        proxy.removals() >= 1
    })
    .await?;
    // Checked unused, named; a container appears before the DELETE lands.
    let container = fixtures::create_container(&engine.docker, &id).await?;
    proxy.set(Fault::None);
    let out = pass.await??;
    let name = engine.engine.name();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name}: a 409 is no failure: {out:?}");
    assert!(stdout.contains("in_use"), "{name}: {stdout}");
    assert!(all_image_ids(&engine.docker).await?.contains(&id), "{name}");

    // The next pass while the container is there keeps it too.
    let out = prune(&engine.host()).await?;
    assert!(out.status.success(), "{name}: {out:?}");
    assert!(all_image_ids(&engine.docker).await?.contains(&id), "{name}");

    engine.docker.remove_container(&container, None).await?;
    let out = prune(&engine.host()).await?;
    assert!(out.status.success(), "{name}: {out:?}");
    assert!(
        !all_image_ids(&engine.docker).await?.contains(&id),
        "{name}: finished"
    );
    assert_eq!(
        removal_names(&engine).await?,
        Vec::<String>::new(),
        "{name}"
    );
    drop(proxy);
    engine.finish().await
}
