//! `doctor` against a nested engine with known fixtures: its counts, the
//! engine's store and API version, the root dir line, the warning when no image carries the labels, and its exit
//! codes.

use std::time::Duration;

use anyhow::Result;
use integration::NestedEngine;
use integration::engine::{Store, all_image_ids};
use integration::fixtures::{self, ImageSpec};

fn doctor(hosts: &[&str]) -> Result<(i32, String)> {
    let mut command = std::process::Command::new(integration::janitor_binary());
    command.arg("doctor").env_remove("SENTRY_DSN");
    for host in hosts {
        command.args(["--docker-host", host]);
    }
    let out = command.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
}

#[tokio::test]
async fn doctor_counts_what_is_in_scope_and_removes_nothing() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let d = &engine.docker;
    fixtures::load(
        d,
        &[
            ImageSpec::new("ours-old-1").ours(),
            ImageSpec::new("ours-old-2").ours(),
            ImageSpec::new("ours-young")
                .ours()
                .age(Duration::from_secs(5)),
            ImageSpec::new("ours-current")
                .ours()
                .tagged("cascade-snapshot-p-w:latest"),
            ImageSpec::new("lookalike").label("cascade.managed", "True"),
            ImageSpec::new("theirs-1"),
            ImageSpec::new("theirs-2"),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let before = all_image_ids(d).await?;

    let (code, stdout) = doctor(&[&engine.host()])?;
    assert_eq!(code, 0, "healthy:\n{stdout}");
    assert!(
        line(&stdout, "engine:").contains(&engine.host()),
        "{stdout}"
    );
    // The classic store here runs `vfs` (`overlay2` on `28.5-overlay2`);
    // on the containerd store (26.1 and 28.5 with containerd-snapshotter)
    // `Driver` names the snapshotter. Podman's `/info` looks like a
    // classic store's (`Driver` vfs, no `driver-type`); the janitor tells
    // it from `/version`.
    let store = match (engine.engine.store, engine.engine.overlay2) {
        (Store::ContainersStorage, _) => "storage: containers-storage, driver vfs, root dir ",
        (Store::Classic, false) => "storage: classic image store, driver vfs, root dir ",
        (Store::Classic, true) => "storage: classic image store, driver overlay2, root dir ",
        (Store::Containerd, _) => {
            "storage: containerd image store, snapshotter overlayfs, root dir "
        }
    };
    assert!(line(&stdout, "storage:").starts_with(store), "{stdout}");
    // The API version the engine states, and the one every request uses.
    let api = engine.engine.api_version();
    let api = format!("API {api}; the janitor speaks API {api})");
    assert!(line(&stdout, "engine:").ends_with(&api), "{stdout}");
    // Which engine it is, and the row of proven engines that admits it.
    let implementation = match engine.engine.store {
        Store::ContainersStorage => "(Podman ",
        _ => "(Docker ",
    };
    assert!(
        line(&stdout, "engine:").contains(implementation),
        "{stdout}"
    );
    let proven = line(&stdout, "proven:");
    assert!(
        proven.contains(engine.engine.name()) && proven.contains("cargo xtask safety --engine"),
        "{stdout}"
    );
    // The nested engine's /var/lib/docker is not this machine's: the folder
    // of that name here belongs to the host engine.
    // On `28.5-overlay2` the host's own folder of that name has the same
    // driver, and a 20.10 host engine writes no engine-id: the engine's
    // images, absent there, are what tells them apart.
    assert!(
        line(&stdout, "root dir free space:").contains("not visible from here"),
        "{stdout}"
    );
    // Labelled: two old, one young (all dangling) and one tagged.
    assert_eq!(
        line(&stdout, "images carrying the labels:"),
        "images carrying the labels: 4"
    );
    assert!(
        line(&stdout, "of which dangling (in scope):").ends_with(": 3"),
        "{stdout}"
    );
    // The young one is kept by the default --min-age 10m.
    assert!(
        line(&stdout, "reclaimable now:").ends_with(": 2"),
        "{stdout}"
    );
    // The look-alike and the two unlabelled dangling images.
    assert!(
        line(&stdout, "dangling images out of scope").ends_with(": 3"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning:"), "{stdout}");
    assert_eq!(all_image_ids(d).await?, before, "doctor removes nothing");
    engine.finish().await
}

#[tokio::test]
async fn doctor_warns_with_the_fix_when_no_image_carries_the_labels() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("theirs"),
            ImageSpec::new("mysql").tagged("mysql:8.0"),
        ],
    )
    .await?;
    let (code, stdout) = doctor(&[&engine.host()])?;
    assert_eq!(code, 0, "a warning is not a problem:\n{stdout}");
    assert_eq!(
        line(&stdout, "images carrying the labels:"),
        "images carrying the labels: 0"
    );
    let warning = line(&stdout, "warning: no image carries");
    assert!(warning.contains("LABEL cascade.managed=true"), "{warning}");
    engine.finish().await
}

#[tokio::test]
async fn doctor_with_an_engine_down_reports_each_and_exits_1() -> Result<()> {
    let engine = NestedEngine::start().await?;
    fixtures::load(&engine.docker, &[ImageSpec::new("ours").ours()]).await?;
    let dir = tempfile::tempdir()?;
    let down = format!("unix://{}/nobody.sock", dir.path().display());
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("nobody.sock"))?;
    drop(_listener); // the socket file stays; nobody answers on it
    let (code, stdout) = doctor(&[&engine.host(), &down])?;
    assert_eq!(code, 1, "{stdout}");
    let live = stdout
        .split(&format!("== engine {down} =="))
        .next()
        .unwrap_or_default();
    assert!(
        live.contains(&format!("== engine {} ==", engine.host())),
        "{stdout}"
    );
    assert!(line(live, "reclaimable now:").ends_with(": 1"), "{stdout}");
    assert!(
        line(&stdout, "problem:").contains("nobody.sock"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 2 engines healthy"), "{stdout}");
    engine.finish().await
}
