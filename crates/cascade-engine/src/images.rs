//! The bollard implementations of cleanup's engine traits, and the plain
//! engine facts `doctor` reports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use cascade_classify::{Disposition, classify};
use cascade_cleanup::events::ORPHANING_ACTIONS;
use cascade_cleanup::{
    DockerError, DockerImages, EngineEvent, EngineEvents, EngineFacts, EngineIdentity, ImageStore,
    Implementation, ListedImage, RemovalAnswer,
};

use crate::answer::{Budget, broke_off, error_answer, fetch_json};
use crate::connect::{ApiVersion, PooledTransport};
use crate::list::{ListDecoder, encoded_filters, list_query};
use crate::names::SettingNames;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;

/// A negotiated connection to one engine: what [`crate::connect`] returns,
/// and what a sweep of a real engine is given. For the daemon's lazily
/// connecting engine, see [`crate::EngineClient`].
#[derive(Debug, Clone)]
pub struct EngineConnection {
    docker: Docker,
    /// The version the transport puts in every path; never set for a
    /// client built elsewhere ([`EngineConnection::new`]), whose paths stay as
    /// bollard builds them.
    version: ApiVersion,
    /// The transport under `docker`, for the listing and the events read
    /// as they arrive (`list.rs`, `events.rs`); a client built elsewhere
    /// lists and follows through bollard.
    transport: Option<PooledTransport>,
    /// What error messages call the settings they point at.
    names: SettingNames,
}

impl EngineConnection {
    /// Wraps a bollard client built elsewhere (tests build their own).
    pub fn new(docker: Docker) -> EngineConnection {
        EngineConnection {
            docker,
            version: ApiVersion::default(),
            transport: None,
            names: SettingNames::LIBRARY,
        }
    }

    /// Words its error messages with `names` (the owner's names of the
    /// address setting) instead of the library's.
    pub fn with_names(mut self, names: SettingNames) -> EngineConnection {
        self.names = names;
        self
    }

    pub(crate) fn negotiated(
        docker: Docker,
        version: ApiVersion,
        transport: PooledTransport,
    ) -> EngineConnection {
        EngineConnection {
            docker,
            version,
            transport: Some(transport),
            names: SettingNames::LIBRARY,
        }
    }

    /// The API version every request carries (`1.41`), when this engine was
    /// connected by [`crate::connect`] or an [`crate::EngineClient`].
    pub fn api_version(&self) -> Option<String> {
        self.version.get()
    }

    /// Negotiates the API version again, for every clone of this engine.
    pub(crate) async fn renegotiate(&self, timeout: std::time::Duration) -> Result<String, String> {
        crate::connect::renegotiate(
            &self.docker,
            self.transport.as_ref(),
            &self.version,
            timeout,
        )
        .await
    }

    /// The bollard client, for calls the traits do not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `GET /version`, within the answer limit when this connection has its
    /// own transport `[ref:answer_limit]`.
    async fn system_version(&self) -> Result<bollard::models::SystemVersion, DockerError> {
        match &self.transport {
            Some(transport) => fetch_json(transport, hyper::Method::GET, "/version").await,
            None => self.docker.version().await.map_err(docker_error),
        }
    }

    /// `GET /info`, within the answer limit `[ref:answer_limit]`.
    async fn system_info(&self) -> Result<bollard::models::SystemInfo, DockerError> {
        match &self.transport {
            Some(transport) => fetch_json(transport, hyper::Method::GET, "/info").await,
            None => self.docker.info().await.map_err(docker_error),
        }
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let v = self.system_version().await?;
        Ok(EngineVersion {
            version: v.version,
            api_version: v.api_version,
        })
    }

    /// The storage facts of `GET /info`; `implementation` (from `GET
    /// /version`) tells Podman's store from Docker's.
    pub async fn storage(&self, implementation: &Implementation) -> Result<Storage, DockerError> {
        let info = self.system_info().await?;
        let store = image_store(
            implementation,
            info.driver.as_deref(),
            info.driver_status.as_deref(),
        );
        Ok(Storage {
            driver: info.driver,
            root_dir: info.docker_root_dir.map(PathBuf::from),
            engine_id: info.id,
            store,
        })
    }

