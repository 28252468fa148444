//! The scope, proven on a real engine: each test starts a nested engine,
//! builds its fixtures there, sweeps, and asserts the exact set of image IDs
//! that survive, the report and the Sentry events. `[ref:scope_invariant]`

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bollard::Docker;
use cascade_cleanup::{
    DanglingImageSweep, DockerError, DockerImages, ListedImage, SweepConfig, SweepReport,
};
use cascade_engine::EngineConnection;
use cascade_scope::{Label, Scope};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::{NestedEngine, capture_sentry};
use tokio_util::sync::CancellationToken;

fn config(min_age: Duration) -> SweepConfig {
    SweepConfig {
        min_age,
        ..SweepConfig::default()
    }
}

/// One pass through the janitor's own connection (`cascade_engine::connect`),
/// so the listing is the one the binary decodes (cascade-engine's `list.rs`),
/// on every engine of the matrix.
async fn sweep(
    engine: &NestedEngine,
    config: SweepConfig,
) -> (SweepReport, Vec<sentry::protocol::Event<'static>>) {
    let connected = cascade_engine::connect(&engine.host(), Duration::from_secs(30))
        .await
        .expect("the nested engine answers");
    let sweep = DanglingImageSweep::new(Arc::new(connected), config);
    capture_sentry(async { sweep.run(&CancellationToken::new()).await }).await
}

fn removed(report: &SweepReport) -> BTreeSet<String> {
    report.removed.iter().map(|i| i.id.clone()).collect()
}

fn ids<'a>(
    map: &BTreeMap<String, String>,
    names: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<String> {
    names.into_iter().map(|n| map[n].clone()).collect()
}

/// The unrelated workloads and label look-alikes an operator's host carries.
fn bystanders() -> Vec<ImageSpec> {
    vec![
        ImageSpec::new("mysql").tagged("mysql:8.0"),
        ImageSpec::new("loki").tagged("grafana/loki:2.9.4"),
        ImageSpec::new("ucho-dev").tagged("ucho-dev:latest"),
        ImageSpec::new("ucho-prod").tagged("ucho-prod:latest"),
        ImageSpec::new("dangling-unlabelled-1"),
        ImageSpec::new("dangling-unlabelled-2").label("maintainer", "someone"),
        ImageSpec::new("value-false").label("cascade.managed", "false"),
        ImageSpec::new("value-upper").label("cascade.managed", "TRUE"),
        ImageSpec::new("value-space").label("cascade.managed", "true "),
        ImageSpec::new("value-empty").label("cascade.managed", ""),
        ImageSpec::new("key-casing").label("Cascade.Managed", "true"),
        ImageSpec::new("key-extended").label("cascade.managed.extra", "true"),
        ImageSpec::new("key-prefixed").label("x.cascade.managed", "true"),
        ImageSpec::new("key-contained").label("cascade", "managed=true"),
        ImageSpec::new("ours-tagged")
            .ours()
            .tagged("cascade-snapshot-proj-item:latest"),
    ]
}

#[tokio::test]
async fn only_labelled_dangling_images_are_removed() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let mut specs = bystanders();
    specs.push(ImageSpec::new("ours-1").ours());
    specs.push(ImageSpec::new("ours-2").ours().label("project", "alpha"));
    let loaded = fixtures::load(&engine.docker, &specs).await?;
    let before = all_image_ids(&engine.docker).await?;
    assert_eq!(
        before.len(),
        specs.len(),
        "every fixture is a distinct image"
    );

    let (report, events) = sweep(&engine, config(Duration::from_secs(60))).await;

    let expected = ids(&loaded, ["ours-1", "ours-2"]);
    assert_eq!(removed(&report), expected, "{report:#?}");
    let after = all_image_ids(&engine.docker).await?;
    assert_eq!(
        after,
        before.difference(&expected).cloned().collect(),
        "exactly the bystanders survive"
    );
    assert_eq!(report.listed, 2);
    assert!(
        report.skipped.is_empty() && report.failed.is_empty(),
        "{report:#?}"
    );
    assert!(events.is_empty(), "{events:?}");
    engine.finish().await
}

