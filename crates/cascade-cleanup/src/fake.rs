//! The one fake engine for unit tests, in this crate and every crate that
//! tests against a sweep (dev-dependency with feature `test-support`).
//!
//! [`FakeDocker`] deliberately ignores the filters it is given (and records
//! them), like an engine that mis-applies them, so every test also exercises
//! our own verification. `[ref:scope_invariant]` [`FakeEvents`] is an event
//! stream the test feeds by hand. Both record what was asked of them and
//! when, on tokio's clock, so paused-time tests can assert exact instants.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use crate::docker::{DockerError, DockerImages, ListedImage, RemovalAnswer};
use crate::engine::{DANGLING_PREFIX, EngineFacts, EngineIdentity, ImageStore, Implementation};
use crate::events::{EngineEvent, EngineEvents};

#[derive(Debug, Default)]
pub struct FakeState {
    pub images: Vec<ListedImage>,
    /// What `local_data_root` answers.
    pub data_root: Option<std::path::PathBuf>,
    /// Returned, after `images`, only by a listing without a `dangling`
    /// filter (a real engine then also returns tagged images).
    pub tagged: Vec<ListedImage>,
    /// What `inspect_image` finds (any image listed is found too), and
    /// what `list_all_images` adds to the listed ones: parents, intermediates.
    pub inspectable: Vec<ListedImage>,
    pub used: HashSet<String>,
    /// What `engine_time` answers (`None`: the engine does not say).
    pub engine_time: Option<i64>,
    pub remove_errors: HashMap<String, DockerError>,
    pub list_error: Option<DockerError>,
    pub list_delay: Duration,
    pub remove_delay: Duration,
    /// Added to a removal's latency for every other removal in flight when
    /// it arrives: an engine that serialises deletes, whose latency (ours
    /// and its other clients') grows with our load.
    pub remove_load_delay: Duration,
    /// From the removal call with this index (0-based) on, every removal
    /// takes this long instead of `remove_delay`: the engine got slower in
    /// the middle of a pass (another client's load).
    pub slow_from: Option<(usize, Duration)>,
    /// When each removal call arrived (tokio's clock).
    pub removes_started: Vec<Instant>,
    /// Removals never answer.
    pub remove_hangs: bool,
    /// The engine uses the containerd image store (else classic, `vfs`).
    pub containerd: bool,
    /// Which engine the fake says it is; `None`: Docker 28.5.2 with the
    /// store `containerd` picks.
    pub identity: Option<EngineIdentity>,
    /// What `engine_facts` fails with, if set.
    pub facts_error: Option<DockerError>,
    /// Like Podman before 4.6: removing an image also deletes its parent
    /// when the parent has no name and no other child, and so on up.
    pub prunes_parents: bool,
    /// Every `tag_image` call: (image ID, `repository:tag`).
    pub tag_calls: Vec<(String, String)>,
    /// What a `tag_image` of this image ID fails with.
    pub tag_errors: HashMap<String, DockerError>,
    /// What each listing with a `reference` filter returned, in call order
    /// (they are not counted in `lists`: a pass is one candidate listing).
    pub references_seen: Vec<Vec<String>>,
    /// Applied right after the next listing answers: (image ID, tag). The
    /// image is tagged again between the listing and its removal.
    pub tag_after_listing: Vec<(String, String)>,
    /// `inspect_image` calls, by ID.
    pub inspected: Vec<String>,
    /// The names `remove_image` was called with.
    pub removal_names: Vec<String>,
    /// The filters of every listing, in call order.
    pub filters_seen: Vec<HashMap<String, Vec<String>>>,
    /// When each listing was asked for (tokio's clock).
    pub lists_started: Vec<Instant>,
    pub removed: Vec<String>,
    pub remove_calls: usize,
    pub lists_in_flight: usize,
    pub max_lists_in_flight: usize,
    pub removes_in_flight: usize,
    pub max_removes_in_flight: usize,
}

#[derive(Debug, Default)]
pub struct FakeDocker {
    pub state: Mutex<FakeState>,
}