    /// `GET /version` and `GET /info`: which engine this is, its store and
    /// its clock.
    pub async fn facts(&self) -> Result<EngineFacts, DockerError> {
        let version = self.system_version().await?;
        let info = self.system_info().await?;
        Ok(engine_facts(&version, &info))
    }

    /// Which implementation answers (`GET /version` only).
    pub async fn implementation(&self) -> Result<Implementation, DockerError> {
        let version = self.system_version().await?;
        Ok(implementation(&version))
    }
}

/// The implementation `/version`'s components name.
fn implementation(version: &bollard::models::SystemVersion) -> Implementation {
    Implementation::from_components(version.components.iter().flatten().map(|c| c.name.as_str()))
}

/// The engine as `GET /version` and `GET /info` describe it.
pub fn engine_facts(
    version: &bollard::models::SystemVersion,
    info: &bollard::models::SystemInfo,
) -> EngineFacts {
    let implementation = implementation(version);
    let store = image_store(
        &implementation,
        info.driver.as_deref(),
        info.driver_status.as_deref(),
    );
    EngineFacts {
        identity: EngineIdentity {
            implementation,
            version: version
                .version
                .clone()
                .or_else(|| info.server_version.clone())
                .unwrap_or_default(),
            api_version: version.api_version.clone(),
            store,
        },
        now: info.system_time.as_deref().and_then(engine_time),
    }
}

impl From<Docker> for EngineConnection {
    fn from(docker: Docker) -> EngineConnection {
        EngineConnection::new(docker)
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

/// Which image store `GET /info`'s `Driver` and `DriverStatus` describe:
/// Podman's is always containers/storage (its `DriverStatus` has no
/// `driver-type`, and comes in random order).
pub fn image_store(
    implementation: &Implementation,
    driver: Option<&str>,
    status: Option<&[Vec<String>]>,
) -> ImageStore {
    let driver = driver.unwrap_or("unknown").to_string();
    if *implementation == Implementation::Podman {
        return ImageStore::ContainersStorage { driver };
    }
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
            // Not `split_at`: an engine's garbled time may put `at` inside
            // a character, and a panic must not be the answer to it.
            let (local, zone) = (system_time.get(..at)?, system_time.get(at..)?);
            let (sign, zone) = match zone.split_at_checked(1)? {
                ("+", rest) => (1, rest),
                ("-", rest) => (-1, rest),
                _ => return None,
            };
            let (h, m) = zone.split_once(':')?;
            let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
            (local, sign * minutes * 60)
        }
    };
    let utc = humantime::parse_rfc3339_weak(local).ok()?;
    let secs = utc.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(secs - offset)
}

/// The image references of every `type: image` mount, as the engine lists
/// them. Docker: `Name` is the reference the container was created with (a
/// tag, an ID or a digest), `Source` only a path on the engine's host.
/// Podman: `Name` is empty and `Source` is that reference.
pub fn mounted_images(containers: &[bollard::models::ContainerSummary]) -> BTreeSet<String> {
    containers
        .iter()
        .flat_map(|c| c.mounts.iter().flatten())
        .filter(|m| m.typ.as_deref() == Some("image"))
        .filter_map(|m| {
            let name = m.name.as_deref().filter(|n| !n.is_empty());
            // A path is never an image reference: Docker's `Source`.
            let source = m
                .source
                .as_deref()
                .filter(|s| !s.is_empty() && !s.starts_with('/'));
            name.or(source).map(str::to_string)
        })
        .collect()
}

/// What a container listing says is in use: every container's image ID,
/// and the reference of every image mount (resolved by the caller). A
/// container listed without a full image ID, or an image mount that names
/// no image, is an error: what it uses is unknown, so the pass removes
/// nothing. `[ref:scope_invariant]`
pub(crate) fn container_images(
    containers: &[bollard::models::ContainerSummary],
) -> Result<(HashSet<String>, BTreeSet<String>), DockerError> {
    let unknown = |what: String| DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!(
            "the engine's container list (GET /containers/json) has {what}, so the images in use are unknown"
        ),
    };
    let mut used = HashSet::new();
    for container in containers {
        let name = container.id.as_deref().unwrap_or("without an ID");
        match container.image_id.as_deref() {
            Some(id) if crate::list::is_full_image_id(id) => {
                used.insert(id.to_string());
            }
            Some(id) => {
                return Err(unknown(format!(
                    "container {} with image ID `{}`, not a full image ID",
                    name.escape_debug(),
                    id.escape_debug()
                )));
            }
            None => {
                return Err(unknown(format!(
                    "container {} without an image ID",
                    name.escape_debug()
                )));
            }
        }
        let unnamed_mount = container
            .mounts
            .iter()
            .flatten()
            .filter(|m| m.typ.as_deref() == Some("image"))
            .any(|m| mounted_images(std::slice::from_ref(&single_mount(m))).is_empty());
        if unnamed_mount {
            return Err(unknown(format!(
                "container {} with an image mount that names no image",
                name.escape_debug()
            )));
        }
    }
    Ok((used, mounted_images(containers)))
}

