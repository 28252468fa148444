//! Fixture images, made without a registry: `docker load` of a generated
//! archive (any labels, tag or age, thousands per second) and `docker commit`
//! (parents, the production leak).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, ImportImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

/// One image to load.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The fixture's name in assertions; also makes its config unique.
    pub name: String,
    /// `repo:tag`, or `None` for a dangling image.
    pub tag: Option<String>,
    pub labels: Vec<(String, String)>,
    /// How long ago the image was created.
    pub age: Duration,
}

impl ImageSpec {
    pub fn new(name: &str) -> ImageSpec {
        ImageSpec {
            name: name.to_string(),
            tag: None,
            labels: Vec::new(),
            age: Duration::from_secs(3600),
        }
    }

    pub fn tagged(mut self, tag: &str) -> ImageSpec {
        self.tag = Some(tag.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> ImageSpec {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Ours: `cascade.managed=true`.
    pub fn ours(self) -> ImageSpec {
        self.label("cascade.managed", "true")
    }

    pub fn age(mut self, age: Duration) -> ImageSpec {
        self.age = age;
        self
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tar_entry(archive: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, path, data)?;
    Ok(())
}

/// A `docker save` style archive: one shared tiny layer, one config per
/// image, `RepoTags` null for dangling ones. Returns the archive and each
/// spec's image ID (the sha256 of its config), in order. Ages count back
/// from now.
pub fn archive(specs: &[ImageSpec]) -> Result<(Vec<u8>, Vec<String>)> {
    archive_at(specs, SystemTime::now())
}

/// [`archive`] with ages counted back from `now`: the same specs and `now`
/// give the same bytes and image IDs, so a benchmark can load the identical
/// set again after a sweep removed it. Linear in the number of specs (one
/// config and one manifest entry each), so 20,000 images take milliseconds.
pub fn archive_at(specs: &[ImageSpec], now: SystemTime) -> Result<(Vec<u8>, Vec<String>)> {
    let mut layer = tar::Builder::new(Vec::new());
    tar_entry(&mut layer, "fixture", b"cascade-janitor fixture\n")?;
    let layer = layer.into_inner()?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer));

    // Each entry is a 512-byte header plus a config padded to 512 bytes.
    let mut out = tar::Builder::new(Vec::with_capacity(4096 + specs.len() * 2048));
    tar_entry(&mut out, "layer/layer.tar", &layer)?;
    let mut manifest = Vec::with_capacity(specs.len());
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        let created = humantime::format_rfc3339_seconds(now - spec.age).to_string();
        let labels: HashMap<&str, &str> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": { "Labels": labels, "Env": [format!("FIXTURE={}", spec.name)], "Cmd": ["/fixture"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            // A history entry of its own: Podman calls an image the child
            // of any image whose layers and history are its own minus one
            // entry, so a commit over one fixture would otherwise be a child
            // (and make it "not dangling") of every fixture of the same age.
            "history": [{ "created": created, "created_by": format!("cascade-janitor fixture {}", spec.name) }],
        });
        let bytes = serde_json::to_vec(&config)?;
        let hex = sha256_hex(&bytes);
        tar_entry(&mut out, &format!("{hex}.json"), &bytes)?;
        manifest.push(serde_json::json!({
            "Config": format!("{hex}.json"),
            "RepoTags": spec.tag.as_ref().map(|t| vec![t.clone()]),
            "Layers": ["layer/layer.tar"],
        }));
        ids.push(format!("sha256:{hex}"));
    }
    tar_entry(&mut out, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    Ok((out.into_inner()?, ids))
}

/// Loads the specs into `docker`; returns name → image ID, the ID the
/// engine lists (and accepts) for it.
pub async fn load(docker: &Docker, specs: &[ImageSpec]) -> Result<BTreeMap<String, String>> {
    let now = SystemTime::now();
    let (bytes, ids) = archive_at(specs, now)?;
    load_archive(docker, bytes.into()).await?;
    let ids = listed_ids(docker, specs, ids, now).await?;
    Ok(specs.iter().map(|s| s.name.clone()).zip(ids).collect())
}

/// The classic store lists an image by its config digest, which is what
/// [`archive_at`] computes. The containerd store (Docker 26+ with
/// `containerd-snapshotter`) lists it by its manifest digest, which it
/// makes when it loads the archive, and does not resolve the config digest
/// at all (404). There, each loaded image is found by what its config
/// holds: the `FIXTURE=<name>` variable and the `created` time.
async fn listed_ids(
    docker: &Docker,
    specs: &[ImageSpec],
    config_ids: Vec<String>,
    now: SystemTime,
) -> Result<Vec<String>> {
    let listed = crate::engine::all_image_ids(docker).await?;
    if config_ids.iter().all(|id| listed.contains(id)) {
        return Ok(config_ids);
    }
    let mut by_config: HashMap<(String, SystemTime), String> = HashMap::new();
    for id in &listed {
        let inspect = docker
            .inspect_image(id)
            .await
            .with_context(|| format!("inspect {id}"))?;
        let name = inspect
            .config
            .and_then(|c| c.env)
            .unwrap_or_default()
            .into_iter()
            .find_map(|e| e.strip_prefix("FIXTURE=").map(str::to_string));
        let created = inspect.created.map(SystemTime::from);
        if let (Some(name), Some(created)) = (name, created) {
            by_config.insert((name, created), id.clone());
        }
    }
    specs
        .iter()
        .zip(config_ids)
        .map(|(spec, config_id)| {
            if listed.contains(&config_id) {
                return Ok(config_id);
            }
            // The archive's `created` has whole seconds.
            let created = humantime::parse_rfc3339_weak(
                &humantime::format_rfc3339_seconds(now - spec.age).to_string(),
            )?;
            by_config
                .get(&(spec.name.clone(), created))
                .cloned()
                .with_context(|| {
                    format!(
                        "fixture {} ({config_id}) was loaded but the engine lists no image with its config",
                        spec.name
                    )
                })
        })
        .collect()
}

