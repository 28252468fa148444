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

/// How the engine stores images. It decides how a removal is kept from
/// taking an image that was tagged again after the pass listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStore {
    /// The graph-driver store (`overlay2`, `vfs`, ...): it has no
    /// conditional delete, so the sweep inspects each image again right
    /// before its removal.
    Classic { driver: String },
    /// The containerd image store (Docker 24+ with the
    /// `containerd-snapshotter` feature, the default of new Docker 29
    /// installs): a dangling image is also named `moby-dangling@<digest>`,
    /// and removing it by that name fails with 404 once it is tagged again.
    Containerd { snapshotter: String },
}

impl ImageStore {
    /// The name a removal of the listed image `id` is sent with:
    /// the dangling name on the containerd store, else the ID itself.
    pub fn removal_name(&self, id: &str) -> String {
        match self {
            ImageStore::Classic { .. } => id.to_string(),
            ImageStore::Containerd { .. } => format!("{DANGLING_PREFIX}{id}"),
        }
    }

    /// `classic (vfs)` or `containerd (overlayfs snapshotter)`.
    pub fn describe(&self) -> String {
        match self {
            ImageStore::Classic { driver } => format!("classic ({driver} graph driver)"),
            ImageStore::Containerd { snapshotter } => {
                format!("containerd ({snapshotter} snapshotter)")
            }
        }
    }
}

/// What the containerd store names a dangling image, before its digest.
pub const DANGLING_PREFIX: &str = "moby-dangling@";

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

    /// `GET /images/{id}/json`: one image as it is now, `None` when it is
    /// gone. A plan explains the parents of listed images with it, and on
    /// the classic store a pass re-checks each image with it right before
    /// removing it.
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError>;

    /// Which image store the engine uses (`GET /info`). Asked once per pass
    /// that removes something.
    async fn image_store(&self) -> Result<ImageStore, DockerError>;

    /// The engine's clock now, in seconds since the Unix epoch (`GET /info`
    /// `SystemTime`), so an image's age is measured where it was created.
    /// `None` when the engine does not say; a sweep then uses this host's.
    async fn engine_time(&self) -> Result<Option<i64>, DockerError> {
        Ok(None)
    }

    /// Image IDs used by any container, running or not.
    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError>;

    /// The engine's data root, when this process sees the same folder
    /// (`cascade_engine::disk::visible_data_root`; `image`, one the engine
    /// holds, is the evidence on engines without an `engine-id` file);
    /// `None` when it does not or cannot tell. Used only to measure
    /// reclaimed space.
    async fn local_data_root(&self, _image: &str) -> Option<std::path::PathBuf> {
        None
    }

    /// `DELETE /images/{name}?force=false&noprune=true`: exactly this image,
    /// never its untagged parents, never a used one. `name` is the ID, or on
    /// the containerd store the dangling name ([`ImageStore::removal_name`]).
    async fn remove_image(&self, name: &str) -> Result<(), DockerError>;
}
