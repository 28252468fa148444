//! What the benchmarks time, keyed by [`Contender`] (a gentleness phase by
//! [`Phase`]), and the processes that run the ones that are processes (the
//! engine's own prune, the janitor).
//!
//! Every lookup in the results (a table row, a target's ratio, the chart's
//! lines) is by [`Contender`]; [`Contender::name`] is only what a table
//! shows and what the JSON records beside the key.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::seed::label_filter;
use crate::NestedEngine;
use crate::engine::Family;

/// One thing the comparison times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contender {
    /// One raw `GET /images/json` (in-process): the floor for any scan.
    RawList,
    /// The engine's own prune: `docker image prune` on a Docker engine,
    /// `podman image prune` on a Podman one. One key whichever it is, so a
    /// table or a target names "the engine's own prune" once.
    EnginePrune,
    /// The original algorithm: list, then one `DELETE` at a time
    /// (in-process).
    OneAtATime,
    JanitorDryRun,
    /// The janitor's default `--concurrency`.
    JanitorPrune,
    /// `--concurrency` with this value, verbatim.
    JanitorPruneAt(String),
    /// The `--baseline` build of the janitor, default `--concurrency`.
    BaselinePrune,
}

impl Contender {
    /// What every `compare` run times, in this order; `--concurrency` and
    /// `--baseline` add more after them.
    pub const ALWAYS: [Contender; 5] = [
        Contender::RawList,
        Contender::EnginePrune,
        Contender::OneAtATime,
        Contender::JanitorDryRun,
        Contender::JanitorPrune,
    ];

    /// The contenders of one `compare` run: [`Contender::ALWAYS`], one
    /// janitor per `--concurrency` value, and the baseline if there is one.
    pub fn lineup(concurrency: &[String], baseline: bool) -> Vec<Contender> {
        let mut contenders = Contender::ALWAYS.to_vec();
        contenders.extend(concurrency.iter().cloned().map(Contender::JanitorPruneAt));
        if baseline {
            contenders.push(Contender::BaselinePrune);
        }
        contenders
    }

    /// The name a table shows, on an engine of `family` (whose CLI runs
    /// [`Contender::EnginePrune`]).
    pub fn name(&self, family: Family) -> String {
        match self {
            Contender::RawList => "raw GET /images/json".into(),
            Contender::EnginePrune => match family {
                Family::Docker => "docker image prune".into(),
                Family::Podman => "podman image prune".into(),
            },
            Contender::OneAtATime => "one-at-a-time loop".into(),
            Contender::JanitorDryRun => "cascade-janitor prune --dry-run".into(),
            Contender::JanitorPrune => "cascade-janitor prune".into(),
            Contender::JanitorPruneAt(n) => format!("cascade-janitor prune --concurrency {n}"),
            Contender::BaselinePrune => "baseline prune".into(),
        }
    }

    /// Exactly what runs, for the JSON.
    pub fn command(&self, family: Family) -> String {
        let janitor = "cascade-janitor prune --output json --docker-host $HOST";
        match self {
            Contender::RawList => "GET /images/json?filters={\"dangling\":[\"true\"],\"label\":[\"cascade.managed=true\"]} (fresh connection, body read, not decoded; in-process)".into(),
            Contender::EnginePrune => match family {
                Family::Docker => "DOCKER_HOST=$HOST docker image prune -f --filter label=cascade.managed=true".into(),
                Family::Podman => "podman image prune -f --filter label=cascade.managed=true --filter dangling=true (the nested engine's own podman, on its storage: docker exec ENGINE podman --root ... image prune ...)".into(),
            },
            Contender::OneAtATime => "list, then DELETE /images/{id}?force=false&noprune=true one at a time on one keep-alive connection (hyper, in-process)".into(),
            Contender::JanitorDryRun => format!("{janitor} --dry-run"),
            Contender::JanitorPrune => janitor.into(),
            Contender::JanitorPruneAt(n) => format!("{janitor} --concurrency {n}"),
            Contender::BaselinePrune => format!("{janitor} (the --baseline build)"),
        }
    }