#[tokio::test]
async fn ours_but_not_garbage_is_kept() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new("held").ours(),
            ImageSpec::new("young").ours().age(Duration::from_secs(5)),
            ImageSpec::new("parent").ours().tagged("parent:1"),
            ImageSpec::new("garbage").ours(),
        ],
    )
    .await?;
    fixtures::create_container(d, &loaded["held"]).await?;
    // A labelled image with a child: commit a container of it, then move its
    // tag to another image.
    let base_user = fixtures::create_container(d, "parent:1").await?;
    let child = fixtures::commit(d, &base_user, "child", "1", &[]).await?;
    d.remove_container(
        &base_user,
        None::<bollard::query_parameters::RemoveContainerOptions>,
    )
    .await?;
    fixtures::move_tag_away(d, "parent:1").await?;
    let before = all_image_ids(d).await?;
    assert!(before.contains(&loaded["parent"]) && before.contains(&child));

    let (report, events) = sweep(&engine, config(Duration::from_secs(600))).await;

    assert_eq!(removed(&report), ids(&loaded, ["garbage"]), "{report:#?}");
    let after = all_image_ids(d).await?;
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|id| **id != loaded["garbage"])
        .cloned()
        .collect();
    assert_eq!(after, expected);
    let reasons: BTreeMap<String, &str> = report
        .skipped
        .iter()
        .map(|s| (s.image.id.clone(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.get(&loaded["held"]), Some(&"in_use"));
    assert_eq!(reasons.get(&loaded["young"]), Some(&"too_young"));
    assert!(
        !reasons.contains_key(&loaded["parent"]),
        "an image with children is not even listed"
    );
    assert!(events.is_empty(), "in use is never reported: {events:?}");

    // The engine itself refuses the held image with 409, classified as in use.
    let refused = DockerImages::remove_image(&EngineConnection::new(d.clone()), &loaded["held"])
        .await
        .expect_err("held");
    assert_eq!(refused.status, Some(409));
    assert_eq!(refused.disposition, cascade_classify::Disposition::InUse);
    engine.finish().await
}

/// An unlabelled image that became the untagged parent of a labelled dangling
/// image: returns (parent, labelled child).
async fn implied_deletion_trap(d: &Docker, n: u32) -> Result<(String, String)> {
    let (base, mover) = (format!("base-{n}"), format!("mover-{n}"));
    let loaded = fixtures::load(
        d,
        &[
            ImageSpec::new(&base).tagged(&format!("{base}:1")),
            ImageSpec::new(&mover),
        ],
    )
    .await?;
    let container = fixtures::create_container(d, &format!("{base}:1")).await?;
    let snapshot = format!("cascade-snapshot-trap-{n}");
    let child = fixtures::commit(
        d,
        &container,
        &snapshot,
        "latest",
        &[("cascade.managed", "true")],
    )
    .await?;
    d.remove_container(
        &container,
        None::<bollard::query_parameters::RemoveContainerOptions>,
    )
    .await?;
    fixtures::move_tag_away(d, &format!("{base}:1")).await?; // the parent loses its tag, keeps its child
    fixtures::tag(d, &loaded[&mover], &snapshot, "latest").await?; // the child is now dangling
    Ok((loaded[&base].clone(), child))
}

#[tokio::test]
async fn the_implied_deletion_trap_removes_only_the_labelled_image() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let (parent, child) = implied_deletion_trap(d, 1).await?;
    let before = all_image_ids(d).await?;

    let (report, events) = sweep(&engine, config(Duration::ZERO)).await;

    let after = all_image_ids(d).await?;
    assert!(after.contains(&parent), "the unlabelled parent survives");
    if integration::removal_strategy(&engine).await?.prunes_parents {
        // Podman 4.3 would delete the parent with the child whatever
        // `noprune` says: the child is kept for it.
        assert!(removed(&report).is_empty(), "{report:#?}");
        let reasons: Vec<(&str, &str)> = report
            .skipped
            .iter()
            .map(|s| (s.image.id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [(child.as_str(), "would_remove_parent")],
            "{report:#?}"
        );
        assert_eq!(after, before);
    } else {
        assert_eq!(
            removed(&report),
            BTreeSet::from([child.clone()]),
            "{report:#?}"
        );
        assert_eq!(
            after,
            before.iter().filter(|id| **id != child).cloned().collect()
        );
    }
    assert!(events.is_empty());

    // The trap is real: the engine's default (noprune=false) takes the parent too.
    let (parent2, child2) = implied_deletion_trap(d, 2).await?;
    d.remove_image(
        &child2,
        None::<bollard::query_parameters::RemoveImageOptions>,
        None,
    )
    .await?;
    assert!(
        !all_image_ids(d).await?.contains(&parent2),
        "rmi without noprune deletes the parent"
    );
    engine.finish().await
}

#[tokio::test]
async fn the_production_leak_is_swept() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let mut specs = bystanders();
    specs.push(ImageSpec::new("router-base").tagged("router-base:1"));
    fixtures::load(d, &specs).await?;
    let worker = fixtures::create_container(d, "router-base:1").await?;
    let tag = "cascade-snapshot-proj-item7";
    let first = fixtures::commit(d, &worker, tag, "latest", &[("cascade.managed", "true")]).await?;
    let second =
        fixtures::commit(d, &worker, tag, "latest", &[("cascade.managed", "true")]).await?;
    assert_ne!(first, second);
    let before = all_image_ids(d).await?;

    let (report, events) = sweep(&engine, config(Duration::ZERO)).await;

    assert_eq!(
        removed(&report),
        BTreeSet::from([first.clone()]),
        "{report:#?}"
    );
    assert_eq!(
        all_image_ids(d).await?,
        before.iter().filter(|id| **id != first).cloned().collect()
    );
    assert!(events.is_empty());
    engine.finish().await
}

/// Removes the image through the real engine just before the sweep does, as
/// another operator racing the janitor would.
struct Racer {
    inner: EngineConnection,
}

