//! The bollard implementations of cleanup's engine traits, and the plain
//! engine facts `doctor` reports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use cascade_classify::{Disposition, classify};
use cascade_cleanup::events::ORPHANING_ACTIONS;
use cascade_cleanup::{
    DockerError, DockerImages, EngineEvent, EngineEvents, ImageStore, ListedImage,
};

use crate::connect::{ApiVersion, Transport};
use crate::list::{ListDecoder, list_query};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;

/// A connected engine: what [`crate::connect`] returns, and what a sweep of
/// a real engine is given.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// The version the transport puts in every path; never set for a
    /// client built elsewhere ([`Engine::new`]), whose paths stay as bollard
    /// builds them.
    version: ApiVersion,
    /// The transport under `docker`, for the listing read as it arrives
    /// (`list.rs`); a client built elsewhere lists through bollard.
    transport: Option<Transport>,
}

impl Engine {
    /// Wraps a bollard client built elsewhere (tests build their own).
    pub fn new(docker: Docker) -> Engine {
        Engine {
            docker,
            version: ApiVersion::default(),
            transport: None,
        }
    }

    pub(crate) fn negotiated(docker: Docker, version: ApiVersion, transport: Transport) -> Engine {
        Engine {
            docker,
            version,
            transport: Some(transport),
        }
    }

    /// The API version every request carries (`1.41`), when this engine was
    /// connected by [`crate::connect`] or an [`crate::EngineClient`].
    pub fn api_version(&self) -> Option<String> {
        self.version.get()
    }

    /// Negotiates the API version again, for every clone of this engine.
    pub(crate) async fn renegotiate(&self, timeout: std::time::Duration) -> Result<String, String> {
        crate::connect::renegotiate(&self.docker, &self.version, timeout).await
    }

    /// The bollard client, for calls the traits do not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let v = self.docker.version().await.map_err(docker_error)?;
        Ok(EngineVersion {
            version: v.version,
            api_version: v.api_version,
        })
    }

    /// The storage facts of `GET /info`.
    pub async fn storage(&self) -> Result<Storage, DockerError> {
        let info = self.docker.info().await.map_err(docker_error)?;
        let store = image_store(info.driver.as_deref(), info.driver_status.as_deref());
        Ok(Storage {
            driver: info.driver,
            root_dir: info.docker_root_dir.map(PathBuf::from),
            engine_id: info.id,
            store,
        })
    }
}

impl From<Docker> for Engine {
    fn from(docker: Docker) -> Engine {
        Engine::new(docker)
    }
}

/// The engine's version, as it states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    pub version: Option<String>,
    pub api_version: Option<String>,
}

/// Where and how the engine stores images, as it states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub driver: Option<String>,
    /// `DockerRootDir`, a path on the engine's host.
    pub root_dir: Option<PathBuf>,
    pub engine_id: Option<String>,
    /// The image store: on the containerd store, `driver` is the snapshotter.
    pub store: ImageStore,
}

/// The `DriverStatus` entry the containerd image store reports in `GET
/// /info` (Docker 24 to 28, seen on 26.1 and 28.5); the classic store
/// reports its graph driver's status there instead. `Driver` is then the
/// snapshotter (`overlayfs`), a name no graph driver uses, but the entry is
/// the signal: a snapshotter could share a name with a driver.
const CONTAINERD_DRIVER_TYPE: [&str; 2] = ["driver-type", "io.containerd.snapshotter.v1"];

/// Which image store `GET /info`'s `Driver` and `DriverStatus` describe.
pub fn image_store(driver: Option<&str>, status: Option<&[Vec<String>]>) -> ImageStore {
    let driver = driver.unwrap_or("unknown").to_string();
    let containerd = status.unwrap_or_default().iter().any(|entry| {
        entry.len() == 2
            && entry[0] == CONTAINERD_DRIVER_TYPE[0]
            && entry[1] == CONTAINERD_DRIVER_TYPE[1]
    });
    if containerd {
        ImageStore::Containerd {
            snapshotter: driver,
        }
    } else {
        ImageStore::Classic { driver }
    }
}

/// A failed bollard call as cleanup sees it: classified, with the HTTP
/// status when the engine answered.
pub fn docker_error(error: bollard::errors::Error) -> DockerError {
    let status = match &error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    };
    DockerError {
        disposition: classify(&error),
        status,
        message: error.to_string(),
    }
}

/// `/info`'s `SystemTime` (RFC 3339 with nanoseconds, in the engine's
/// zone: `Z` or `+HH:MM`) as seconds since the Unix epoch.
pub fn engine_time(system_time: &str) -> Option<i64> {
    let (local, offset) = match system_time.strip_suffix('Z') {
        Some(local) => (local, 0),
        None => {
            let at = system_time.len().checked_sub(6)?;
            let (local, zone) = system_time.split_at(at);
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = zone[1..].split_once(':')?;
            let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
            (local, sign * minutes * 60)
        }
    };
    let utc = humantime::parse_rfc3339_weak(local).ok()?;
    let secs = utc.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(secs - offset)
}

