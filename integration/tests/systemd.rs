//! `deploy/systemd` checked by systemd's own tools (systemd 252, Debian
//! 12): `systemd-analyze verify` accepts the three units without a word,
//! and `systemd-analyze security --offline` scores each unit's exposure at
//! or under the value docs/deploy.md states.
//!
//! The units name `/usr/local/bin/cascade-janitor`, which `verify` requires
//! to exist; the test checks copies that name the janitor binary of this
//! build instead, and nothing else changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

const UNITS: [&str; 3] = [
    "cascade-janitor.service",
    "cascade-janitor-healthz.service",
    "cascade-janitor-healthz.timer",
];
/// The exposure docs/deploy.md states for each service.
const STATED_EXPOSURE: [(&str, f64); 2] = [
    ("cascade-janitor.service", 1.3),
    ("cascade-janitor-healthz.service", 8.7),
];

fn units_here() -> Result<(tempfile::TempDir, Vec<PathBuf>)> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = tempfile::Builder::new().prefix("systemd").tempdir()?;
    let binary = integration::janitor_binary();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(source.join(unit))?;
        let text = text.replace(
            "/usr/local/bin/cascade-janitor",
            &binary.display().to_string(),
        );
        let path = dir.path().join(unit);
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    Ok((dir, paths))
}

#[test]
fn systemd_analyze_verify_accepts_the_units_without_a_warning() -> Result<()> {
    let (_dir, paths) = units_here()?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .context("systemd-analyze (Debian's systemd package)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert_eq!(stderr.trim(), "", "systemd-analyze verify warned");
    Ok(())
}

#[test]
fn each_services_exposure_is_at_most_the_stated_score() -> Result<()> {
    let (_dir, paths) = units_here()?;
    for (unit, stated) in STATED_EXPOSURE {
        let path = paths
            .iter()
            .find(|p| p.ends_with(unit))
            .context("unit copied")?;
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(path)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let marker = format!("Overall exposure level for {unit}: ");
        let score: f64 = stdout
            .lines()
            .find_map(|l| l.split(&marker).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no exposure score for {unit} in:\n{stdout}"))?;
        eprintln!("{unit}: exposure {score}");
        ensure!(
            score <= stated,
            "{unit}: exposure {score} is over the stated {stated} (docs/deploy.md)"
        );
    }
    Ok(())
}
