//! What the janitor relies on from the engine, asked of each engine of the
//! matrix directly through its API, not through the janitor: the answers a
//! row of the proven-engine table assumes (`[ref:proven_engines]`). If an
//! engine starts answering differently, a test here fails and the row must
//! be looked at again, before the janitor removes anything on it.
//!
//! - the engine names itself (`/version` `Components`), and the row that
//!   admits it names this matrix engine as its proof;
//! - `force=false`: a used image is refused with 409; a missing one is 404;
//! - a `DELETE` by a name of an image with another name only untags it (the
//!   removal name's whole point, `[ref:removal_name]`);
//! - `noprune=true` keeps an unnamed, unlabelled parent, except on Podman
//!   before 4.6, which deletes it anyway (the row's `prunes_parents`);
//! - two `label` filters are ANDed, except on Podman 4.3, where they match
//!   nothing (the row's `one_label_filter`);
//! - an untagged image lists as untagged, however the engine spells it.

use std::collections::HashMap;

use anyhow::Result;
use bollard::query_parameters::RemoveImageOptionsBuilder;
use cascade_cleanup::{Admission, DockerImages, ImageStore, Implementation};
use cascade_engine::EngineConnection;
use integration::NestedEngine;
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};

/// The engine through the janitor's own client.
fn janitor_view(engine: &NestedEngine) -> EngineConnection {
    EngineConnection::new(engine.docker.clone())
}

/// `DELETE /images/{name}?force=false&noprune=true`, as the janitor sends it.
async fn delete(engine: &NestedEngine, name: &str) -> Result<(), (u16, String)> {
    let options = RemoveImageOptionsBuilder::new()
        .force(false)
        .noprune(true)
        .build();
    match engine.docker.remove_image(name, Some(options), None).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) => Err((status_code, message)),
        Err(e) => Err((0, e.to_string())),
    }
}

async fn identity(engine: &NestedEngine) -> Result<cascade_cleanup::EngineIdentity> {
    Ok(janitor_view(engine).engine_facts().await?.identity)
}

/// Podman before 4.6 ignores `noprune`; 4.3 also joins two label filters.
async fn is_podman_4(engine: &NestedEngine) -> Result<bool> {
    let identity = identity(engine).await?;
    Ok(identity.implementation == Implementation::Podman
        && identity.release().is_some_and(|r| r.major == 4))
}

#[tokio::test]
async fn the_engine_is_admitted_by_the_row_that_names_it_as_its_proof() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let identity = identity(&engine).await?;
    let name = engine.engine.name();
    match Admission::of(&identity, false) {
        Admission::Proven(row) => assert!(
            row.proven_by.contains(&name),
            "{name} ({}) is admitted by `{}`, which does not name it",
            identity.describe(),
            row.describe()
        ),
        other => panic!(
            "{name} ({}) is not admitted: {other:?}",
            identity.describe()
        ),
    }
    engine.finish().await
}

#[tokio::test]
async fn a_used_image_is_refused_with_409_and_a_missing_one_is_404() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("used").ours()]).await?;
    let id = &loaded["used"];
    fixtures::create_container(&engine.docker, id).await?;
    let name = engine.engine.name();
    let refused = delete(&engine, id).await.expect_err("in use");
    assert_eq!(refused.0, 409, "{name}: {refused:?}");
    assert!(all_image_ids(&engine.docker).await?.contains(id), "{name}");
    let missing = format!("sha256:{}", "0".repeat(64));
    let gone = delete(&engine, &missing).await.expect_err("missing");
    assert_eq!(gone.0, 404, "{name}: {gone:?}");
    engine.finish().await
}

#[tokio::test]
async fn a_delete_by_a_name_of_an_image_with_another_name_only_untags_it() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("named").ours()]).await?;
    let id = &loaded["named"];
    fixtures::tag(
        &engine.docker,
        id,
        "localhost/cascade-janitor-removing",
        "x",
    )
    .await?;
    fixtures::tag(&engine.docker, id, "cascade-snapshot-p-w", "latest").await?;
    let name = engine.engine.name();
    delete(&engine, "localhost/cascade-janitor-removing:x")
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    let tags = engine
        .docker
        .inspect_image(id)
        .await?
        .repo_tags
        .unwrap_or_default();
    let tags: Vec<String> = tags.iter().map(|t| fixtures::short_name(t)).collect();
    assert_eq!(
        tags,
        ["cascade-snapshot-p-w:latest"],
        "{name}: kept, untagged once"
    );
    // With that name its only one, the same DELETE removes it.
    fixtures::tag(
        &engine.docker,
        id,
        "localhost/cascade-janitor-removing",
        "y",
    )
    .await?;
    fixtures::tag(
        &engine.docker,
        &loaded_other(&engine).await?,
        "cascade-snapshot-p-w",
        "latest",
    )
    .await?;
    delete(&engine, "localhost/cascade-janitor-removing:y")
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    assert!(!all_image_ids(&engine.docker).await?.contains(id), "{name}");
    engine.finish().await
}

