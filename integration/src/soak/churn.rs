//! The churn: what a router host does to its engine all day, at a set
//! rate, through the engine API over its unix socket.
//!
//! - re-commits labelled snapshot tags (`cascade-snapshot-p<P>-w<W>:latest`,
//!   `cascade.managed=true`), so dangling images appear all the time;
//! - commits unlabelled bystanders and look-alikes (`cascade.managed=True`,
//!   `Cascade.Managed=true`, `cascade.managed=false`) to tags of their own,
//!   so their dangling predecessors pile up (the oldest are deleted by the
//!   churn itself past a cap, so the engine holds a steady number);
//! - tags labelled dangling images again;
//! - creates containers on labelled dangling images, as their image and,
//!   where the engine has them, as image mounts, and removes them after a
//!   few seconds;
//! - builds images `FROM` a labelled base, then moves the base's tag.
//!
//! Every image it makes and every protection it gives one goes into the
//! [`Ledger`] with the time its call was sent and answered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, RemoveContainerOptions, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::TryStreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, Reason};
use crate::engine::{Family, MatrixEngine, Store};
use crate::fixtures::{self, ImageSpec};

/// The label the janitor removes by, and the look-alikes it must not.
const OURS: (&str, &str) = ("cascade.managed", "true");
const LOOK_ALIKES: [(&str, &str); 3] = [
    ("cascade.managed", "True"),
    ("Cascade.Managed", "true"),
    ("cascade.managed", "false"),
];
/// The image every commit is made from, and what mounting containers run.
const WORKBENCH: &str = "soak-workbench:1";
const PROJECTS: usize = 4;
const WORKITEMS: usize = 5;
const BYSTANDER_TAGS: usize = 8;
const BASES: usize = 3;
/// Dangling bystanders kept before the churn deletes the oldest.
const BYSTANDER_CAP: usize = 150;
/// Images tagged again kept before the churn deletes the oldest tag.
const RESCUED_CAP: usize = 40;
/// Operations in flight at once.
const IN_FLIGHT: usize = 4;

/// What the churn did, by kind.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChurnStats {
    pub ops: u64,
    pub op_errors: u64,
    /// The first error of each kind, to say what failed.
    pub first_errors: Vec<String>,
    pub commits: u64,
    pub made_dangling: u64,
    pub bystanders: u64,
    pub retags_on_dangling: u64,
    pub creates_on_dangling: u64,
    pub mounts_on_dangling: u64,
    pub builds: u64,
    pub containers_removed: u64,
    /// Calls on a dangling image that found it gone (404): the janitor
    /// was first.
    pub found_gone: u64,
    /// Images an engine made for a call it died under, found afterwards.
    pub strays: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Snapshot,
    Bystander,
    TagAgain,
    Use,
    Mount,
    Build,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Snapshot => "snapshot",
            Op::Bystander => "bystander",
            Op::TagAgain => "tag-again",
            Op::Use => "container",
            Op::Mount => "mount",
            Op::Build => "build",
        }
    }
}

#[derive(Debug)]
struct Held {
    container: String,
    image: String,
    reason: Reason,
    until: tokio::time::Instant,
}

/// A tag whose move failed without an answer: whether its images carry
/// our label, the protection they get, when the call was sent.
type Uncertain = (bool, Option<Reason>, SystemTime);

#[derive(Debug, Default)]
struct State {
    /// Our tag -> the image it is on.
    tags: HashMap<String, String>,
    /// Tags an operation is moving now.
    busy: HashSet<String>,
    held: Vec<Held>,
    /// (tag, image) of images tagged again, oldest first.
    rescued: VecDeque<(String, String)>,
    /// Dangling bystanders, oldest first.
    bystanders: VecDeque<String>,
    /// Tag -> (labelled, the protection its images get, when the failed
    /// call was sent), for [`Churn::resolve_uncertain`].
    uncertain: HashMap<String, Uncertain>,
    errors_seen: HashSet<&'static str>,
}