/// The image references of every `type: image` mount, as the engine lists
/// them: `Name` is the reference the container was created with (a tag, an
/// ID or a digest), `Source` only a path on the engine's host.
pub fn mounted_images(containers: &[bollard::models::ContainerSummary]) -> BTreeSet<String> {
    containers
        .iter()
        .flat_map(|c| c.mounts.iter().flatten())
        .filter(|m| m.typ.as_deref() == Some("image"))
        .filter_map(|m| m.name.clone())
        .filter(|name| !name.is_empty())
        .collect()
}

/// One listed image, reduced to what a sweep looks at.
pub fn listed_image(summary: bollard::models::ImageSummary) -> ListedImage {
    ListedImage {
        id: summary.id,
        created: summary.created,
        size: summary.size,
        labels: summary.labels,
        repo_tags: summary.repo_tags,
        parent_id: summary.parent_id,
    }
}

/// `GET /images/json?all=false&filters=...`, decoded as the body arrives
/// (`list.rs`); errors as bollard would report them.
async fn list_streamed(
    transport: &Transport,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<ListedImage>, DockerError> {
    let path = format!("/images/json?{}", list_query(filters));
    let response = transport.get(&path).await.map_err(docker_error)?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        // An error answer is one short JSON message.
        let bytes = body
            .collect()
            .await
            .map_err(|err| docker_error(bollard::errors::Error::HyperResponseError { err }))?
            .to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(docker_error(
            bollard::errors::Error::DockerResponseServerError {
                status_code: status.as_u16(),
                message,
            },
        ));
    }
    let mut decoder = ListDecoder::default();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|err| docker_error(bollard::errors::Error::HyperResponseError { err }))?;
        if let Some(chunk) = frame.data_ref() {
            decoder.feed(chunk).map_err(unreadable)?;
        }
    }
    decoder.finish().map_err(unreadable)
}

/// A body that is not an image list: unexpected, so the scan fails, it is
/// reported, and nothing is removed.
fn unreadable(error: crate::list::ListError) -> DockerError {
    DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!("{error}; is --docker-host a Docker engine?"),
    }
}

/// Passes the sweep's filters to the engine and filters nothing itself: the
/// sweep re-checks every image it is given `[ref:scope_invariant]`.
#[async_trait]
impl DockerImages for Engine {
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        if let Some(transport) = &self.transport {
            return list_streamed(transport, filters).await;
        }
        let options = ListImagesOptionsBuilder::new()
            .all(false)
            .filters(filters)
            .build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(docker_error)?;
        Ok(images.into_iter().map(listed_image).collect())
    }

    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        let image = match self.docker.inspect_image(id).await {
            Ok(image) => image,
            Err(e) => {
                let e = docker_error(e);
                return if e.disposition == Disposition::Gone {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        // `Created` is RFC 3339; read through serde so this does not depend
        // on which date type bollard was built with.
        let created = serde_json::to_value(image.created)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .and_then(|s| humantime::parse_rfc3339_weak(&s).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Some(ListedImage {
            id: image.id.unwrap_or_else(|| id.to_string()),
            created,
            size: image.size.unwrap_or(0),
            labels: image.config.and_then(|c| c.labels).unwrap_or_default(),
            repo_tags: image.repo_tags.unwrap_or_default(),
            // Not in bollard's model of this call; the plan looks one level up.
            parent_id: String::new(),
        }))
    }

    async fn engine_time(&self) -> Result<Option<i64>, DockerError> {
        let info = self.docker.info().await.map_err(docker_error)?;
        Ok(info.system_time.as_deref().and_then(engine_time))
    }

    /// Every container's image, and every image a container mounts
    /// (`--mount type=image`, Docker 28+), which the engine's own conflict
    /// check does not see: `rmi` of a mounted image succeeds.
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_error)?;
        let mounted = mounted_images(&containers);
        let mut used: HashSet<String> = containers.into_iter().filter_map(|c| c.image_id).collect();
        for reference in mounted {
            match self.inspect_image(&reference).await? {
                Some(image) => {
                    used.insert(image.id);
                }
                // The reference names no image any more (its tag was
                // removed): nothing here to keep by it.
                None => {
                    tracing::debug!(%reference, "an image mount names no image now");
                }
            }
        }
        Ok(used)
    }

    async fn image_store(&self) -> Result<ImageStore, DockerError> {
        Ok(self.storage().await?.store)
    }

    async fn local_data_root(&self, image: &str) -> Option<PathBuf> {
        let storage = self.storage().await.ok()?;
        if let ImageStore::Containerd { .. } = storage.store {
            // Its content and snapshots live under containerd's root, not
            // `DockerRootDir`: free space there measures nothing of ours.
            tracing::debug!("containerd image store; reclaimed space is an estimate");
            return None;
        }
        let root = storage.root_dir?;
        match crate::disk::visible_data_root(
            &root,
            storage.driver.as_deref(),
            storage.engine_id.as_deref(),
            Some(image),
        ) {
            Ok(()) => Some(root),
            Err(why) => {
                tracing::debug!(%why, "engine data root not visible; reclaimed space is the sum of image sizes");
                None
            }
        }
    }

    async fn remove_image(&self, name: &str) -> Result<(), DockerError> {
        // noprune=true: the default would also delete untagged parents, with
        // or without our label. force=false: never an image a container uses.
        let options = RemoveImageOptionsBuilder::new()
            .force(false)
            .noprune(true)
            .build();
        self.docker
            .remove_image(name, Some(options), None)
            .await
            .map_err(docker_error)?;
        Ok(())
    }
}