    /// Whether it removes the labelled images (and must leave none).
    pub fn removes(&self) -> bool {
        !matches!(self, Contender::RawList | Contender::JanitorDryRun)
    }
}

/// What runs during one phase of the gentleness benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing but the probe.
    Idle,
    /// `docker image prune` against the engine's socket: Docker's CLI on
    /// every engine, Podman's included.
    EnginePrune,
    /// `cascade-janitor prune --concurrency <value>`.
    Janitor(String),
}

impl Phase {
    /// The contender the phase runs, if any.
    pub fn contender(&self) -> Option<Contender> {
        match self {
            Phase::Idle => None,
            Phase::EnginePrune => Some(Contender::EnginePrune),
            Phase::Janitor(c) => Some(Contender::JanitorPruneAt(c.clone())),
        }
    }

    /// The name a table shows: `idle`, or the contender's name (Docker's
    /// CLI runs the prune).
    pub fn name(&self) -> String {
        self.contender()
            .map_or_else(|| "idle".into(), |c| c.name(Family::Docker))
    }
}

/// The engine's own prune of the labelled dangling images, with the CLI of
/// `family`: `docker image prune` against the engine's socket, or the
/// nested Podman's own `podman image prune`. The caller counts what it
/// removed by listing: what it prints is not one line per image on every
/// store (26.1's containerd store prints two digests per image).
pub async fn engine_prune(engine: &NestedEngine, family: Family) -> Result<()> {
    match family {
        Family::Docker => docker_prune(&engine.host()).await,
        Family::Podman => podman_prune(engine).await,
    }
}

/// `docker image prune -f --filter label=cascade.managed=true` against
/// `host`. The caller counts what it removed by listing.
pub async fn docker_prune(host: &str) -> Result<()> {
    let mut command = tokio::process::Command::new("docker");
    command
        .args(["image", "prune", "-f", "--filter", &label_filter()])
        .env("DOCKER_HOST", host)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    checked_output(&mut command, "docker image prune").await?;
    Ok(())
}