/// A small deterministic generator (xorshift64*): the soak prints its seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The churn on one engine.
#[derive(Debug)]
pub struct Churn {
    docker: Docker,
    ledger: Arc<Mutex<Ledger>>,
    stats: Arc<Mutex<ChurnStats>>,
    state: Mutex<State>,
    rng: Mutex<Rng>,
    workbench: String,
    /// The engine has image mounts (Docker 28+, Podman).
    mounts: bool,
    /// An image built `FROM` another is its child to the engine (classic
    /// store, Podman), so the base is not dangling while the child lives.
    parents: bool,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP status of an engine error, if it is one.
pub fn status_of(error: &anyhow::Error) -> Option<u16> {
    error
        .chain()
        .find_map(|e| match e.downcast_ref::<bollard::errors::Error>() {
            Some(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
                Some(*status_code)
            }
            _ => None,
        })
}

impl Churn {
    /// Loads the workbench image, creates the container every commit is
    /// made from, and makes the first snapshot and base of every tag.
    pub async fn setup(
        docker: Docker,
        engine: MatrixEngine,
        ledger: Arc<Mutex<Ledger>>,
        seed: u64,
    ) -> Result<Churn> {
        let loaded = fixtures::load(
            &docker,
            &[ImageSpec::new("soak-workbench").tagged(WORKBENCH)],
        )
        .await
        .context("loading the workbench image")?;
        let base = loaded["soak-workbench"].clone();
        let workbench = fixtures::create_container(&docker, WORKBENCH).await?;
        let major: u32 = engine
            .version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let churn = Churn {
            docker,
            ledger,
            stats: Arc::default(),
            state: Mutex::default(),
            rng: Mutex::new(Rng::new(seed)),
            workbench,
            mounts: engine.family == Family::Podman || major >= 28,
            parents: engine.store != Store::Containerd,
        };
        {
            let now = SystemTime::now();
            let mut ledger = locked(&churn.ledger);
            ledger.add(&base, false, now);
            ledger.protect(&base, Reason::Tagged, now, now);
        }
        // A commit must come back under the ID the engine lists, or the
        // auditor cannot follow it.
        let first = churn.snapshot(0).await?;
        let listed = crate::engine::all_image_ids(&churn.docker).await?;
        if !listed.contains(&first) {
            bail!(
                "a commit answered {first}, which the engine does not list; the soak cannot follow its images"
            );
        }
        {
            use futures_util::{FutureExt, StreamExt};
            let snapshots = (1..PROJECTS * WORKITEMS).map(|i| churn.snapshot(i).boxed_local());
            let bases = (0..BASES).map(|k| {
                let churn = &churn;
                async move { churn.commit_base(k).await.map(|()| String::new()) }.boxed_local()
            });
            let made: Vec<Result<String>> = futures_util::stream::iter(snapshots.chain(bases))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            for outcome in made {
                outcome?;
            }
        }
        locked(&churn.stats).ops = 0;
        Ok(churn)
    }

    pub fn stats(&self) -> ChurnStats {
        locked(&self.stats).clone()
    }

    pub fn has_mounts(&self) -> bool {
        self.mounts
    }

    /// Runs operations at `rate` per second until `cancel`.
    pub async fn run(self: Arc<Self>, rate: f64, cancel: CancellationToken) {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            while running.len() >= IN_FLIGHT {
                let _ = running.join_next().await;
            }
            while running.try_join_next().is_some() {}
            let churn = Arc::clone(&self);
            running.spawn(async move { churn.one().await });
        }
        while running.join_next().await.is_some() {}
    }

    /// One operation, chosen at random, plus the housekeeping due.
    async fn one(&self) {
        self.resolve_uncertain().await;
        self.expire_containers().await;
        let roll = locked(&self.rng).below(100);
        let op = match roll {
            0..35 => Op::Snapshot,
            35..50 => Op::Bystander,
            50..65 => Op::TagAgain,
            65..78 => Op::Use,
            78..88 if self.mounts => Op::Mount,
            78..88 => Op::Use,
            _ => Op::Build,
        };
        let outcome = match op {
            Op::Snapshot => {
                let i = locked(&self.rng).below(PROJECTS * WORKITEMS);
                self.snapshot(i).await.map(|_| ())
            }
            Op::Bystander => self.bystander().await,
            Op::TagAgain => self.tag_again().await,
            Op::Use => self.use_dangling(false).await,
            Op::Mount => self.use_dangling(true).await,
            Op::Build => self.build().await,
        };
        let first = outcome.is_err() && locked(&self.state).errors_seen.insert(op.name());
        let mut stats = locked(&self.stats);
        stats.ops += 1;
        if let Err(error) = outcome {
            stats.op_errors += 1;
            if first {
                stats.first_errors.push(format!("{}: {error:#}", op.name()));
            }
        }
    }