impl FakeDocker {
    pub fn with_images(images: Vec<ListedImage>) -> FakeDocker {
        FakeDocker {
            state: Mutex::new(FakeState {
                images,
                ..FakeState::default()
            }),
        }
    }

    pub fn edit<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// How many candidate listings were asked for: one per pass.
    pub fn lists(&self) -> usize {
        self.edit(|s| s.filters_seen.len())
    }

    /// Image IDs the fake still holds, in any of its sets.
    pub fn present(&self) -> Vec<String> {
        let mut ids = self.edit(|s| {
            s.images
                .iter()
                .chain(&s.tagged)
                .chain(&s.inspectable)
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
        });
        ids.sort();
        ids
    }

    /// When each listing (so each pass) started, as offsets from `origin`.
    pub fn lists_started_since(&self, origin: Instant) -> Vec<Duration> {
        self.edit(|s| s.lists_started.iter().map(|t| *t - origin).collect())
    }

    pub fn removed(&self) -> Vec<String> {
        let mut r = self.edit(|s| s.removed.clone());
        r.sort();
        r
    }
}

/// Seconds since the Unix epoch, as `ListedImage::created` counts them.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A labelled dangling image created an hour ago.
pub fn ours(id: &str) -> ListedImage {
    image(id, &[("cascade.managed", "true")], &["<none>:<none>"], 3600)
}

/// An image `age_secs` old with these labels and tags, 1000 bytes.
pub fn image(id: &str, labels: &[(&str, &str)], tags: &[&str], age_secs: i64) -> ListedImage {
    ListedImage {
        id: id.to_string(),
        created: now() - age_secs,
        size: 1000,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
        parent_id: String::new(),
    }
}

