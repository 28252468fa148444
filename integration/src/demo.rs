//! `cargo xtask demo`: what the janitor does, shown on a small zoo of images
//! in a nested engine (never the host's).
//!
//! [`build_zoo`] loads the images a shared host carries: unlabelled
//! workloads (MySQL-like, Loki-like), tagged and dangling; the production
//! leak (a snapshot tag committed twice with the label); look-alike labels;
//! a labelled image a container uses; a labelled image younger than
//! `--min-age`. [`run`] then runs the real binary's `doctor`,
//! `prune --dry-run` and `prune` against it and explains, per image, what
//! was removed and what was kept and why. The `demo` integration test runs
//! the same code and checks the survivors.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use bollard::Docker;

use crate::engine::all_image_ids;
use crate::fixtures::{self, ImageSpec};

/// `--min-age` of the demo's janitor runs: long enough that the young image
/// stays young across the three commands, short enough that the demo only
/// waits this long for the leaked snapshot (committed now) to come of age.
pub const MIN_AGE: Duration = Duration::from_secs(15);

/// The snapshot tag of the production leak.
pub const SNAPSHOT_REPO: &str = "cascade-snapshot-demo-item42";

/// What the janitor must do with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Removed,
    Kept,
}

/// One image of the zoo.
#[derive(Debug, Clone)]
pub struct ZooImage {
    pub name: &'static str,
    pub id: String,
    /// What it is, for a newcomer.
    pub what: &'static str,
    pub expected: Fate,
    /// Why the rule removes or keeps it.
    pub why: &'static str,
}

/// The loaded zoo.
#[derive(Debug, Clone)]
pub struct Zoo {
    pub images: Vec<ZooImage>,
    /// Engine time of the leak's first commit: it must be older than
    /// [`MIN_AGE`] before the janitor runs.
    pub first_commit: SystemTime,
}

impl Zoo {
    pub fn expected_removed(&self) -> BTreeSet<String> {
        self.images
            .iter()
            .filter(|i| i.expected == Fate::Removed)
            .map(|i| i.id.clone())
            .collect()
    }
}

const LABEL: (&str, &str) = ("cascade.managed", "true");

/// Loads the zoo into `docker` (a nested engine). The young image is loaded
/// last, by [`load_young`], right before the janitor runs.
pub async fn build_zoo(docker: &Docker) -> Result<Zoo> {
    let base = fixtures::load(
        docker,
        &[ImageSpec::new("router-base").tagged("cascade-router-base:1")],
    )
    .await?;
    // The leak as production makes it: the router commits a worker's
    // container to the project's snapshot tag, and the next commit to the
    // same tag leaves the previous snapshot dangling, label and all.
    let worker = fixtures::create_container(docker, "cascade-router-base:1").await?;
    let first = fixtures::commit(docker, &worker, SNAPSHOT_REPO, "latest", &[LABEL]).await?;
    let first_commit = created(docker, &first).await?;
    let second = fixtures::commit(docker, &worker, SNAPSHOT_REPO, "latest", &[LABEL]).await?;
    if first == second {
        bail!("two commits of the worker gave one image; the leak needs two");
    }

    let hour_old = [
        ImageSpec::new("mysql").tagged("mysql:8.0"),
        ImageSpec::new("mysql-old").label("org.opencontainers.image.title", "mysql"),
        ImageSpec::new("loki").tagged("grafana/loki:2.9.4"),
        ImageSpec::new("loki-old").label("org.opencontainers.image.title", "loki"),
        ImageSpec::new("managed-false").label("cascade.managed", "false"),
        ImageSpec::new("managed-True").label("cascade.managed", "True"),
        ImageSpec::new("manage-true").label("cascade.manage", "true"),
        ImageSpec::new("build-leftover").ours(),
        ImageSpec::new("in-use").ours(),
    ];
    let loaded = fixtures::load(docker, &hour_old).await?;
    fixtures::create_container(docker, &loaded["in-use"]).await?;

    let image = |name: &'static str, id: &str, what, expected, why| ZooImage {
        name,
        id: id.to_string(),
        what,
        expected,
        why,
    };
    use Fate::{Kept, Removed};
    let images = vec![
        image(
            "mysql",
            &loaded["mysql"],
            "mysql:8.0, no label",
            Kept,
            "not labelled cascade.managed=true (and tagged)",
        ),
        image(
            "mysql-old",
            &loaded["mysql-old"],
            "an older MySQL-like build, dangling, no cascade label",
            Kept,
            "not labelled cascade.managed=true: someone else's image",
        ),
        image(
            "loki",
            &loaded["loki"],
            "grafana/loki:2.9.4, no label",
            Kept,
            "not labelled cascade.managed=true (and tagged)",
        ),
        image(
            "loki-old",
            &loaded["loki-old"],
            "an older Loki-like build, dangling, no cascade label",
            Kept,
            "not labelled cascade.managed=true: someone else's image",
        ),
        image(
            "router-base",
            &base["router-base"],
            "cascade-router-base:1, the worker's base",
            Kept,
            "tagged, not labelled",
        ),
        image(
            "snapshot-1",
            &first,
            "first commit of cascade-snapshot-demo-item42:latest, labelled; the second commit took its tag",
            Removed,
            "labelled, dangling, older than --min-age: the production leak",
        ),
        image(
            "snapshot-2",
            &second,
            "second commit of cascade-snapshot-demo-item42:latest, labelled",
            Kept,
            "tagged: the current snapshot",
        ),
        image(
            "build-leftover",
            &loaded["build-leftover"],
            "labelled, dangling, an hour old",
            Removed,
            "labelled, dangling, older than --min-age, unused",
        ),
        image(
            "managed-false",
            &loaded["managed-false"],
            "dangling, cascade.managed=false",
            Kept,
            "look-alike: the value must be exactly `true`",
        ),
        image(
            "managed-True",
            &loaded["managed-True"],
            "dangling, cascade.managed=True",
            Kept,
            "look-alike: values are case-sensitive",
        ),
        image(
            "manage-true",
            &loaded["manage-true"],
            "dangling, cascade.manage=true",
            Kept,
            "look-alike: the key must be exactly `cascade.managed`",
        ),
        image(
            "in-use",
            &loaded["in-use"],
            "labelled, dangling, a (created, not started) container uses it",
            Kept,
            "in use by a container",
        ),
    ];
    Ok(Zoo {
        images,
        first_commit,
    })
}