/// A container summary holding only `mount`, to read it as [`mounted_images`] does.
fn single_mount(mount: &bollard::models::MountPoint) -> bollard::models::ContainerSummary {
    bollard::models::ContainerSummary {
        mounts: Some(vec![mount.clone()]),
        ..Default::default()
    }
}

/// An inspected image (`GET /images/<id>/json`), reduced to what a sweep
/// looks at.
pub(crate) fn inspected_image(image: bollard::models::ImageInspect, id: &str) -> ListedImage {
    // `Created` is RFC 3339; read through serde so this does not depend
    // on which date type bollard was built with.
    let created = serde_json::to_value(image.created)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .and_then(|s| humantime::parse_rfc3339_weak(&s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    ListedImage {
        id: image.id.unwrap_or_else(|| id.to_string()),
        created,
        size: image.size.unwrap_or(0),
        labels: image.config.and_then(|c| c.labels).unwrap_or_default(),
        repo_tags: image.repo_tags.unwrap_or_default(),
        // Not in bollard's model of this call; the plan looks one level up.
        parent_id: String::new(),
    }
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

/// What an over-long image list's message names.
const LIST_CALL: &str = "GET /images/json";

/// `GET /images/json?all=...&filters=...`, decoded as the body arrives
/// (`list.rs`); errors as bollard would report them.
async fn list_streamed(
    transport: &PooledTransport,
    all: bool,
    filters: &HashMap<String, Vec<String>>,
    names: &SettingNames,
) -> Result<Vec<ListedImage>, DockerError> {
    let unreadable = |error| unreadable(error, names);
    let path = format!("/images/json?{}", list_query(all, filters));
    let response = transport.get(&path).await.map_err(docker_error)?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        return Err(error_answer(status, body, LIST_CALL).await);
    }
    // Counted before it is decoded: `[ref:answer_limit]`.
    let mut budget = Budget::new(LIST_CALL);
    let mut decoder = ListDecoder::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| broke_off(LIST_CALL, err))?;
        if let Some(chunk) = frame.data_ref() {
            budget.take(chunk.len())?;
            decoder.feed(chunk).map_err(unreadable)?;
        }
    }
    decoder.finish().map_err(unreadable)
}

/// A body that is not an image list: unexpected, so the scan fails, it is
/// reported, and nothing is removed.
fn unreadable(error: crate::list::ListError, names: &SettingNames) -> DockerError {
    DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!("{error}; is {} a Docker engine?", names.the_address),
    }
}

/// Passes the sweep's filters to the engine and filters nothing itself: the
/// sweep re-checks every image it is given `[ref:scope_invariant]`.
impl EngineConnection {
    async fn list(
        &self,
        all: bool,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        if let Some(transport) = &self.transport {
            return list_streamed(transport, all, filters, &self.names).await;
        }
        let options = ListImagesOptionsBuilder::new()
            .all(all)
            .filters(filters)
            .build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(docker_error)?;
        Ok(images.into_iter().map(listed_image).collect())
    }
}

