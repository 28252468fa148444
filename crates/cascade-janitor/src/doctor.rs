//! `doctor`: is each engine reachable, what does the janitor see there, and
//! how full is the engine's disk. It removes nothing (its sweep is a dry run).
//!
//! Exit 1 ("a problem") when an engine cannot be reached, a query the
//! janitor depends on fails (version, info, listing images or containers),
//! or the engine is not one the janitor has been proven on and
//! `--allow-unproven-engine` is not given: then `run` could not do its work
//! either. "No image carries the labels" is
//! a warning with the fix, not a problem: it is the normal state of a new
//! host before the first snapshot, and a deployment check must not fail
//! there. Low free space is a warning too: it is what the janitor is for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytesize::ByteSize;
use cascade_cleanup::disk::{self, DiskSpace};
use cascade_cleanup::{Admission, DockerImages, ImageStore, Implementation};
use cascade_engine::EngineConnection;

use crate::{EXIT_FAILURE, EXIT_OK, Failure, engine, sweep_config};
use cascade_config::CommonSettings;

/// Below this share of free space on the engine's root dir, doctor warns.
const LOW_FREE_PERCENT: u64 = 10;

/// Every engine in turn. One engine: the single-engine output (unreachable
/// is a one-line error, exit 1). Several: one `== engine HOST ==` section
/// each; an unreachable engine is a problem in its section.
pub async fn doctor(common: &CommonSettings) -> Result<u8, Failure> {
    let several = common.engines.len() > 1;
    let mut unhealthy = 0;
    for (i, (host, tls)) in common
        .engines
        .iter()
        .map(|e| (&e.host, e.transport.tls()))
        .enumerate()
    {
        if several {
            println!("{}", cascade_report::engine_header(i, host));
        }
        match engine::connect(host, tls, common.timeout).await {
            Ok(docker) => {
                if check(&docker, host, common).await > 0 {
                    unhealthy += 1;
                }
            }
            Err(failure) if several && failure.code == EXIT_FAILURE => {
                println!("problem: {}", failure.message);
                unhealthy += 1;
            }
            Err(failure) => return Err(failure),
        }
    }
    if several {
        println!(
            "\n{} of {} engines healthy",
            common.engines.len() - unhealthy,
            common.engines.len()
        );
    }
    Ok(if unhealthy == 0 {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

/// Checks one connected engine; returns the number of problems found.
async fn check(docker: &EngineConnection, host: &str, common: &CommonSettings) -> usize {
    let config = sweep_config(common, true);
    let mut problems = 0;
    let implementation = match docker.facts().await {
        Ok(facts) => {
            let identity = &facts.identity;
            println!(
                "engine: {host} ({} {}, API {}; the janitor speaks API {})",
                identity.implementation,
                identity.version,
                identity.api_version.as_deref().unwrap_or("?"),
                docker.api_version().as_deref().unwrap_or("?")
            );
            problems += admission(&Admission::of(identity, common.allow_unproven_engine));
            identity.implementation.clone()
        }
        Err(e) => {
            println!("engine: {host}: version query failed: {e}");
            problems += 1;
            Implementation::Docker
        }
    };
    match docker.storage(&implementation).await {
        Ok(storage) => {
            let root = storage.root_dir.as_deref();
            let remote = !engine::is_local(host);
            let store = match &storage.store {
                ImageStore::Classic { driver } => format!("classic image store, driver {driver}"),
                ImageStore::Containerd { snapshotter } => {
                    format!("containerd image store, snapshotter {snapshotter}")
                }
                ImageStore::ContainersStorage { driver } => {
                    format!("containers-storage, driver {driver}")
                }
            };
            println!(
                "storage: {store}, root dir {}",
                root.map_or("?".into(), Path::to_string_lossy)
            );
            if root.is_some() {
                // The evidence for engines without an engine-id file: any
                // image the engine holds.
                let image = docker
                    .list_images(&HashMap::new())
                    .await
                    .ok()
                    .and_then(|images| images.into_iter().next())
                    .map(|image| image.id);
                let space = root_dir_space(&storage, image.as_deref(), !remote);
                println!("root dir free space: {}", space.line);
                if space.low {
                    println!(
                        "warning: less than {LOW_FREE_PERCENT}% free on the engine's root dir; \
                         run `cascade-janitor prune --dry-run` to see what the janitor can reclaim"
                    );
                }
            }
        }
        Err(e) => {
            println!("problem: info query failed: {e}");
            problems += 1;
        }
    }
    println!(
        "scope: dangling images with {} (min age {})",
        config.scope,
        humantime::format_duration(config.min_age)
    );
    let scope = config.scope.clone();
    match cascade_cleanup::census(Arc::new(docker.clone()), config).await {
        Ok(census) => {
            println!("images carrying the labels: {}", census.labelled);
            println!("  of which dangling (in scope): {}", census.listed);
            println!("  reclaimable now: {}", census.reclaimable);
            println!(
                "dangling images out of scope, never touched: {}",
                census.out_of_scope_dangling
            );
            if census.labelled == 0 {
                let labels: Vec<String> = scope.labels().iter().map(|l| l.to_string()).collect();
                println!(
                    "warning: no image carries {scope}; the janitor will remove nothing. \
                     Add `LABEL {}` to the Dockerfiles (or --change to docker commit) of the images it should manage.",
                    labels.join(" ")
                );
            }
        }
        Err(error) => {
            problems += 1;
            println!("problem: listing images failed: {error}");
        }
    }
    problems
}

/// Says whether removal is allowed on the engine, and under which row of
/// the proven-engine table; returns 1 when it is refused (a problem).
fn admission(admission: &Admission) -> usize {
    match admission {
        Admission::Proven(row) => {
            println!(
                "proven: {} (cargo xtask safety --engine {})",
                row.describe(),
                row.proven_by.join(", ")
            );
            0
        }
        Admission::Allowed(unproven) => {
            println!(
                "warning: {unproven}; removing on it anyway, as --allow-unproven-engine asks, with the most careful strategy"
            );
            0
        }
        Admission::Refused(unproven) => {
            println!(
                "problem: {unproven}; run and prune refuse to remove on it (prune --dry-run still plans). Pass --allow-unproven-engine to remove on it anyway"
            );
            1
        }
    }
}

/// Free space of the engine's root dir, as seen from here.
#[derive(Debug, PartialEq, Eq)]
struct RootDirSpace {
    line: String,
    low: bool,
}

/// The engine's root dir is only measurable when the janitor sees the same
/// folder; see `cascade_engine::disk::data_root_here`. Otherwise it is
/// reported as not visible rather than measured wrongly.
impl RootDirSpace {
    fn not_visible(why: &str) -> RootDirSpace {
        RootDirSpace {
            line: format!("not visible from here ({why}); check it on the engine's host"),
            low: false,
        }
    }
}

/// The engine's root dir as `cascade_engine::disk::data_root_here` decides
/// (the same decision a sweep's reclaimed space uses), measured.
fn root_dir_space(
    storage: &cascade_engine::Storage,
    image: Option<&str>,
    local: bool,
) -> RootDirSpace {
    let not_visible = RootDirSpace::not_visible;
    let root = match cascade_engine::disk::data_root_here(storage, image, local) {
        Ok(root) => root,
        Err(why) => return not_visible(&why),
    };
    match disk::disk_space(root) {
        Ok(DiskSpace { free, total }) => {
            let percent = (free.saturating_mul(100)).checked_div(total).unwrap_or(0);
            RootDirSpace {
                line: format!(
                    "{} free of {} ({percent}%) on {}",
                    ByteSize(free),
                    ByteSize(total),
                    root.display()
                ),
                low: total > 0 && percent < LOW_FREE_PERCENT,
            }
        }
        Err(e) => not_visible(&format!("statvfs {}: {e}", root.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(root: &Path, driver: &str, engine_id: Option<&str>) -> cascade_engine::Storage {
        cascade_engine::Storage {
            driver: Some(driver.into()),
            root_dir: Some(root.to_path_buf()),
            engine_id: engine_id.map(str::to_string),
            store: ImageStore::Classic {
                driver: driver.into(),
            },
        }
    }

    #[test]
    fn a_visible_root_dir_is_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("image/overlay2")).expect("layout");
        std::fs::write(dir.path().join("engine-id"), "e1\n").expect("engine-id");
        let space = root_dir_space(&storage(dir.path(), "overlay2", Some("e1")), None, true);
        assert!(space.line.contains(" free of "), "{}", space.line);
        assert!(space.line.contains('%'), "{}", space.line);
    }

    #[test]
    fn a_remote_or_containerd_engines_root_dir_is_not_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("image/overlay2")).expect("layout");
        std::fs::write(dir.path().join("engine-id"), "e1\n").expect("engine-id");
        let here = storage(dir.path(), "overlay2", Some("e1"));
        let remote = root_dir_space(&here, None, false);
        assert!(
            remote.line.contains("a remote engine's disk"),
            "{}",
            remote.line
        );
        let containerd = cascade_engine::Storage {
            store: ImageStore::Containerd {
                snapshotter: "overlayfs".into(),
            },
            ..here
        };
        let space = root_dir_space(&containerd, None, true);
        assert!(
            space.line.contains("outside the root dir"),
            "{}",
            space.line
        );
    }

    #[test]
    fn a_missing_root_dir_is_not_visible() {
        let space = root_dir_space(
            &storage(Path::new("/nonexistent/docker-root"), "vfs", None),
            None,
            true,
        );
        assert!(
            space.line.starts_with("not visible from here"),
            "{}",
            space.line
        );
        assert!(!space.low);
    }

    #[test]
    fn another_engines_root_dir_is_not_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("image/overlay2")).expect("layout");
        let space = root_dir_space(&storage(dir.path(), "vfs", None), None, true);
        assert!(space.line.contains("another engine's"), "{}", space.line);
        // No engine-id (Docker 20.10) and none of the engine's images here.
        let image = format!("sha256:{}", "cd".repeat(32));
        let other = root_dir_space(&storage(dir.path(), "overlay2", None), Some(&image), true);
        assert!(other.line.contains("another engine's"), "{}", other.line);
        std::fs::write(dir.path().join("engine-id"), "e1\n").expect("engine-id");
        let same = root_dir_space(&storage(dir.path(), "overlay2", Some("e1")), None, true);
        assert!(same.line.contains(" free of "), "{}", same.line);
    }

    #[test]
    fn a_podman_graph_root_is_visible_only_with_the_engines_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hex = "ef".repeat(32);
        let podman = cascade_engine::Storage {
            store: ImageStore::ContainersStorage {
                driver: "overlay".into(),
            },
            ..storage(dir.path(), "overlay", None)
        };
        let image = format!("sha256:{hex}");
        let space = root_dir_space(&podman, Some(&image), true);
        assert!(space.line.contains("another engine's"), "{}", space.line);
        std::fs::create_dir_all(dir.path().join("overlay-images").join(&hex)).expect("layout");
        let space = root_dir_space(&podman, Some(&image), true);
        assert!(space.line.contains(" free of "), "{}", space.line);
    }
}