/// `podman image prune -f --filter label=cascade.managed=true --filter
/// dangling=true`, run by the nested Podman engine's own binary on its own
/// storage (the image's entrypoint up to `system service` holds the storage
/// flags), so it competes with the service as a host's CLI would. Its CPU
/// runs outside the engine's process tree: the table's engine CPU for it
/// is the service's share only.
async fn podman_prune(engine: &NestedEngine) -> Result<()> {
    let mut inspect = tokio::process::Command::new("docker");
    inspect.args([
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}",
        engine.container_id(),
    ]);
    let out = checked_output(&mut inspect, "docker inspect of the Podman engine").await?;
    let entrypoint: Vec<String> = serde_json::from_slice(&out.stdout)
        .context("the Podman engine's container has no entrypoint")?;
    let podman: Vec<String> = entrypoint
        .into_iter()
        .take_while(|arg| arg != "system")
        .filter(|arg| !arg.starts_with("--log-level"))
        .collect();
    let label = label_filter();
    let mut command = tokio::process::Command::new("docker");
    command
        .args(["exec", engine.container_id()])
        .args(&podman)
        .args([
            "image",
            "prune",
            "-f",
            "--filter",
            &label,
            "--filter",
            "dangling=true",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    checked_output(&mut command, "podman image prune").await?;
    Ok(())
}

/// `cascade-janitor prune --concurrency <value>`; returns how many images
/// its report says it removed.
pub async fn janitor_prune(janitor: &Path, host: &str, concurrency: &str) -> Result<usize> {
    let mut command = tokio::process::Command::new(janitor);
    janitor_prune_args(&mut command, host);
    command.args(["--concurrency", concurrency]);
    let what = format!("cascade-janitor prune --concurrency {concurrency}");
    let out = checked_output(&mut command, &what).await?;
    reported(&out.stdout, "removed")
}

/// Runs `command` to its end; an exit other than 0 is an error naming
/// `what`, with its status and standard error.
pub async fn checked_output(
    command: &mut tokio::process::Command,
    what: &str,
) -> Result<std::process::Output> {
    let out = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `prune --output json --docker-host HOST` after the janitor's path, run
/// as the benchmarks run it: no Sentry, warnings only, no input.
pub fn janitor_prune_args(command: &mut tokio::process::Command, host: &str) {
    command
        .args(["prune", "--output", "json", "--docker-host", host])
        .env_remove("SENTRY_DSN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
}

/// How many images the janitor's JSON report lists under `field`.
pub fn reported(stdout: &[u8], field: &str) -> Result<usize> {
    let report: serde_json::Value =
        serde_json::from_slice(stdout).context("the janitor's JSON report")?;
    Ok(report[field].as_array().map_or(0, Vec::len))
}

/// Fails unless `who` handled exactly the `expect` images of the seed.
pub fn check_count(who: &str, got: usize, expect: usize) -> Result<()> {
    if got != expect {
        bail!("{who} handled {got} images, expected {expect}: the seed did not restore the set");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of each variant. The match fails to compile when a variant is
    /// added, so a test that renders `every()` covers it.
    pub(crate) fn every() -> Vec<Contender> {
        let every = vec![
            Contender::RawList,
            Contender::EnginePrune,
            Contender::OneAtATime,
            Contender::JanitorDryRun,
            Contender::JanitorPrune,
            Contender::JanitorPruneAt("auto".into()),
            Contender::BaselinePrune,
        ];
        for c in &every {
            match c {
                Contender::RawList
                | Contender::EnginePrune
                | Contender::OneAtATime
                | Contender::JanitorDryRun
                | Contender::JanitorPrune
                | Contender::JanitorPruneAt(_)
                | Contender::BaselinePrune => {}
            }
        }
        every
    }

    #[test]
    fn the_engine_prune_is_one_key_named_after_the_family() {
        let c = Contender::EnginePrune;
        assert_eq!(c.name(Family::Docker), "docker image prune");
        assert_eq!(c.name(Family::Podman), "podman image prune");
        assert!(c.command(Family::Podman).starts_with("podman image prune"));
        assert!(c.removes());
    }

    #[test]
    fn a_phase_is_named_after_its_contender() {
        assert_eq!(Phase::Idle.name(), "idle");
        assert_eq!(Phase::EnginePrune.name(), "docker image prune");
        assert_eq!(
            Phase::Janitor("auto".into()).name(),
            "cascade-janitor prune --concurrency auto"
        );
    }

    #[test]
    fn names_tell_every_contender_apart() {
        for family in [Family::Docker, Family::Podman] {
            let mut names: Vec<String> = every().iter().map(|c| c.name(family)).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), every().len(), "{names:?}");
        }
    }

    #[test]
    fn the_lineup_adds_concurrency_levels_and_the_baseline_after_the_rest() {
        let lineup = Contender::lineup(&["1".into(), "auto".into()], true);
        assert_eq!(lineup[..5], Contender::ALWAYS);
        assert_eq!(
            lineup[5..],
            [
                Contender::JanitorPruneAt("1".into()),
                Contender::JanitorPruneAt("auto".into()),
                Contender::BaselinePrune,
            ]
        );
        assert_eq!(Contender::lineup(&[], false), Contender::ALWAYS);
    }

    #[test]
    fn the_key_is_what_the_json_records() -> Result<()> {
        for c in every() {
            let json = serde_json::to_string(&c)?;
            assert_eq!(serde_json::from_str::<Contender>(&json)?, c, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Contender::EnginePrune)?,
            "\"engine_prune\""
        );
        Ok(())
    }
}