#[async_trait]
impl DockerImages for EngineConnection {
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        self.facts().await
    }

    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        self.list(false, filters).await
    }

    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.list(true, &HashMap::new()).await
    }

    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        let inspected = match &self.transport {
            Some(transport) => {
                fetch_json::<bollard::models::ImageInspect>(
                    transport,
                    hyper::Method::GET,
                    &format!("/images/{id}/json"),
                )
                .await
            }
            None => self.docker.inspect_image(id).await.map_err(docker_error),
        };
        let image = match inspected {
            Ok(image) => image,
            Err(e) => {
                return if e.disposition == Disposition::Gone {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        Ok(Some(inspected_image(image, id)))
    }

    /// Every container's image, and every image a container mounts
    /// (`--mount type=image`, Docker 28+), which the engine's own conflict
    /// check does not see: `rmi` of a mounted image succeeds.
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        let containers: Vec<bollard::models::ContainerSummary> = match &self.transport {
            Some(transport) => {
                fetch_json(transport, hyper::Method::GET, "/containers/json?all=true").await?
            }
            None => {
                let options = ListContainersOptionsBuilder::new().all(true).build();
                self.docker
                    .list_containers(Some(options))
                    .await
                    .map_err(docker_error)?
            }
        };
        let (mut used, mounted) = container_images(&containers)?;
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

    async fn local_data_root(&self, image: &str) -> Option<PathBuf> {
        let implementation = self.implementation().await.ok()?;
        let storage = self.storage(&implementation).await.ok()?;
        // Asked only for an engine on this host (a unix socket): the sweep
        // measures reclaimed space for nothing else.
        match crate::disk::data_root_here(&storage, Some(image), true) {
            Ok(root) => Some(root.to_path_buf()),
            Err(why) => {
                tracing::debug!(%why, "engine data root not visible; reclaimed space is the sum of image sizes");
                None
            }
        }
    }

    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        let options = TagImageOptionsBuilder::new()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(id, Some(options))
            .await
            .map_err(docker_error)
    }

    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError> {
        // noprune=true: the default would also delete untagged parents, with
        // or without our label (Podman before 4.6 does anyway: the sweep
        // guards it). force=false: never an image a container uses.
        let items: Vec<bollard::models::ImageDeleteResponseItem> = match &self.transport {
            Some(transport) => {
                fetch_json(
                    transport,
                    hyper::Method::DELETE,
                    &format!("/images/{name}?force=false&noprune=true"),
                )
                .await?
            }
            None => {
                let options = RemoveImageOptionsBuilder::new()
                    .force(false)
                    .noprune(true)
                    .build();
                self.docker
                    .remove_image(name, Some(options), None)
                    .await
                    .map_err(docker_error)?
            }
        };
        let mut answer = RemovalAnswer::default();
        for item in items {
            answer.deleted.extend(item.deleted);
            answer.untagged.extend(item.untagged);
        }
        Ok(answer)
    }
}

/// The event filters for one implementation. Docker: `tag`/`commit` of
/// images and containers carrying the labels. Podman puts no labels on
/// image events and sends only a container `commit` for a commit (whose
/// labels are the container's, not always the new image's), so there the
/// labels are left out: any such event asks for a pass, which lists and
/// checks as always.
pub fn event_filters(
    implementation: &Implementation,
    labels: &[String],
) -> HashMap<&'static str, Vec<String>> {
    let mut filters = HashMap::from([
        ("type", vec!["image".to_string(), "container".to_string()]),
        (
            "event",
            ORPHANING_ACTIONS.iter().map(|a| a.to_string()).collect(),
        ),
    ]);
    if *implementation != Implementation::Podman {
        filters.insert("label", labels.to_vec());
    }
    filters
}

impl EngineEvents for EngineConnection {
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        let engine = self.clone();
        let labels = labels.to_vec();
        futures_util::stream::once(async move {
            let implementation = engine.implementation().await;
            (engine, implementation)
        })
        .flat_map(move |(engine, implementation)| match implementation {
            Ok(implementation) => {
                let filters = event_filters(&implementation, &labels);
                if let Some(transport) = &engine.transport {
                    // Each event within its limit `[ref:answer_limit]`.
                    let query = format!("filters={}", encoded_filters(&filters));
                    return crate::events::subscribe(transport.clone(), query);
                }
                let options = EventsOptionsBuilder::new().filters(&filters).build();
                engine
                    .docker
                    .events(Some(options))
                    .map(|item| item.map(engine_event).map_err(docker_error))
                    .boxed()
            }
            Err(error) => futures_util::stream::iter([Err(error)]).boxed(),
        })
        .boxed()
    }
}

