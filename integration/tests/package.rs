//! The Debian package (`cargo xtask deb`) on this machine's Debian: `dpkg -i`
//! installs the binary on `$PATH`, its man pages, completions, units, the
//! conffile and the `docker janitor` plugin link; `cascade-janitor doctor`
//! from `$PATH` reaches the nested engine; `dpkg -r` leaves nothing but the
//! conffile, and `dpkg -P` not even that.
//!
//! It installs on the host (as root, which CI is), so it refuses to run
//! where the package is already installed, and holds a lock so no other
//! run of it installs at the same time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use integration::NestedEngine;

const PACKAGE: &str = "cascade-janitor";
const CONFFILE: &str = "/etc/cascade-janitor/config.toml";

/// The package `cargo xtask deb` built (`cargo xtask safety` builds it
/// when missing).
fn package() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/deb");
    let found = std::fs::read_dir(&dir)
        .with_context(|| format!("{} is missing: run `cargo xtask deb`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    found.with_context(|| format!("no .deb in {}: run `cargo xtask deb`", dir.display()))
}

fn run(program: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(program)
        .args(args)
        .env_remove("SENTRY_DSN")
        .output()
        .with_context(|| format!("running {program}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Whether dpkg knows the package in any state but "not installed".
fn dpkg_knows() -> Result<bool> {
    let (code, stdout, _) = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])?;
    Ok(code == 0 && !stdout.contains("not-installed"))
}

/// Everything `dpkg -L` lists that is not a directory.
fn installed_files() -> Result<Vec<String>> {
    let (code, stdout, stderr) = run("dpkg", &["-L", PACKAGE])?;
    ensure!(code == 0, "dpkg -L: {stderr}");
    Ok(stdout
        .lines()
        .filter(|l| !Path::new(l).is_dir())
        .map(str::to_string)
        .collect())
}

#[tokio::test]
async fn the_package_installs_runs_from_path_and_leaves_only_its_conffile() -> Result<()> {
    let deb = package()?;
    let lock = std::fs::File::create("/tmp/cascade-janitor-package-test.lock")?;
    lock.lock()?;
    if dpkg_knows()? {
        bail!(
            "{PACKAGE} is already installed on this machine; this test installs and removes it, so it runs only where it is not"
        );
    }
    let engine = NestedEngine::start().await?;

    let (code, _, stderr) = run("dpkg", &["-i", &deb.display().to_string()])?;
    ensure!(code == 0, "dpkg -i: {stderr}");
    let files = installed_files()?;
    for expected in [
        "/usr/bin/cascade-janitor",
        "/usr/libexec/docker/cli-plugins/docker-janitor",
        "/lib/systemd/system/cascade-janitor.service",
        "/lib/systemd/system/cascade-janitor-healthz.timer",
        CONFFILE,
        "/usr/share/man/man1/cascade-janitor.1.gz",
        "/usr/share/man/man1/cascade-janitor-prune.1.gz",
        "/usr/share/bash-completion/completions/cascade-janitor",
        "/usr/share/zsh/vendor-completions/_cascade-janitor",
        "/usr/share/fish/vendor_completions.d/cascade-janitor.fish",
        "/usr/share/doc/cascade-janitor/copyright",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not in {files:?}"
        );
    }
    let (_, conffiles, _) = run("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE])?;
    assert!(conffiles.trim_start().starts_with(CONFFILE), "{conffiles}");
    let unit = std::fs::read_to_string("/lib/systemd/system/cascade-janitor.service")?;
    assert!(
        unit.contains(
            "ExecStart=/usr/bin/cascade-janitor run --config /etc/cascade-janitor/config.toml"
        ),
        "{unit}"
    );

    // From $PATH, with the packaged configuration, against the nested engine.
    let host = engine.host();
    let (code, stdout, stderr) = run(
        "cascade-janitor",
        &["doctor", "--config", CONFFILE, "--docker-host", &host],
    )?;
    assert_eq!(code, 0, "cascade-janitor doctor: {stdout}{stderr}");
    assert!(stdout.starts_with(&format!("engine: {host} (")), "{stdout}");
    let (code, stdout, _) = run(
        "/usr/libexec/docker/cli-plugins/docker-janitor",
        &["docker-cli-plugin-metadata"],
    )?;
    assert_eq!(code, 0);
    let metadata: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(metadata["SchemaVersion"], "0.1.0");

    // Remove: only the conffile stays; purge: nothing.
    let (code, _, stderr) = run("dpkg", &["-r", PACKAGE])?;
    ensure!(code == 0, "dpkg -r: {stderr}");
    let left: Vec<&String> = files
        .iter()
        .filter(|f| Path::new(f.as_str()).symlink_metadata().is_ok())
        .collect();
    assert_eq!(left, vec![&CONFFILE.to_string()]);
    let (code, _, stderr) = run("dpkg", &["-P", PACKAGE])?;
    ensure!(code == 0, "dpkg -P: {stderr}");
    assert!(!Path::new(CONFFILE).exists(), "purge left {CONFFILE}");
    assert!(!dpkg_knows()?);

    engine.finish().await
}
