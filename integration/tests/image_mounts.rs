//! Every use counts: an image a container mounts (`--mount type=image`,
//! Docker 28+) is kept as in use, though the engine's own conflict check
//! does not see it (`rmi` of a mounted image succeeds on 28.5). On 28.5
//! (`CASCADE_TEST_ENGINE=28.5-containerd` or `28.5-classic`) and on every
//! Podman the sweep keeps the mounted images; older Dockers refuse the
//! mount type.

use std::sync::Arc;

use anyhow::{Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use cascade_cleanup::{DanglingImageSweep, DockerImages, SkipReason, SweepConfig};
use integration::NestedEngine;
use integration::engine::{Family, MatrixEngine, all_image_ids};
use integration::fixtures::{self, ImageSpec};
use tokio_util::sync::CancellationToken;

/// A created container from `image` that mounts `source` at /mnt.
async fn mounting(engine: &NestedEngine, image: &str, source: &str) -> Result<String> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["/fixture".to_string()]),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                typ: Some(MountType::IMAGE),
                source: Some(source.to_string()),
                target: Some("/mnt".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(engine
        .docker
        .create_container(None, body)
        .await
        .with_context(|| format!("create a container mounting {source}"))?
        .id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_a_container_mounts_are_in_use() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let current = MatrixEngine::current()?;
    let major: u32 = current
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .context("engine version")?;
    // Podman (4.3 and up) takes image mounts through its Docker API too.
    if current.family == Family::Docker && major < 28 {
        // Before Docker 28 the engine refuses the mount type, so no
        // container can hold an image this way.
        fixtures::load(&engine.docker, &[ImageSpec::new("base").tagged("base:1")]).await?;
        let refused = mounting(&engine, "base:1", "base:1").await;
        let error = format!(
            "{:#}",
            refused.expect_err("no image mounts before Docker 28")
        );
        assert!(error.contains("status code 400"), "{error}");
        return engine.finish().await;
    }
    let ids = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("base").tagged("base:1"),
            ImageSpec::new("mounted-by-id").ours(),
            ImageSpec::new("mounted-by-short-id").ours(),
            ImageSpec::new("loose").ours(),
        ],
    )
    .await?;
    let short = |id: &str| id.trim_start_matches("sha256:")[..12].to_string();
    mounting(&engine, "base:1", &ids["mounted-by-id"]).await?;
    mounting(&engine, "base:1", &short(&ids["mounted-by-short-id"])).await?;

    let docker =
        cascade_engine::connect(&engine.host(), std::time::Duration::from_secs(30)).await?;
    let report = DanglingImageSweep::new(
        Arc::new(docker) as Arc<dyn DockerImages>,
        SweepConfig {
            min_age: std::time::Duration::ZERO,
            ..SweepConfig::default()
        },
    )
    .run(&CancellationToken::new())
    .await;

    let mut in_use: Vec<String> = report
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::InUse)
        .map(|s| s.image.id.clone())
        .collect();
    in_use.sort();
    let mut expected = vec![
        ids["mounted-by-id"].clone(),
        ids["mounted-by-short-id"].clone(),
    ];
    expected.sort();
    assert_eq!(in_use, expected, "{report:?}");
    let removed: Vec<&str> = report.removed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(removed, vec![ids["loose"].as_str()]);
    let left = all_image_ids(&engine.docker).await?;
    assert!(left.contains(&ids["mounted-by-id"]) && left.contains(&ids["mounted-by-short-id"]));
    assert!(!left.contains(&ids["loose"]));
    engine.finish().await
}
