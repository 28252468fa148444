//! The few Docker calls a sweep makes, behind a trait so unit tests can use
//! a fake engine; the real one is `cascade-engine`'s.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use cascade_classify::{Disposition, classify_status};

use crate::engine::EngineFacts;

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

/// What the engine answered to a removal that succeeded: the IDs it
/// deleted and the names it untagged, as `DELETE /images/{name}` lists them
/// (Docker with `sha256:`, Podman without).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalAnswer {
    pub deleted: Vec<String>,
    pub untagged: Vec<String>,
}

impl RemovalAnswer {
    /// True when the engine says it deleted image `id` (either spelling).
    pub fn deleted(&self, id: &str) -> bool {
        let id = crate::parents::bare(id);
        self.deleted.iter().any(|d| crate::parents::bare(d) == id)
    }
}

/// The engine calls a sweep needs. Implementations do no filtering of their
/// own: the sweep re-checks everything it is given. `[ref:scope_invariant]`
#[async_trait]
pub trait DockerImages: Send + Sync + 'static {
    /// `GET /version` and `GET /info`: which engine this is, its image
    /// store and its clock. Asked once at the start of every pass: what a
    /// pass may remove on depends on it (`[ref:proven_engines]`).
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError>;

    /// `GET /images/json` with exactly these filters.
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError>;

    /// `GET /images/json?all=true`, no filter: every image, intermediates
    /// included, for engines that delete a removed image's parents
    /// (`parents.rs`).
    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError>;

    /// `GET /images/{id}/json`: one image as it is now, `None` when it is
    /// gone. A plan explains the parents of listed images with it.
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError>;

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

    /// `POST /images/{id}/tag`: gives image `id` the name `repository:tag`
    /// (the janitor's removal name, `[ref:removal_name]`).
    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError>;

    /// `DELETE /images/{name}?force=false&noprune=true`: never its untagged
    /// parents where the engine honours `noprune`, never an image a
    /// container uses. `name` is the image's removal name, or on the
    /// containerd store its dangling name (`moby-dangling@<digest>`).
    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError>;
}