    /// Takes a tag for one operation; `None` when another holds it.
    fn claim(&self, tag: &str) -> Option<TagClaim<'_>> {
        locked(&self.state)
            .busy
            .insert(tag.to_string())
            .then(|| TagClaim {
                churn: self,
                tag: tag.to_string(),
            })
    }

    /// Commits the workbench to `repo:latest` with `labels`: the new image
    /// and its call's times. When the call fails without an answer (the
    /// engine died under it), the engine may have made the image and moved
    /// the tag all the same: the tag is resolved later
    /// ([`Churn::resolve_uncertain`]).
    async fn commit_to(
        &self,
        repo: &str,
        labels: &[(&str, &str)],
        kept: Option<Reason>,
    ) -> Result<(String, SystemTime, SystemTime)> {
        let sent = SystemTime::now();
        let committed =
            fixtures::commit(&self.docker, &self.workbench, repo, "latest", labels).await;
        let id = match committed {
            Ok(id) => id,
            Err(e) => {
                if status_of(&e).is_none() {
                    let labelled = labels.contains(&OURS);
                    locked(&self.state)
                        .uncertain
                        .insert(format!("{repo}:latest"), (labelled, kept, sent));
                    self.sync_unsettled();
                }
                return Err(e);
            }
        };
        let answered = SystemTime::now();
        locked(&self.stats).commits += 1;
        Ok((id, sent, answered))
    }

    /// Tags whose last move failed without an answer: whatever image each
    /// now names is recorded as made by that call (and the image it left,
    /// dangling), so neither is mistaken for a loss.
    async fn resolve_uncertain(&self) {
        if locked(&self.state).uncertain.is_empty() {
            return;
        }
        let tags: Vec<(String, Uncertain)> = locked(&self.state)
            .uncertain
            .iter()
            .map(|(t, v)| (t.clone(), *v))
            .collect();
        let mut earliest: Option<SystemTime> = None;
        for (tag, (labelled, kept, sent)) in tags {
            let Some(_claim) = self.claim(&tag) else {
                continue;
            };
            let Ok(image) = self.docker.inspect_image(&tag).await else {
                continue;
            };
            locked(&self.state).uncertain.remove(&tag);
            earliest = Some(earliest.map_or(sent, |e| e.min(sent)));
            let Some(id) = image.id.map(|id| fixtures::listed_id(&id)) else {
                continue;
            };
            let answered = SystemTime::now();
            let known = locked(&self.state).tags.get(&tag) == Some(&id);
            if known || locked(&self.ledger).contains(&id) {
                continue;
            }
            {
                let mut ledger = locked(&self.ledger);
                ledger.add(&id, labelled, sent);
                if let Some(reason) = kept {
                    ledger.protect(&id, reason, sent, answered);
                }
            }
            self.moved(&tag, &id, sent, answered);
        }
        if let Some(sent) = earliest {
            self.adopt_strays(sent).await;
        }
        self.sync_unsettled();
    }

    /// Tells the ledger how many tags are unresolved.
    fn sync_unsettled(&self) {
        let n = locked(&self.state).uncertain.len();
        locked(&self.ledger).unsettled = n;
    }

    /// Resolves what calls the engine died under left unknown, until
    /// nothing is or `limit` passed (the end of a soak, after the churn).
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !locked(&self.state).uncertain.is_empty() && tokio::time::Instant::now() < deadline {
            self.resolve_uncertain().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Images the engine made for a call that died without an answer and
    /// that no tag names (a commit killed between writing the image and
    /// moving the tag): recorded as made at `sent`, a look-alike or an
    /// unlabelled one protected as such, so the janitor's removal of a
    /// labelled one is not mistaken for a loss.
    async fn adopt_strays(&self, sent: SystemTime) {
        let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
            .all(true)
            .build();
        let Ok(images) = self.docker.list_images(Some(options)).await else {
            return;
        };
        let now = SystemTime::now();
        let mut ledger = locked(&self.ledger);
        for image in images {
            if ledger.contains(&image.id) {
                continue;
            }
            let label = |k: &str, v: &str| image.labels.get(k).is_some_and(|x| x == v);
            let labelled = label(OURS.0, OURS.1);
            let look_alike = LOOK_ALIKES.iter().any(|(k, v)| label(k, v));
            ledger.add(&image.id, labelled, sent);
            if look_alike {
                ledger.protect(&image.id, Reason::LookAlike, sent, now);
            } else if !labelled {
                ledger.protect(&image.id, Reason::Unlabelled, sent, now);
            }
            locked(&self.stats).strays += 1;
        }
    }

    /// Records that `tag` moved to `id` (made at `sent`, answered at
    /// `answered`); the image it left is dangling if it is labelled.
    fn moved(&self, tag: &str, id: &str, sent: SystemTime, answered: SystemTime) -> Option<String> {
        let previous = locked(&self.state)
            .tags
            .insert(tag.to_string(), id.to_string());
        let mut ledger = locked(&self.ledger);
        ledger.protect(id, Reason::Tagged, sent, answered);
        let previous = previous.filter(|p| p != id)?;
        ledger.release(&previous, Reason::Tagged, sent);
        if ledger.get(&previous).is_some_and(|e| e.labelled) {
            ledger.set_dangling(&previous);
            locked(&self.stats).made_dangling += 1;
        }
        Some(previous)
    }

    /// Re-commits snapshot tag `i`: the production leak.
    async fn snapshot(&self, i: usize) -> Result<String> {
        let tag = format!(
            "cascade-snapshot-p{}-w{}:latest",
            i / WORKITEMS,
            i % WORKITEMS
        );
        let Some(_claim) = self.claim(&tag) else {
            return Ok(String::new());
        };
        let repo = tag.trim_end_matches(":latest");
        let (id, sent, answered) = self.commit_to(repo, &[OURS], None).await?;
        locked(&self.ledger).add(&id, true, sent);
        self.moved(&tag, &id, sent, answered);
        Ok(id)
    }

    /// Commits an unlabelled image or a look-alike to a bystander tag; the
    /// one it replaces stays, dangling and out of scope, until the cap.
    async fn bystander(&self) -> Result<()> {
        let k = locked(&self.rng).below(BYSTANDER_TAGS);
        let tag = format!("soak-bystander-{k}:latest");
        let Some(_claim) = self.claim(&tag) else {
            return Ok(());
        };
        // Tags 0 and 4 unlabelled, the others one look-alike each.
        let (labels, reason): (Vec<(&str, &str)>, Reason) = match k % 4 {
            0 => (Vec::new(), Reason::Unlabelled),
            n => (vec![LOOK_ALIKES[n - 1]], Reason::LookAlike),
        };
        let (id, sent, answered) = self
            .commit_to(tag.trim_end_matches(":latest"), &labels, Some(reason))
            .await?;
        locked(&self.ledger).add(&id, false, sent);
        locked(&self.ledger).protect(&id, reason, sent, answered);
        locked(&self.stats).bystanders += 1;
        if let Some(previous) = self.moved(&tag, &id, sent, answered) {
            let oldest = {
                let mut state = locked(&self.state);
                state.bystanders.push_back(previous);
                if state.bystanders.len() > BYSTANDER_CAP {
                    state.bystanders.pop_front()
                } else {
                    None
                }
            };
            if let Some(oldest) = oldest {
                locked(&self.ledger).drop_image(&oldest, SystemTime::now());
                self.delete_image(&oldest).await?;
            }
        }
        Ok(())
    }

    /// A labelled dangling image the churn knows of, at random.
    fn pick_dangling(&self) -> Option<String> {
        let candidates = locked(&self.ledger).dangling_labelled();
        if candidates.is_empty() {
            return None;
        }
        let i = locked(&self.rng).below(candidates.len());
        Some(candidates[i].clone())
    }

    /// Tags a labelled dangling image again (`soak-rescued:<n>`).
    async fn tag_again(&self) -> Result<()> {
        let Some(id) = self.pick_dangling() else {
            return Ok(());
        };
        let n = locked(&self.rng).next_u64() % 1_000_000_000;
        let tag = n.to_string();
        let options = TagImageOptionsBuilder::new()
            .repo("soak-rescued")
            .tag(&tag)
            .build();
        let sent = SystemTime::now();
        let tagged = self.docker.tag_image(&id, Some(options)).await;
        let answered = SystemTime::now();
        match tagged {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                locked(&self.stats).found_gone += 1;
                return Ok(());
            }
            Err(e) => return Err(e).context("tag again"),
        }
        {
            let mut ledger = locked(&self.ledger);
            ledger.protect(&id, Reason::TaggedAgain, sent, answered);
            if let Some(entry) = ledger.get(&id)
                && entry.dangling
            {
                // Not dangling any more: not picked again.
                ledger.clear_dangling(&id);
            }
        }
        locked(&self.stats).retags_on_dangling += 1;
        let oldest = {
            let mut state = locked(&self.state);
            state
                .rescued
                .push_back((format!("soak-rescued:{tag}"), id.clone()));
            if state.rescued.len() > RESCUED_CAP {
                state.rescued.pop_front()
            } else {
                None
            }
        };
        if let Some((tag, image)) = oldest {
            // Deleting its only tag deletes the image: the churn's own doing.
            let now = SystemTime::now();
            locked(&self.ledger).release_one(&image, Reason::TaggedAgain, now);
            if self.delete_image(&tag).await.is_ok() {
                let still_there = crate::engine::all_image_ids(&self.docker)
                    .await
                    .map(|ids| ids.contains(&image))
                    .unwrap_or(true);
                if !still_there {
                    locked(&self.ledger).drop_image(&image, now);
                }
            }
        }
        Ok(())
    }

    /// Creates a container on a labelled dangling image: as its image, or
    /// (`mount`) from the workbench with the image mounted.
    async fn use_dangling(&self, mount: bool) -> Result<()> {
        let Some(id) = self.pick_dangling() else {
            return Ok(());
        };
        let body = if mount {
            ContainerCreateBody {
                image: Some(WORKBENCH.to_string()),
                cmd: Some(vec!["/fixture".to_string()]),
                network_disabled: Some(true),
                host_config: Some(HostConfig {
                    mounts: Some(vec![Mount {
                        typ: Some(MountType::IMAGE),
                        source: Some(id.clone()),
                        target: Some("/mnt".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            }
        } else {
            ContainerCreateBody {
                image: Some(id.clone()),
                cmd: Some(vec!["/fixture".to_string()]),
                network_disabled: Some(true),
                ..Default::default()
            }
        };
        let sent = SystemTime::now();
        let created = self.docker.create_container(None, body).await;
        let answered = SystemTime::now();
        let container = match created {
            Ok(c) => c.id,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                locked(&self.stats).found_gone += 1;
                return Ok(());
            }
            // Docker answers a mount of a missing image with 400 or 500,
            // Podman with 500 "image not known".
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if mount && is_missing_image(&message) =>
            {
                locked(&self.stats).found_gone += 1;
                return Ok(());
            }
            Err(e) => return Err(e).context(if mount { "mount" } else { "create" }),
        };
        let reason = if mount {
            Reason::Mounted
        } else {
            Reason::InUse
        };
        locked(&self.ledger).protect(&id, reason, sent, answered);
        let lifetime = Duration::from_millis(3_000 + locked(&self.rng).below(17_000) as u64);
        {
            let mut stats = locked(&self.stats);
            if mount {
                stats.mounts_on_dangling += 1;
            } else {
                stats.creates_on_dangling += 1;
            }
        }
        locked(&self.state).held.push(Held {
            container,
            image: id,
            reason,
            until: tokio::time::Instant::now() + lifetime,
        });
        Ok(())
    }

    /// Removes the containers whose time is up; their images lose that
    /// protection from the moment the removal was sent.
    async fn expire_containers(&self) {
        let due: Vec<Held> = {
            let mut state = locked(&self.state);
            let now = tokio::time::Instant::now();
            let (due, keep) = std::mem::take(&mut state.held)
                .into_iter()
                .partition(|h| h.until <= now);
            state.held = keep;
            due
        };
        for held in due {
            let sent = SystemTime::now();
            let removed = self
                .docker
                .remove_container(&held.container, None::<RemoveContainerOptions>)
                .await;
            match removed {
                Ok(()) => {
                    locked(&self.ledger).release_one(&held.image, held.reason, sent);
                    locked(&self.stats).containers_removed += 1;
                }
                Err(_) => {
                    // The engine is down: try again later.
                    locked(&self.state).held.push(Held {
                        until: tokio::time::Instant::now() + Duration::from_secs(2),
                        ..held
                    });
                }
            }
        }
    }

    /// Commits a labelled base to `soak-base-<k>:latest`.
    async fn commit_base(&self, k: usize) -> Result<()> {
        let tag = format!("soak-base-{k}:latest");
        let (id, sent, answered) = self
            .commit_to(tag.trim_end_matches(":latest"), &[OURS], None)
            .await?;
        locked(&self.ledger).add(&id, true, sent);
        self.moved(&tag, &id, sent, answered);
        Ok(())
    }

    /// Builds `soak-built-<k>:latest` `FROM soak-base-<k>:latest`, then
    /// moves the base's tag: the old base keeps a child.
    async fn build(&self) -> Result<()> {
        let k = locked(&self.rng).below(BASES);
        let base_tag = format!("soak-base-{k}:latest");
        let built_tag = format!("soak-built-{k}:latest");
        let Some(_claim) = self.claim(&base_tag) else {
            return Ok(());
        };
        let n = locked(&self.rng).next_u64() % 1_000_000_000;
        let dockerfile = format!("FROM {base_tag}\nLABEL soak.build={n}\n");
        let mut context = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        context.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        let context = context.into_inner()?;
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(&built_tag)
            .rm(true)
            .build();
        let sent = SystemTime::now();
        let built: Result<Vec<_>> = self
            .docker
            .build_image(options, None, Some(bollard::body_full(context.into())))
            .try_collect()
            .await
            .context("build");
        let progress = match built {
            Ok(progress) => progress,
            Err(e) => {
                if status_of(&e).is_none() {
                    locked(&self.state)
                        .uncertain
                        .insert(built_tag.clone(), (true, None, sent));
                    self.sync_unsettled();
                }
                return Err(e);
            }
        };
        if let Some(error) = progress.iter().find_map(|p| p.error_detail.as_ref()) {
            bail!("build failed: {error:?}");
        }
        let id = self
            .docker
            .inspect_image(&built_tag)
            .await
            .context("inspect the built image")?
            .id
            .context("the built image has no ID")?;
        let id = fixtures::listed_id(&id);
        let answered = SystemTime::now();
        locked(&self.stats).builds += 1;
        let base = locked(&self.state).tags.get(&base_tag).cloned();
        {
            let mut ledger = locked(&self.ledger);
            ledger.add(&id, true, sent);
            if self.parents
                && let Some(base) = &base
            {
                ledger.protect(base, Reason::Parent, sent, answered);
                ledger.set_parent(&id, base);
            }
        }
        self.moved(&built_tag, &id, sent, answered);
        self.commit_base(k).await
    }

    /// `DELETE /images/<name>` as the churn's own cleanup.
    async fn delete_image(&self, name: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::new()
            .force(false)
            .noprune(true)
            .build();
        self.docker
            .remove_image(name, Some(options), None)
            .await
            .with_context(|| format!("delete {name}"))?;
        Ok(())
    }

    /// Removes every container the churn holds (the end of a soak).
    pub async fn release_all(&self) {
        let held = std::mem::take(&mut locked(&self.state).held);
        for held in held {
            let sent = SystemTime::now();
            if self
                .docker
                .remove_container(&held.container, None::<RemoveContainerOptions>)
                .await
                .is_ok()
            {
                locked(&self.ledger).release_one(&held.image, held.reason, sent);
            }
        }
    }
}

/// What engines answer when a mount's source image is missing.
fn is_missing_image(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no such image") || m.contains("not known") || m.contains("not found")
}

/// A tag taken for one operation, given back on drop.
struct TagClaim<'a> {
    churn: &'a Churn,
    tag: String,
}

impl Drop for TagClaim<'_> {
    fn drop(&mut self) {
        locked(&self.churn.state).busy.remove(&self.tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let seq: Vec<usize> = (0..1000).map(|_| a.below(10)).collect();
        assert_eq!(seq, (0..1000).map(|_| b.below(10)).collect::<Vec<_>>());
        for v in 0..10 {
            assert!(seq.contains(&v), "{v} never drawn");
        }
    }

    #[test]
    fn missing_mount_sources_are_recognised() {
        assert!(is_missing_image("No such image: sha256:abc"));
        assert!(is_missing_image("sha256:abc: image not known"));
        assert!(!is_missing_image("conflict"));
    }
}