/// One event as the follower reads it.
pub(crate) fn engine_event(message: bollard::models::EventMessage) -> EngineEvent {
    let actor = message.actor.unwrap_or_default();
    EngineEvent {
        action: message.action.unwrap_or_default(),
        name: actor
            .attributes
            .as_ref()
            .and_then(|a| a.get("name").cloned())
            .unwrap_or_default(),
        id: actor.id.unwrap_or_default(),
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
    fn the_engine_is_identified_by_its_components() {
        // Debian 12's Podman 4.3.1 and Docker 20.10.24, as they answer.
        let podman: bollard::models::SystemVersion = serde_json::from_value(serde_json::json!({
            "Platform": {"Name": "linux/amd64/debian-12"},
            "Components": [
                {"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1"}},
                {"Name": "Conmon", "Version": "conmon version 2.1.6, commit: unknown", "Details": {}},
                {"Name": "OCI Runtime (runc)", "Version": "runc version 1.1.5+ds1", "Details": {}}
            ],
            "Version": "4.3.1", "ApiVersion": "1.41", "MinAPIVersion": "1.24"
        }))
        .expect("a version");
        let podman_info: bollard::models::SystemInfo = serde_json::from_value(serde_json::json!({
            "Driver": "vfs", "DriverStatus": [], "DockerRootDir": "/var/lib/containers/storage",
            "ID": "9b6530bd-c71b-4eab-985e-6563c25105f8", "SystemTime": "2026-12-02T02:08:47.695831683Z"
        }))
        .expect("an info");
        let facts = engine_facts(&podman, &podman_info);
        assert_eq!(
            facts.identity,
            EngineIdentity {
                implementation: Implementation::Podman,
                version: "4.3.1".into(),
                api_version: Some("1.41".into()),
                store: ImageStore::ContainersStorage {
                    driver: "vfs".into()
                },
            }
        );
        assert_eq!(facts.now, Some(1_796_177_327));
        let docker: bollard::models::SystemVersion = serde_json::from_value(serde_json::json!({
            "Components": [
                {"Name": "Engine", "Version": "20.10.24+dfsg1", "Details": {}},
                {"Name": "containerd", "Version": "1.6.20~ds1", "Details": {}}
            ],
            "Version": "20.10.24+dfsg1", "ApiVersion": "1.41"
        }))
        .expect("a version");
        let docker_info: bollard::models::SystemInfo = serde_json::from_value(serde_json::json!({
            "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]
        }))
        .expect("an info");
        let facts = engine_facts(&docker, &docker_info);
        assert_eq!(facts.identity.implementation, Implementation::Docker);
        assert_eq!(
            facts.identity.store,
            ImageStore::Containerd {
                snapshotter: "overlayfs".into()
            }
        );
        assert_eq!(facts.now, None);
        // Podman's status never names the containerd store, whatever it says.
        assert_eq!(
            image_store(
                &Implementation::Podman,
                Some("overlay"),
                Some(&[vec![
                    "driver-type".into(),
                    "io.containerd.snapshotter.v1".into()
                ]])
            ),
            ImageStore::ContainersStorage {
                driver: "overlay".into()
            }
        );
    }

    #[test]
    fn podman_event_filters_leave_out_the_labels_its_image_events_lack() {
        let labels = vec!["cascade.managed=true".to_string()];
        let docker = event_filters(&Implementation::Docker, &labels);
        assert_eq!(docker.get("label"), Some(&labels));
        let podman = event_filters(&Implementation::Podman, &labels);
        assert_eq!(podman.get("label"), None);
        for filters in [docker, podman] {
            assert!(filters["event"].contains(&"commit".to_string()));
            assert!(filters["event"].contains(&"loadfromarchive".to_string()));
        }
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
                {"Id": "c3", "ImageID": "sha256:base"},
                // As Podman lists one: no name, the reference in `Source`.
                {"Id": "c4", "ImageID": "sha256:base", "Mounts": [
                    {"Type": "image", "Source": "sha256:def", "Destination": "/m",
                     "Mode": "", "RW": false, "Propagation": ""}
                ]}
            ]))
            .expect("a listing");
        assert_eq!(
            mounted_images(&containers),
            BTreeSet::from([
                "sha256:abc".to_string(),
                "sha256:def".to_string(),
                "snap:1".to_string()
            ])
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
        for bad in [
            "",
            "yesterday",
            "2026-11-29T08:00:00+0200",
            "2026-11-29",
            // The zone's cut inside a character: no time, not a panic.
            "éaaaaa",
            "2026-11-29T08:00:00é+0200",
            "+é:00",
        ] {
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