/// Loads the young labelled image and adds it to the zoo.
pub async fn load_young(docker: &Docker, zoo: &mut Zoo) -> Result<()> {
    let young = fixtures::load(
        docker,
        &[ImageSpec::new("young").ours().age(Duration::ZERO)],
    )
    .await?;
    zoo.images.push(ZooImage {
        name: "young",
        id: young["young"].clone(),
        what: "labelled, dangling, created just now",
        expected: Fate::Kept,
        why: "younger than --min-age: it may be a step of a build still running",
    });
    Ok(())
}

async fn created(docker: &Docker, id: &str) -> Result<SystemTime> {
    // The summary's `Created` is Unix seconds on every engine and bollard
    // feature set.
    let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
        .all(true)
        .build();
    let images = docker
        .list_images(Some(options))
        .await
        .context("list images")?;
    let image = images
        .iter()
        .find(|i| i.id == id)
        .with_context(|| format!("{id} is not listed"))?;
    let seconds = u64::try_from(image.created).context("Created before 1970")?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Waits until the leak's first commit is older than [`MIN_AGE`]: the demo
/// shows the default rule (young images are kept) without backdating it.
pub async fn wait_for_age(zoo: &Zoo, out: &mut impl Write) -> Result<()> {
    let due = zoo.first_commit + MIN_AGE + Duration::from_secs(1);
    if let Ok(left) = due.duration_since(SystemTime::now()) {
        writeln!(
            out,
            "(waiting {}s until the first snapshot is older than --min-age {}s)",
            left.as_secs() + 1,
            MIN_AGE.as_secs()
        )?;
        tokio::time::sleep(left).await;
    }
    Ok(())
}

/// One run of the janitor binary against the demo engine.
#[derive(Debug)]
pub struct Step {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `janitor <args> --docker-host <host>` with a clean environment (no
/// Sentry, no `CASCADE_JANITOR_*` or `DOCKER_HOST` from the caller's shell).
pub async fn janitor(janitor: &Path, host: &str, args: &[&str]) -> Result<Step> {
    let min_age = format!("{}s", MIN_AGE.as_secs());
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--docker-host", host, "--min-age", &min_age]);
    let output = tokio::process::Command::new(janitor)
        .args(&full)
        .env_clear()
        .output()
        .await
        .with_context(|| format!("cannot run {}", janitor.display()))?;
    Ok(Step {
        command: format!("cascade-janitor {}", full.join(" ")),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Image ID → the plan's word on it: `remove`, or the reason it is kept.
fn plan_reasons(json: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let plan: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("the plan is not JSON: {json}"))?;
    let mut said = std::collections::BTreeMap::new();
    let entries = |field: &str| plan[field].as_array().cloned().unwrap_or_default();
    for image in entries("would_remove") {
        if let Some(id) = image["id"].as_str() {
            said.insert(id.to_string(), "remove".to_string());
        }
    }
    for image in entries("skipped") {
        if let (Some(id), Some(reason)) = (image["id"].as_str(), image["reason"].as_str()) {
            said.insert(id.to_string(), format!("keep, {reason}"));
        }
    }
    Ok(said)
}

/// What happened to each image.
#[derive(Debug)]
pub struct Outcome {
    pub image: ZooImage,
    pub fate: Fate,
}

/// The whole demo on a nested engine: zoo, `doctor`, `prune --dry-run`,
/// `prune`, and the explanation. Returns every image's outcome and the
/// janitor runs (the JSON plan, then the three shown); `out` gets what a
/// newcomer reads.
pub async fn run(
    docker: &Docker,
    host: &str,
    janitor_binary: &Path,
    out: &mut impl Write,
) -> Result<(Vec<Outcome>, Vec<Step>)> {
    writeln!(out, "== loading the zoo into the nested engine ({host})")?;
    let mut zoo = build_zoo(docker).await?;
    wait_for_age(&zoo, out).await?;
    load_young(docker, &mut zoo).await?;
    for image in &zoo.images {
        writeln!(out, "  {:<15} {}", image.name, image.what)?;
    }
    let before = all_image_ids(docker).await?;

    // The plan in JSON, taken first and not shown: the janitor's own word
    // on every labelled image, for the table at the end.
    let plan = janitor(
        janitor_binary,
        host,
        &[
            "prune",
            "--dry-run",
            "--output",
            "json",
            "--progress",
            "none",
        ],
    )
    .await?;
    let said = plan_reasons(&plan.stdout)?;
    let mut steps = vec![plan];
    for (title, args) in [
        (
            "doctor: is the engine reachable, what is in scope?",
            &["doctor"][..],
        ),
        (
            "prune --dry-run: the plan, nothing is removed",
            &["prune", "--dry-run", "--progress", "none"][..],
        ),
        ("prune: the sweep", &["prune", "--progress", "none"][..]),
    ] {
        let step = janitor(janitor_binary, host, args).await?;
        writeln!(out, "\n== {title}\n$ {}", step.command)?;
        for line in step.stdout.lines().chain(step.stderr.lines()) {
            writeln!(out, "  {line}")?;
        }
        if step.code != 0 {
            writeln!(out, "  (exit {})", step.code)?;
        }
        steps.push(step);
    }

    let after = all_image_ids(docker).await?;
    let outcomes: Vec<Outcome> = zoo
        .images
        .iter()
        .map(|image| Outcome {
            fate: if after.contains(&image.id) {
                Fate::Kept
            } else {
                Fate::Removed
            },
            image: image.clone(),
        })
        .collect();
    writeln!(out, "\n== what happened to each image")?;
    for o in &outcomes {
        let fate = match o.fate {
            Fate::Removed => "REMOVED",
            Fate::Kept => "kept",
        };
        let surprise = if o.fate == o.image.expected {
            ""
        } else {
            "  <-- NOT what the rule says"
        };
        let short = o.image.id.trim_start_matches("sha256:");
        let verdict = said
            .get(&o.image.id)
            .map_or("not listed: out of scope", String::as_str);
        writeln!(
            out,
            "  {fate:<8} {:<15} {:<12} {}  [janitor's plan: {verdict}]{surprise}",
            o.image.name,
            &short[..short.len().min(12)],
            o.image.why
        )?;
    }
    let zoo_ids: BTreeSet<String> = zoo.images.iter().map(|i| i.id.clone()).collect();
    let strays: Vec<&String> = before
        .difference(&after)
        .filter(|id| !zoo_ids.contains(*id))
        .collect();
    if !strays.is_empty() {
        writeln!(out, "  also removed, outside the zoo: {strays:?}")?;
    }
    Ok((outcomes, steps))
}