impl FakeState {
    fn identity(&self) -> EngineIdentity {
        self.identity.clone().unwrap_or_else(|| EngineIdentity {
            implementation: Implementation::Docker,
            version: "28.5.2".into(),
            api_version: Some("1.51".into()),
            store: if self.containerd {
                ImageStore::Containerd {
                    snapshotter: "overlayfs".into(),
                }
            } else {
                ImageStore::Classic {
                    driver: "vfs".into(),
                }
            },
        })
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut ListedImage> {
        self.images
            .iter_mut()
            .chain(self.tagged.iter_mut())
            .chain(self.inspectable.iter_mut())
    }

    fn find(&self, id: &str) -> Option<&ListedImage> {
        self.images
            .iter()
            .chain(&self.tagged)
            .chain(&self.inspectable)
            .find(|i| i.id == id)
    }

    fn holding_name(&self, name: &str) -> Option<String> {
        self.images
            .iter()
            .chain(&self.tagged)
            .chain(&self.inspectable)
            .find(|i| i.repo_tags.iter().any(|t| t == name))
            .map(|i| i.id.clone())
    }

    /// Deletes `id` from every set; true when it was there.
    fn delete(&mut self, id: &str) -> bool {
        let before = self.images.len() + self.tagged.len() + self.inspectable.len();
        self.images.retain(|i| i.id != id);
        self.tagged.retain(|i| i.id != id);
        self.inspectable.retain(|i| i.id != id);
        before != self.images.len() + self.tagged.len() + self.inspectable.len()
    }

    /// Podman 4.3's recursive parent pruning after `id` was deleted.
    fn prune_parents_of(&mut self, mut parent: String, deleted: &mut Vec<String>) {
        let bare = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
        while !parent.is_empty() {
            let Some(image) = self.find(&parent).or_else(|| {
                let p = bare(&parent);
                self.images
                    .iter()
                    .chain(&self.tagged)
                    .chain(&self.inspectable)
                    .find(|i| bare(&i.id) == p)
            }) else {
                return;
            };
            let id = image.id.clone();
            let next = image.parent_id.clone();
            let unnamed = image.repo_tags.iter().all(|t| t == "<none>:<none>");
            let has_child = self
                .images
                .iter()
                .chain(&self.tagged)
                .chain(&self.inspectable)
                .any(|i| !i.parent_id.is_empty() && bare(&i.parent_id) == bare(&id));
            if !unnamed || has_child || self.used.contains(&id) {
                return;
            }
            self.delete(&id);
            self.removed.push(id.clone());
            deleted.push(bare(&id));
            parent = next;
        }
    }
}

#[async_trait]
impl DockerImages for FakeDocker {
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        self.edit(|s| match &s.facts_error {
            Some(error) => Err(error.clone()),
            None => Ok(EngineFacts {
                identity: s.identity(),
                now: s.engine_time,
            }),
        })
    }

    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        if let Some(references) = filters.get("reference") {
            // The removal-name listing: every image holding a name under
            // that repository, as an engine's `reference` filter returns it.
            return self.edit(|s| {
                s.references_seen.push(references.clone());
                match &s.list_error {
                    Some(e) => Err(e.clone()),
                    None => Ok(s
                        .images
                        .iter()
                        .chain(&s.tagged)
                        .chain(&s.inspectable)
                        .filter(|i| {
                            i.repo_tags
                                .iter()
                                .any(|t| references.iter().any(|r| t.starts_with(&format!("{r}:"))))
                        })
                        .cloned()
                        .collect()),
                }
            });
        }
        let with_tagged = !filters.contains_key("dangling");
        let delay = self.edit(|s| {
            s.filters_seen.push(filters.clone());
            s.lists_started.push(Instant::now());
            s.lists_in_flight += 1;
            s.max_lists_in_flight = s.max_lists_in_flight.max(s.lists_in_flight);
            s.list_delay
        });
        tokio::time::sleep(delay).await;
        self.edit(|s| {
            s.lists_in_flight -= 1;
            let listing = match &s.list_error {
                Some(e) => Err(e.clone()),
                None if with_tagged => Ok(s.images.iter().chain(&s.tagged).cloned().collect()),
                None => Ok(s.images.clone()),
            };
            for (id, tag) in std::mem::take(&mut s.tag_after_listing) {
                if let Some(image) = s.images.iter_mut().find(|i| i.id == id) {
                    image.repo_tags.retain(|t| t != "<none>:<none>");
                    image.repo_tags.push(tag);
                }
            }
            listing
        })
    }

    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.edit(|s| match &s.list_error {
            Some(e) => Err(e.clone()),
            None => Ok(s
                .images
                .iter()
                .chain(&s.tagged)
                .chain(&s.inspectable)
                .cloned()
                .collect()),
        })
    }

    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        Ok(self.edit(|s| {
            s.inspected.push(id.to_string());
            s.find(id).cloned()
        }))
    }

    async fn images_used_by_containers(&self) -> Result<HashSet<String>, DockerError> {
        Ok(self.edit(|s| s.used.clone()))
    }

    async fn local_data_root(&self, _image: &str) -> Option<std::path::PathBuf> {
        self.edit(|s| s.data_root.clone())
    }

    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        self.edit(|s| {
            let name = format!("{repository}:{tag}");
            s.tag_calls.push((id.to_string(), name.clone()));
            if let Some(error) = s.tag_errors.get(id) {
                return Err(error.clone());
            }
            // A name moves to the image it is given to.
            for image in s.all_mut() {
                image.repo_tags.retain(|t| *t != name);
            }
            let Some(image) = s.all_mut().find(|i| i.id == id) else {
                return Err(DockerError::status(404, format!("No such image: {id}")));
            };
            image.repo_tags.retain(|t| t != "<none>:<none>");
            image.repo_tags.push(name);
            Ok(())
        })
    }

    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError> {
        let (delay, hangs) = self.edit(|s| {
            s.removal_names.push(name.to_string());
            s.removes_started.push(Instant::now());
            let delay = match s.slow_from {
                Some((from, slow)) if s.remove_calls >= from => slow,
                _ => s.remove_delay,
            };
            let others = u32::try_from(s.removes_in_flight).unwrap_or(u32::MAX);
            s.remove_calls += 1;
            s.removes_in_flight += 1;
            s.max_removes_in_flight = s.max_removes_in_flight.max(s.removes_in_flight);
            (delay + s.remove_load_delay * others, s.remove_hangs)
        });
        if hangs {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(delay).await;
        self.edit(|s| {
            s.removes_in_flight -= 1;
            // By name (a removal name): the image holding it, deleted only
            // while that name is its only one, like a real engine.
            let (id, by_name) = if let Some(digest) = name.strip_prefix(DANGLING_PREFIX) {
                // The containerd store's dangling name resolves only while
                // the image is untagged.
                if s.images
                    .iter()
                    .any(|i| i.id == digest && !cascade_scope::is_untagged(&i.id, &i.repo_tags))
                {
                    return Err(DockerError::status(404, format!("No such image: {name}")));
                }
                (digest.to_string(), false)
            } else if name.contains(':') && !name.starts_with("sha256:") {
                match s.holding_name(name) {
                    Some(id) => (id, true),
                    None => {
                        return Err(DockerError::status(404, format!("No such image: {name}")));
                    }
                }
            } else {
                (name.to_string(), false)
            };
            if let Some(e) = s.remove_errors.get(&id) {
                return Err(e.clone());
            }
            if by_name {
                let others = s.find(&id).is_some_and(|i| {
                    i.repo_tags
                        .iter()
                        .any(|t| t != name && t != "<none>:<none>")
                });
                if others {
                    for image in s.all_mut().filter(|i| i.id == id) {
                        image.repo_tags.retain(|t| t != name);
                    }
                    return Ok(RemovalAnswer {
                        deleted: Vec::new(),
                        untagged: vec![name.to_string()],
                    });
                }
            }
            if s.used.contains(&id) {
                return Err(DockerError::status(
                    409,
                    "image is being used by stopped container",
                ));
            }
            let parent = s.find(&id).map(|i| i.parent_id.clone()).unwrap_or_default();
            if !s.delete(&id) {
                return Err(DockerError::status(404, format!("No such image: {id}")));
            }
            s.removed.push(id.clone());
            let mut deleted = vec![id];
            if s.prunes_parents {
                s.prune_parents_of(parent, &mut deleted);
            }
            Ok(RemovalAnswer {
                deleted,
                untagged: if by_name {
                    vec![name.to_string()]
                } else {
                    Vec::new()
                },
            })
        })
    }
}

