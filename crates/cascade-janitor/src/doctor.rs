//! `doctor`: is each engine reachable, what does the janitor see there, and
//! how full is the engine's disk. It removes nothing (its sweep is a dry run).
//!
//! Exit 1 ("a problem") when an engine cannot be reached or a query the
//! janitor depends on fails (version, info, listing images or containers):
//! then `run` could not do its work either. "No image carries the labels" is
//! a warning with the fix, not a problem: it is the normal state of a new
//! host before the first snapshot, and a deployment check must not fail
//! there. Low free space is a warning too: it is what the janitor is for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytesize::ByteSize;
use cascade_cleanup::disk::{self, DiskSpace};
use cascade_cleanup::{DockerImages, ImageStore};
use cascade_engine::Engine;

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
async fn check(docker: &Engine, host: &str, common: &CommonSettings) -> usize {
    let config = sweep_config(common, true);
    let mut problems = 0;
    match docker.version().await {
        Ok(v) => println!(
            "engine: {host} (Docker {}, API {}; the janitor speaks API {})",
            v.version.as_deref().unwrap_or("?"),
            v.api_version.as_deref().unwrap_or("?"),
            docker.api_version().as_deref().unwrap_or("?")
        ),
        Err(e) => {
            println!("engine: {host}: version query failed: {e}");
            problems += 1;
        }
    }
    match docker.storage().await {
        Ok(storage) => {
            let driver = storage.driver.as_deref();
            let root = storage.root_dir.as_deref();
            let remote = !engine::is_local(host);
            let store = match &storage.store {
                ImageStore::Classic { driver } => format!("classic image store, driver {driver}"),
                ImageStore::Containerd { snapshotter } => {
                    format!("containerd image store, snapshotter {snapshotter}")
                }
            };
            println!(
                "storage: {store}, root dir {}",
                root.map_or("?".into(), Path::to_string_lossy)
            );
            let containerd = matches!(storage.store, ImageStore::Containerd { .. });
            if let Some(root) = root {
                let space = if remote {
                    RootDirSpace::not_visible("a remote engine's disk")
                } else if containerd {
                    RootDirSpace::not_visible(
                        "the containerd image store keeps images outside the root dir",
                    )
                } else {
                    // The evidence for engines without an engine-id file:
                    // any image the engine holds.
                    let image = docker
                        .list_images(&HashMap::new())
                        .await
                        .ok()
                        .and_then(|images| images.into_iter().next())
                        .map(|image| image.id);
                    root_dir_space(root, driver, storage.engine_id.as_deref(), image.as_deref())
                };
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

/// Free space of the engine's root dir, as seen from here.
#[derive(Debug, PartialEq, Eq)]
struct RootDirSpace {
    line: String,
    low: bool,
}

/// The engine's root dir is only measurable when the janitor sees the same
/// folder; see `cascade_engine::disk::visible_data_root`. Otherwise it is
/// reported as not visible rather than measured wrongly.
impl RootDirSpace {
    fn not_visible(why: &str) -> RootDirSpace {
        RootDirSpace {
            line: format!("not visible from here ({why}); check it on the engine's host"),
            low: false,
        }
    }
}

fn root_dir_space(
    root: &Path,
    driver: Option<&str>,
    engine_id: Option<&str>,
    image: Option<&str>,
) -> RootDirSpace {
    let not_visible = RootDirSpace::not_visible;
    if let Err(why) = cascade_engine::disk::visible_data_root(root, driver, engine_id, image) {
        return not_visible(&why);
    }
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

    #[test]
    fn a_visible_root_dir_is_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("image/overlay2")).expect("layout");
        std::fs::write(dir.path().join("engine-id"), "e1\n").expect("engine-id");
        let space = root_dir_space(dir.path(), Some("overlay2"), Some("e1"), None);
        assert!(space.line.contains(" free of "), "{}", space.line);
        assert!(space.line.contains('%'), "{}", space.line);
    }

    #[test]
    fn a_missing_root_dir_is_not_visible() {
        let space = root_dir_space(
            Path::new("/nonexistent/docker-root"),
            Some("vfs"),
            None,
            None,
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
        let space = root_dir_space(dir.path(), Some("vfs"), None, None);
        assert!(space.line.contains("another engine's"), "{}", space.line);
        // No engine-id (Docker 20.10) and none of the engine's images here.
        let image = format!("sha256:{}", "cd".repeat(32));
        let other = root_dir_space(dir.path(), Some("overlay2"), None, Some(&image));
        assert!(other.line.contains("another engine's"), "{}", other.line);
        std::fs::write(dir.path().join("engine-id"), "e1\n").expect("engine-id");
        let same = root_dir_space(dir.path(), Some("overlay2"), Some("e1"), None);
        assert!(same.line.contains(" free of "), "{}", same.line);
    }
}
