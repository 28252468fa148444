//! The few Docker calls a sweep makes, behind a trait so unit tests can use
//! a fake engine; the real one is `cascade-engine`'s.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use cascade_classify::{Disposition, classify_status};

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

    /// The engine's clock now, in seconds since the Unix epoch (`GET /info`
    /// `SystemTime`), so an image's age is measured where it was created.
    /// `None` when the engine does not say; a sweep then uses this host's.
    async fn engine_time(&self) -> Result<Option<i64>, DockerError> {
        Ok(None)
    }

    /// Image IDs used by any container, running or not.
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError>;

    /// The engine's data root, when this process sees the same folder
    /// (`cascade_engine::disk::visible_data_root`); `None` when it does not or
    /// cannot tell. Used only to measure reclaimed space.
    async fn local_data_root(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// `DELETE /images/{id}?force=false&noprune=true`: exactly this image,
    /// never its untagged parents, never a used one.
    async fn remove_image(&self, id: &str) -> Result<(), DockerError>;
}