type EventSender = UnboundedSender<Result<EngineEvent, DockerError>>;
type EventReceiver = UnboundedReceiver<Result<EngineEvent, DockerError>>;

/// Events sent through a channel; each subscription takes the stream the
/// test queued for it (oldest first), and records when it subscribed. With
/// nothing queued, a subscription fails at once, like an engine that is down.
#[derive(Debug, Default)]
pub struct FakeEvents {
    queued: Mutex<Vec<EventReceiver>>,
    subscribed_at: Mutex<Vec<Instant>>,
    labels_seen: Mutex<Vec<Vec<String>>>,
}

impl FakeEvents {
    /// Queues a stream for the next subscription; events sent on the
    /// returned sender flow to it, and dropping the sender ends it.
    pub fn queue(&self) -> EventSender {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.queued.lock().expect("queue").insert(0, rx);
        tx
    }

    /// When each subscription was made (tokio's clock).
    pub fn subscribed_at(&self) -> Vec<Instant> {
        self.subscribed_at.lock().expect("subscriptions").clone()
    }

    /// The labels each subscription asked for.
    pub fn labels_seen(&self) -> Vec<Vec<String>> {
        self.labels_seen.lock().expect("labels").clone()
    }
}

impl EngineEvents for FakeEvents {
    fn subscribe(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
        self.subscribed_at
            .lock()
            .expect("subscriptions")
            .push(Instant::now());
        self.labels_seen
            .lock()
            .expect("labels")
            .push(labels.to_vec());
        match self.queued.lock().expect("queue").pop() {
            Some(mut rx) => futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
            None => {
                futures_util::stream::iter([Err(DockerError::status(500, "connection refused"))])
                    .boxed()
            }
        }
    }
}

/// An event that can orphan a labelled image.
pub fn untag() -> Result<EngineEvent, DockerError> {
    Ok(EngineEvent {
        action: "untag".into(),
        id: "sha256:x".into(),
        name: String::new(),
    })
}