#[async_trait]
impl DockerImages for Racer {
    async fn engine_facts(&self) -> Result<cascade_cleanup::EngineFacts, DockerError> {
        self.inner.engine_facts().await
    }
    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.inner.list_all_images().await
    }
    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        self.inner.tag_image(id, repository, tag).await
    }
    async fn list_images(
        &self,
        filters: &std::collections::HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        DockerImages::list_images(&self.inner, filters).await
    }
    async fn images_used_by_containers(
        &self,
    ) -> Result<std::collections::HashSet<String>, DockerError> {
        self.inner.images_used_by_containers().await
    }
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        DockerImages::inspect_image(&self.inner, id).await
    }
    async fn remove_image(
        &self,
        name: &str,
    ) -> Result<cascade_cleanup::RemovalAnswer, DockerError> {
        DockerImages::remove_image(&self.inner, name).await?;
        DockerImages::remove_image(&self.inner, name).await
    }
}

#[tokio::test]
async fn an_image_removed_by_someone_else_is_gone_not_reported() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(&engine.docker, &[ImageSpec::new("raced").ours()]).await?;
    let sweep = DanglingImageSweep::new(
        Arc::new(Racer {
            inner: EngineConnection::new(engine.docker.clone()),
        }),
        config(Duration::ZERO),
    );
    let (report, events) =
        capture_sentry(async { sweep.run(&CancellationToken::new()).await }).await;
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(report.skipped[0].image.id, loaded["raced"]);
    assert_eq!(report.skipped[0].reason.as_str(), "gone");
    assert!(report.failed.is_empty() && !report.has_failures());
    assert!(events.is_empty(), "{events:?}");
    engine.finish().await
}

#[tokio::test]
async fn with_two_labels_an_image_with_one_is_kept() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("managed-only").ours(),
            ImageSpec::new("project-only").label("project", "alpha"),
            ImageSpec::new("both").ours().label("project", "alpha"),
            ImageSpec::new("both-other-project")
                .ours()
                .label("project", "beta"),
        ],
    )
    .await?;
    let scope = Scope::new(
        ["cascade.managed=true", "project=alpha"].map(|l| l.parse::<Label>().expect("label")),
    )?;
    let (report, _) = sweep(
        &engine,
        SweepConfig {
            scope,
            min_age: Duration::ZERO,
            ..SweepConfig::default()
        },
    )
    .await;
    assert_eq!(removed(&report), ids(&loaded, ["both"]));
    let after = all_image_ids(&engine.docker).await?;
    assert_eq!(
        after,
        ids(
            &loaded,
            ["managed-only", "project-only", "both-other-project"]
        )
    );
    engine.finish().await
}

fn janitor_json(host: &str, extra: &[&str]) -> Result<(i32, serde_json::Value)> {
    let out = std::process::Command::new(integration::janitor_binary())
        .args([
            "prune",
            "--output",
            "json",
            "--min-age",
            "0s",
            "--docker-host",
            host,
        ])
        .args(extra)
        .env_remove("SENTRY_DSN")
        .output()?;
    let json = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok((out.status.code().unwrap_or(-1), json))
}

fn json_ids(json: &serde_json::Value, field: &str) -> BTreeSet<String> {
    json[field]
        .as_array()
        .expect(field)
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn the_binary_end_to_end_dry_run_then_prune() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    let mut specs = bystanders();
    specs.extend((0..5).map(|i| ImageSpec::new(&format!("ours-{i}")).ours()));
    let loaded = fixtures::load(d, &specs).await?;
    let held = fixtures::load(d, &[ImageSpec::new("held").ours()]).await?;
    fixtures::create_container(d, &held["held"]).await?;
    let before = all_image_ids(d).await?;
    let ours = ids(
        &loaded,
        (0..5)
            .map(|i| format!("ours-{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );

    let (code, plan) = janitor_json(&engine.host(), &["--dry-run"])?;
    assert_eq!(code, 0);
    assert_eq!(all_image_ids(d).await?, before, "a dry run removes nothing");
    assert_eq!(json_ids(&plan, "would_remove"), ours);
    assert_eq!(plan["skipped"][0]["reason"], "in_use");
    assert_eq!(
        plan["skipped"][0]["id"].as_str(),
        Some(held["held"].as_str())
    );

    let (code, done) = janitor_json(&engine.host(), &[])?;
    assert_eq!(code, 0, "{done}");
    assert_eq!(
        json_ids(&done, "removed"),
        json_ids(&plan, "would_remove"),
        "the plan is what happens"
    );
    assert_eq!(
        all_image_ids(d).await?,
        before.difference(&ours).cloned().collect()
    );
    engine.finish().await
}

#[tokio::test]
async fn the_daemon_sweeps_at_start_and_exits_0_on_sigterm() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let loaded = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("ours").ours(),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let mut daemon = integration::janitor()
        .args([
            "run",
            "--min-age",
            "0s",
            "--interval",
            "1h",
            "--docker-host",
            &engine.host(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while all_image_ids(&engine.docker)
        .await?
        .contains(&loaded["ours"])
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not sweep at start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = daemon.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await??;
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
    assert_eq!(
        all_image_ids(&engine.docker).await?,
        ids(&loaded, ["mysql"])
    );
    engine.finish().await
}
