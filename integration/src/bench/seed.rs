//! The seed: `images` labelled dangling images and `decoys` unlabelled
//! dangling ones, identical in every run, and the `seed` subcommand that
//! loads them into a nested engine.
//!
//! One [`SeedSet`] is generated once per size and loaded again before each
//! contender, so every contender meets the identical image set: the same
//! configs, the same `created` times, hence the same image IDs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::ListImagesOptionsBuilder;
use bytes::Bytes;

use crate::NestedEngine;
use crate::fixtures::{self, ImageSpec};

/// The label the seeded images carry (the janitor's default scope).
pub const LABEL: (&str, &str) = ("cascade.managed", "true");

/// Every seeded image is this old when measured from [`SEED_EPOCH`]; any
/// minimum age the janitor uses by default passes.
const SEED_AGE: Duration = Duration::from_secs(2 * 3600);

/// The fixed "now" the seed counts ages back from (2026-01-01T00:00:00Z):
/// the archive, and so every image ID, is the same in every run.
pub const SEED_EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// `images` labelled dangling images and `decoys` unlabelled dangling ones.
#[derive(Debug, Clone)]
pub struct SeedSet {
    pub images: usize,
    pub decoys: usize,
    specs: Vec<ImageSpec>,
    /// Image IDs of `specs`, in order: the labelled images first.
    ids: Vec<String>,
}

/// Concurrent `docker load` requests: the engine spends most of a load
/// writing each image's config and metadata, and overlaps that across
/// requests.
const LOAD_STREAMS: usize = 4;

impl SeedSet {
    pub fn new(images: usize, decoys: usize) -> Result<SeedSet> {
        let mut specs = Vec::with_capacity(images + decoys);
        specs.extend((0..images).map(|i| {
            ImageSpec::new(&format!("bench-{i}"))
                .label(LABEL.0, LABEL.1)
                .age(SEED_AGE)
        }));
        specs.extend((0..decoys).map(|i| ImageSpec::new(&format!("decoy-{i}")).age(SEED_AGE)));
        let (_, ids) = fixtures::archive_at(&specs, UNIX_EPOCH + SEED_EPOCH)?;
        Ok(SeedSet {
            images,
            decoys,
            specs,
            ids,
        })
    }

    /// Image IDs of the labelled images.
    pub fn ours(&self) -> &[String] {
        &self.ids[..self.images]
    }

    /// Image IDs of the decoys.
    pub fn decoy_ids(&self) -> &[String] {
        &self.ids[self.images..]
    }

    /// The whole set as one `docker load` archive.
    pub fn archive(&self) -> Result<Bytes> {
        Ok(fixtures::archive_at(&self.specs, UNIX_EPOCH + SEED_EPOCH)?
            .0
            .into())
    }

    /// Makes the engine hold the whole set again: loads only the images
    /// that are missing (loading an image that is present costs the engine
    /// as much as a new one), split over a few concurrent loads. Returns
    /// how many it loaded and how long that took.
    pub async fn restore(&self, docker: &Docker) -> Result<(usize, Duration)> {
        let started = Instant::now();
        let present = crate::engine::all_image_ids(docker).await?;
        let by_config = present.is_empty() || self.ids.iter().any(|id| present.contains(id));
        let missing: Vec<ImageSpec> = if by_config {
            self.specs
                .iter()
                .zip(&self.ids)
                .filter(|(_, id)| !present.contains(*id))
                .map(|(spec, _)| spec.clone())
                .collect()
        } else {
            // The containerd store lists manifest digests, not the config
            // digests the seed knows (`fixtures::listed_ids`); inspecting
            // every image to match them costs as much as a load. Every
            // contender removes all of the labelled images and none of the
            // decoys (each is checked), so count instead.
            let ours = count_ours(docker).await?;
            if ours == self.images && present.len() >= self.images + self.decoys {
                Vec::new()
            } else if ours == 0 && present.len() >= self.decoys {
                self.specs[..self.images].to_vec()
            } else {
                self.specs.clone()
            }
        };
        if missing.is_empty() {
            return Ok((0, started.elapsed()));
        }
        let chunk = missing.len().div_ceil(LOAD_STREAMS);
        let loads = missing.chunks(chunk).map(|specs| async move {
            let (archive, _) = fixtures::archive_at(specs, UNIX_EPOCH + SEED_EPOCH)?;
            fixtures::load_archive(docker, archive.into()).await
        });
        futures_util::future::try_join_all(loads).await?;
        Ok((missing.len(), started.elapsed()))
    }
}

