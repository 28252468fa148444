//! The few Docker calls a sweep makes, behind a trait so unit tests can use
//! a fake engine and the real one is bollard.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use cascade_classify::{Disposition, classify, classify_status};

/// One image as `GET /images/json` lists it: only what a sweep looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub id: String,
    /// Seconds since the Unix epoch (the config's `created`).
    pub created: i64,
    /// Bytes, as the engine reports them (shared layers counted in full).
    pub size: i64,
    pub labels: HashMap<String, String>,
    pub repo_tags: Vec<String>,
    /// The image it was built or committed on, if the engine knows it.
    pub parent_id: String,
}

impl From<bollard::models::ImageSummary> for ListedImage {
    fn from(summary: bollard::models::ImageSummary) -> ListedImage {
        ListedImage {
            id: summary.id,
            created: summary.created,
            size: summary.size,
            labels: summary.labels,
            repo_tags: summary.repo_tags,
            parent_id: summary.parent_id,
        }
    }
}

/// A failed Docker call, already classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DockerError {
    pub disposition: Disposition,
    /// The HTTP status, when the engine answered at all.
    pub status: Option<u16>,
    pub message: String,
}

impl DockerError {
    /// A failure the engine answered with an HTTP status.
    pub fn status(status: u16, message: impl Into<String>) -> DockerError {
        DockerError {
            disposition: classify_status(status),
            status: Some(status),
            message: message.into(),
        }
    }

    /// The call did not finish within its deadline.
    pub fn timed_out(what: &str, after: std::time::Duration) -> DockerError {
        DockerError {
            disposition: Disposition::Transient,
            status: None,
            message: format!(
                "{what} timed out after {}",
                humantime::format_duration(after)
            ),
        }
    }
}

impl From<bollard::errors::Error> for DockerError {
    fn from(error: bollard::errors::Error) -> DockerError {
        let status = match &error {
            bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
                Some(*status_code)
            }
            _ => None,
        };
        DockerError {
            disposition: classify(&error),
            status,
            message: error.to_string(),
        }
    }
}

/// The engine calls a sweep needs. Implementations do no filtering of their
/// own: the sweep re-checks everything it is given. `[ref:scope_invariant]`
#[async_trait]
pub trait DockerImages: Send + Sync + 'static {
    /// `GET /images/json` with exactly these filters.
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError>;

    /// `GET /images/{id}/json`: one image, when it exists. Only for
    /// explaining a plan (the parents of listed images); an implementation
    /// that cannot inspect answers `None`.
    async fn inspect_image(&self, _id: &str) -> Result<Option<ListedImage>, DockerError> {
        Ok(None)
    }

    /// Image IDs used by any container, running or not.
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError>;

    /// The engine's data root, when this process sees the same folder
    /// (`crate::disk::visible_data_root`); `None` when it does not or
    /// cannot tell. Used only to measure reclaimed space.
    async fn local_data_root(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// `DELETE /images/{id}?force=false&noprune=true`: exactly this image,
    /// never its untagged parents, never a used one.
    async fn remove_image(&self, id: &str) -> Result<(), DockerError>;
}

#[async_trait]
impl DockerImages for Docker {
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        let options = ListImagesOptionsBuilder::new()
            .all(false)
            .filters(filters)
            .build();
        let images = Docker::list_images(self, Some(options)).await?;
        Ok(images.into_iter().map(ListedImage::from).collect())
    }

    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        let image = match Docker::inspect_image(self, id).await {
            Ok(image) => image,
            Err(e) => {
                let e = DockerError::from(e);
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

    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let containers = self.list_containers(Some(options)).await?;
        Ok(containers.into_iter().filter_map(|c| c.image_id).collect())
    }

    async fn local_data_root(&self) -> Option<std::path::PathBuf> {
        let info = self.info().await.ok()?;
        let root = std::path::PathBuf::from(info.docker_root_dir?);
        match crate::disk::visible_data_root(&root, info.driver.as_deref(), info.id.as_deref()) {
            Ok(()) => Some(root),
            Err(why) => {
                tracing::debug!(%why, "engine data root not visible; reclaimed space is the sum of image sizes");
                None
            }
        }
    }

    async fn remove_image(&self, id: &str) -> Result<(), DockerError> {
        // noprune=true: the default would also delete untagged parents, with
        // or without our label. force=false: never an image a container uses.
        let options = RemoveImageOptionsBuilder::new()
            .force(false)
            .noprune(true)
            .build();
        Docker::remove_image(self, id, Some(options), None).await?;
        Ok(())
    }
}