impl EngineEvents for Engine {
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([
            ("type", vec!["image".to_string(), "container".to_string()]),
            (
                "event",
                ORPHANING_ACTIONS.iter().map(|a| a.to_string()).collect(),
            ),
            ("label", labels.to_vec()),
        ]);
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        self.docker
            .events(Some(options))
            .map(|item| {
                item.map(|message| EngineEvent {
                    action: message.action.unwrap_or_default(),
                    id: message.actor.and_then(|a| a.id).unwrap_or_default(),
                })
                .map_err(docker_error)
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_answer_keeps_its_status_and_classification() {
        let error = docker_error(bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "image is being used by stopped container".into(),
        });
        assert_eq!(error.status, Some(409));
        assert_eq!(error.disposition, Disposition::InUse);
        assert!(error.message.contains("being used"), "{}", error.message);
        let timeout = docker_error(bollard::errors::Error::RequestTimeoutError);
        assert_eq!(
            (timeout.status, timeout.disposition),
            (None, Disposition::Transient)
        );
    }

    #[test]
    fn image_mounts_are_read_by_their_name() {
        // As Docker 28.5 lists a container with `--mount type=image`.
        let containers: Vec<bollard::models::ContainerSummary> =
            serde_json::from_value(serde_json::json!([
                {"Id": "c1", "ImageID": "sha256:base", "Mounts": [
                    {"Type": "image", "Name": "snap:1",
                     "Source": "/var/lib/docker/rootfs/overlayfs/c1-snap:1",
                     "Destination": "/x", "Mode": "", "RW": false, "Propagation": "rprivate"},
                    {"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data",
                     "Destination": "/data", "RW": true}
                ]},
                {"Id": "c2", "ImageID": "sha256:base", "Mounts": [
                    {"Type": "image", "Name": "sha256:abc", "Source": "/p", "Destination": "/y"},
                    {"Type": "bind", "Source": "/etc", "Destination": "/etc"}
                ]},
                {"Id": "c3", "ImageID": "sha256:base"}
            ]))
            .expect("a listing");
        assert_eq!(
            mounted_images(&containers),
            BTreeSet::from(["sha256:abc".to_string(), "snap:1".to_string()])
        );
    }

    #[test]
    fn the_engine_clock_is_read_in_its_zone() {
        // 2026-11-29T08:00:00Z
        let utc = 1_795_939_200;
        assert_eq!(engine_time("2026-11-29T08:00:00.123456789Z"), Some(utc));
        assert_eq!(engine_time("2026-11-29T08:00:00Z"), Some(utc));
        assert_eq!(engine_time("2026-11-29T10:00:00.5+02:00"), Some(utc));
        assert_eq!(engine_time("2026-11-29T03:00:00-05:00"), Some(utc));
        for bad in ["", "yesterday", "2026-11-29T08:00:00+0200", "2026-11-29"] {
            assert_eq!(engine_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_listed_image_keeps_what_the_sweep_checks() {
        let summary: bollard::models::ImageSummary = serde_json::from_value(serde_json::json!({
            "Id": "sha256:abc", "ParentId": "sha256:parent", "RepoTags": ["<none>:<none>"],
            "RepoDigests": [], "Created": 1700000000, "Size": 42, "SharedSize": -1,
            "Labels": {"cascade.managed": "true"}, "Containers": -1
        }))
        .expect("an engine's listing");
        let image = listed_image(summary);
        assert_eq!(
            image,
            ListedImage {
                id: "sha256:abc".into(),
                created: 1_700_000_000,
                size: 42,
                labels: HashMap::from([("cascade.managed".into(), "true".into())]),
                repo_tags: vec!["<none>:<none>".into()],
                parent_id: "sha256:parent".into(),
            }
        );
    }
}