/// The engine filters of the scope: `dangling=true` and the label.
pub fn scope_filters() -> HashMap<String, Vec<String>> {
    HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec![format!("{}={}", LABEL.0, LABEL.1)],
        ),
    ])
}

/// Counts the labelled dangling images on the engine (engine filter only:
/// this checks the seed, it decides nothing).
/// On the containerd store a listing that overlaps a removal can answer 404
/// ("content digest ...: not found"); it is asked again, as in
/// `engine::all_image_ids`.
pub async fn count_ours(docker: &Docker) -> Result<usize> {
    let filters = scope_filters();
    let mut attempts = 0;
    loop {
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        match docker.list_images(Some(options)).await {
            Ok(images) => return Ok(images.len()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e).context("listing seeded images"),
        }
    }
}

/// `label=cascade.managed=true`: the label as a CLI's `--filter` takes it.
pub fn label_filter() -> String {
    format!("label={}={}", LABEL.0, LABEL.1)
}

/// Flags of `cascade-bench seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    #[arg(long, default_value_t = 1_000)]
    pub decoys: usize,
    /// unix:// socket of a nested engine; without it, one is started and
    /// kept until Ctrl-C
    #[arg(long)]
    pub docker_host: Option<String>,
}

/// Sockets of the host engine: `seed` never loads into them.
const HOST_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// The path of `host`, a `unix://` socket that is not the host engine's.
fn nested_socket(host: &str) -> Result<PathBuf> {
    let Some(path) = host.strip_prefix("unix://") else {
        bail!("--docker-host `{host}`: use the unix:///path/docker.sock of a nested engine");
    };
    let path = PathBuf::from(path);
    let canonical = std::fs::canonicalize(&path)
        .with_context(|| format!("--docker-host `{host}`: {} does not exist", path.display()))?;
    for h in HOST_SOCKETS {
        if std::fs::canonicalize(h).is_ok_and(|c| c == canonical) {
            bail!(
                "--docker-host `{host}` is the host engine; seed only nested engines (omit --docker-host to start one)"
            );
        }
    }
    Ok(path)
}

/// `cascade-bench seed`: loads the set into the engine at `--docker-host`,
/// or into a nested engine it starts and keeps until Ctrl-C.
pub async fn run(args: SeedArgs) -> Result<()> {
    let SeedArgs {
        images,
        decoys,
        docker_host,
    } = args;
    let generated = Instant::now();
    let set = SeedSet::new(images, decoys)?;
    let generated = generated.elapsed();
    let (docker, engine) = match &docker_host {
        Some(host) => {
            let socket = nested_socket(host)?;
            let docker = Docker::connect_with_unix(
                &socket.to_string_lossy(),
                120,
                bollard::API_DEFAULT_VERSION,
            )?
            .negotiate_version()
            .await
            .with_context(|| format!("connecting to {host}"))?;
            (docker, None)
        }
        None => {
            eprintln!("cascade-bench: starting a nested engine");
            let engine = NestedEngine::start().await?;
            (engine.docker.clone(), Some(engine))
        }
    };
    let (count, loaded) = set.restore(&docker).await?;
    println!(
        "seeded {images} labelled dangling + {decoys} unlabelled images: set generated in {:.2} s, {count} missing images loaded in {:.2} s",
        generated.as_secs_f64(),
        loaded.as_secs_f64()
    );
    if let Some(engine) = engine {
        println!("nested engine: {}", engine.host());
        println!(
            "try: target/release/cascade-janitor prune --dry-run --docker-host {}",
            engine.host()
        );
        println!("press Ctrl-C to remove the nested engine");
        tokio::signal::ctrl_c().await?;
        engine.finish().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_identical_across_generations() -> Result<()> {
        let a = SeedSet::new(50, 5)?;
        let b = SeedSet::new(50, 5)?;
        assert_eq!(a.archive()?, b.archive()?);
        assert_eq!(a.ours().len(), 50);
        assert_eq!(a.decoy_ids().len(), 5);
        // A smaller set is a prefix of a larger one: same names, same IDs.
        let small = SeedSet::new(10, 5)?;
        assert_eq!(small.ours(), &a.ours()[..10]);
        let mut all: Vec<_> = a.ours().iter().chain(a.decoy_ids()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 55, "every image has its own ID");
        Ok(())
    }
}