/// `docker load` of an archive made by [`archive`] or [`archive_at`].
/// Images already present are left as they are.
pub async fn load_archive(docker: &Docker, archive: bytes::Bytes) -> Result<()> {
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    // Thousands of images take longer than the harness's per-call limit.
    let docker = docker.clone().with_timeout(Duration::from_secs(600));
    let progress: Vec<_> = docker
        .import_image(options, bollard::body_full(archive), None)
        .try_collect()
        .await
        .context("docker load")?;
    for p in &progress {
        if let Some(error) = &p.error_detail {
            bail!("docker load failed: {error:?}");
        }
    }
    Ok(())
}

/// Creates (does not start) a container from `image`; it holds the image.
pub async fn create_container(docker: &Docker, image: &str) -> Result<String> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["/fixture".to_string()]),
        network_disabled: Some(true),
        ..Default::default()
    };
    Ok(docker
        .create_container(None, body)
        .await
        .context("create container")?
        .id)
}

/// `docker commit` of `container` to `repo:tag` with extra labels (plain
/// `key=value`, no spaces or quotes).
///
/// The labels go both in the body's config and as `LABEL` changes: Podman
/// 4.3 decodes the body and then ignores it (so body labels are dropped
/// there), and Docker and Podman 5 apply either.
pub async fn commit(
    docker: &Docker,
    container: &str,
    repo: &str,
    tag: &str,
    labels: &[(&str, &str)],
) -> Result<String> {
    let changes: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("LABEL {k}={v}"))
        .collect();
    let mut options = CommitContainerOptionsBuilder::new()
        .container(container)
        .repo(repo)
        .tag(tag);
    if !changes.is_empty() {
        options = options.changes(&changes.join("\n"));
    }
    let options = options.build();
    let config = ContainerConfig {
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        cmd: Some(vec!["/fixture".to_string()]),
        ..Default::default()
    };
    let id = docker
        .commit_container(options, config)
        .await
        .context("docker commit")?
        .id;
    Ok(listed_id(&id))
}

/// An image ID as the engine's image list spells it: `sha256:<hex>`.
/// Podman answers a commit (and names images in events and delete replies)
/// with the bare hex; its list says `sha256:`, as Docker does everywhere.
pub fn listed_id(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

/// Takes `tag` off the image that holds it, leaving that image and its
/// children as they are, by moving the tag to a new unlabelled image (a
/// placeholder, returned, that keeps the tag). Removing the tag instead
/// (`docker rmi repo:tag`) differs between engines: Docker only untags an
/// image that has children, Podman deletes an image with its last tag
/// whatever its children. Moving the tag works the same on both.
pub async fn move_tag_away(docker: &Docker, tag: &str) -> Result<String> {
    let (repo, tag_part) = tag
        .rsplit_once(':')
        .with_context(|| format!("`{tag}` is not repo:tag"))?;
    let placeholder = format!("placeholder-for-{tag}");
    let loaded = load(docker, &[ImageSpec::new(&placeholder)]).await?;
    let id = loaded[&placeholder].clone();
    self::tag(docker, &id, repo, tag_part)
        .await
        .with_context(|| format!("moving {tag} away"))?;
    Ok(id)
}

pub async fn tag(docker: &Docker, image: &str, repo: &str, tag: &str) -> Result<()> {
    let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
    docker
        .tag_image(image, Some(options))
        .await
        .context("docker tag")?;
    Ok(())
}

/// A tag as it was given: Podman stores every name fully qualified
/// (`docker.io/library/<name>` when tagged through its Docker API,
/// `localhost/<name>` when loaded from an archive), Docker the name itself.
pub fn short_name(tag: &str) -> String {
    ["docker.io/library/", "localhost/"]
        .iter()
        .find_map(|prefix| tag.strip_prefix(prefix))
        .unwrap_or(tag)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_podmans_qualification_only() {
        assert_eq!(short_name("docker.io/library/snap:latest"), "snap:latest");
        assert_eq!(short_name("localhost/base:1"), "base:1");
        assert_eq!(short_name("snap:latest"), "snap:latest");
        assert_eq!(short_name("quay.io/x/y:1"), "quay.io/x/y:1");
    }

    #[test]
    fn listed_ids_carry_the_digest_prefix() {
        assert_eq!(listed_id("abc"), "sha256:abc");
        assert_eq!(listed_id("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn every_fixture_has_a_history_of_its_own() -> Result<()> {
        let now = SystemTime::now();
        let (bytes, _) = archive_at(&[ImageSpec::new("a"), ImageSpec::new("b")], now)?;
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut histories = Vec::new();
        for entry in archive.entries()? {
            let entry = entry?;
            let path = entry.path()?.to_string_lossy().to_string();
            if path.ends_with(".json") && path != "manifest.json" {
                let config: serde_json::Value = serde_json::from_reader(entry)?;
                histories.push(config["history"].clone());
            }
        }
        assert_eq!(histories.len(), 2);
        assert_ne!(histories[0], histories[1], "same age, yet distinct");
        Ok(())
    }
}