/// Another image to move a tag onto.
async fn loaded_other(engine: &NestedEngine) -> Result<String> {
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("other")]).await?;
    Ok(loaded["other"].clone())
}

#[tokio::test]
async fn noprune_keeps_an_unnamed_parent_except_on_podman_4() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    // An unlabelled base, a labelled snapshot committed on it, then both
    // tags moved elsewhere: the base is the snapshot's unnamed parent.
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("base").tagged("base:1"),
            ImageSpec::new("elsewhere"),
        ],
    )
    .await?;
    let worker = fixtures::create_container(d, "base:1").await?;
    let snapshot =
        fixtures::commit(d, &worker, "snap", "1", &[("cascade.managed", "true")]).await?;
    engine.docker.remove_container(&worker, None).await?;
    fixtures::tag(d, &loaded["elsewhere"], "base", "1").await?;
    fixtures::tag(d, &loaded["elsewhere"], "snap", "1").await?;
    let snapshot = if snapshot.starts_with("sha256:") {
        snapshot
    } else {
        // Podman answers a commit with the bare ID.
        format!("sha256:{snapshot}")
    };
    let name = engine.engine.name();
    delete(&engine, &snapshot)
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    let after = all_image_ids(d).await?;
    assert!(!after.contains(&snapshot), "{name}");
    let base_kept = after.contains(&loaded["base"]);
    if is_podman_4(&engine).await? {
        assert!(
            !base_kept,
            "{name}: Podman 4 ignores noprune; if this changed, revisit its row's prunes_parents"
        );
    } else {
        assert!(base_kept, "{name}: noprune=true keeps the parent");
    }
    engine.finish().await
}

#[tokio::test]
async fn two_label_filters_are_anded_except_on_podman_4() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("both").ours().label("project", "x"),
            ImageSpec::new("managed-only").ours(),
            ImageSpec::new("project-only").label("project", "x"),
        ],
    )
    .await?;
    let filters = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec!["cascade.managed=true".to_string(), "project=x".to_string()],
        ),
    ]);
    let listed: Vec<String> = janitor_view(&engine)
        .list_images(&filters)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let name = engine.engine.name();
    if is_podman_4(&engine).await? {
        assert!(
            listed.is_empty(),
            "{name}: Podman 4.3 joins the two into one filter that matches nothing: {listed:?}"
        );
    } else {
        assert_eq!(listed, [loaded["both"].clone()], "{name}");
    }
    engine.finish().await
}

#[tokio::test]
async fn an_untagged_image_lists_as_untagged() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("untagged").ours(),
            ImageSpec::new("tagged").ours().tagged("snap:2"),
        ],
    )
    .await?;
    let listed = janitor_view(&engine)
        .list_images(&HashMap::from([(
            "label".to_string(),
            vec!["cascade.managed=true".to_string()],
        )]))
        .await?;
    let name = engine.engine.name();
    assert_eq!(listed.len(), 2, "{name}: {listed:?}");
    for image in listed {
        let untagged = cascade_scope::is_untagged(&image.id, &image.repo_tags);
        let expected = image.id == loaded["untagged"];
        assert_eq!(untagged, expected, "{name}: {image:?}");
        assert_eq!(
            image.labels.get("cascade.managed").map(String::as_str),
            Some("true")
        );
    }
    engine.finish().await
}

/// Docker's classic store refuses to delete an image other images are built
/// on; its containerd store and Podman delete it anyway (the child keeps
/// its content). The janitor's candidates have no children when listed
/// (the engine's `dangling` excludes them); this pins what each engine does
/// if one gained a child between the listing and the `DELETE` (README,
/// the engines' known limits).
#[tokio::test]
async fn an_image_with_a_child_is_refused_only_by_the_classic_store() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(d, &[ImageSpec::new("parent").ours().tagged("parent:1")]).await?;
    let parent = loaded["parent"].clone();
    let worker = fixtures::create_container(d, "parent:1").await?;
    let child = fixtures::commit(d, &worker, "child", "1", &[("cascade.managed", "true")]).await?;
    d.remove_container(&worker, None).await?;
    fixtures::tag(d, &loaded_other(&engine).await?, "parent", "1").await?;
    let name = engine.engine.name();
    let answer = delete(&engine, &parent).await;
    let after = all_image_ids(d).await?;
    assert!(after.contains(&child), "{name}: the child stays either way");
    if let ImageStore::Classic { .. } = identity(&engine).await?.store {
        assert_eq!(answer.map_err(|(status, _)| status), Err(409), "{name}");
        assert!(
            after.contains(&parent),
            "{name}: the classic store keeps it"
        );
    } else {
        assert_eq!(answer, Ok(()), "{name}");
        assert!(!after.contains(&parent), "{name}: deleted");
    }
    engine.finish().await
}
