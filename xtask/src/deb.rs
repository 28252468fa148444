//! `cargo xtask deb`: the Debian package, `target/deb/cascade-janitor_<version>_<arch>.deb`.
//!
//! Built with Debian's own `dpkg-deb` from a staged tree, so every file and
//! maintainer script is visible here:
//!
//! - `/usr/bin/cascade-janitor`: the static binary of `cargo xtask image`,
//!   stripped;
//! - `/usr/libexec/docker/cli-plugins/docker-janitor`: a link to it, where
//!   Debian's docker.io looks for system-wide CLI plugins (`docker janitor`);
//! - `/lib/systemd/system/`: the units of `deploy/systemd`, with
//!   `ExecStart` pointing at `/usr/bin`; installed, not enabled (a tool that
//!   deletes images starts when the operator has read its configuration:
//!   `systemctl enable --now cascade-janitor`);
//! - `/etc/cascade-janitor/config.toml` (`deploy/config.toml`), a conffile;
//! - man pages and bash, zsh and fish completions generated from the clap
//!   definitions (`cascade_config::cli::command`);
//! - the copyright (DEP-5, MIT or Apache-2.0) and a changelog.
//!
//! `lintian` checks it in `cargo xtask ci`; `integration/tests/package.rs`
//! installs and removes it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

pub const PACKAGE: &str = "cascade-janitor";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAINTAINER: &str = "cascade-janitor maintainers <janitor@cascade.example.org>";
const SYSTEMD_UNITS: [&str; 3] = [
    "cascade-janitor.service",
    "cascade-janitor-healthz.service",
    "cascade-janitor-healthz.timer",
];
/// Where `deploy/systemd` expects a hand-installed binary, and where the
/// package puts it.
const HAND_INSTALLED: &str = "/usr/local/bin/cascade-janitor";
const PACKAGED: &str = "/usr/bin/cascade-janitor";

/// The package's path: `target/deb/<package>_<version>_<arch>.deb`.
pub fn package_path(root: &Path) -> Result<PathBuf> {
    Ok(root
        .join("target/deb")
        .join(format!("{PACKAGE}_{VERSION}_{}.deb", architecture()?)))
}

fn architecture() -> Result<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("dpkg --print-architecture (the package is built with Debian's dpkg)")?;
    ensure!(out.status.success(), "dpkg --print-architecture failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

pub fn deb(root: &Path) -> Result<PathBuf> {
    let binary = root.join(crate::image::static_binary(root)?);
    let out = root.join("target/deb");
    let stage = out.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    std::fs::create_dir_all(&stage)?;

    let bin = put_file(
        &stage,
        "usr/bin/cascade-janitor",
        &std::fs::read(&binary)?,
        0o755,
    )?;
    let mut strip = Command::new("strip");
    strip.arg("--strip-unneeded").arg(&bin);
    crate::step("strip", strip)?;
    let plugins = stage.join("usr/libexec/docker/cli-plugins");
    std::fs::create_dir_all(&plugins)?;
    std::os::unix::fs::symlink(
        "../../../bin/cascade-janitor",
        plugins.join("docker-janitor"),
    )?;

    for unit in SYSTEMD_UNITS {
        let text = std::fs::read_to_string(root.join("deploy/systemd").join(unit))?;
        let text = packaged_unit(unit, &text)?;
        put_file(
            &stage,
            &format!("lib/systemd/system/{unit}"),
            text.as_bytes(),
            0o644,
        )?;
    }
    put_file(
        &stage,
        "etc/cascade-janitor/config.toml",
        &std::fs::read(root.join("deploy/config.toml"))?,
        0o644,
    )?;
    manual(&stage)?;
    // A static-pie binary is an ELF `DYN` with no `NEEDED`, which lintian
    // takes for a shared library without its dependencies.
    put_file(
        &stage,
        &format!("usr/share/lintian/overrides/{PACKAGE}"),
        format!(
            "# static-pie: no dynamic dependencies by design\n{PACKAGE}: shared-library-lacks-prerequisites [usr/bin/cascade-janitor]\n"
        )
        .as_bytes(),
        0o644,
    )?;
    let doc = format!("usr/share/doc/{PACKAGE}");
    put_file(
        &stage,
        &format!("{doc}/copyright"),
        copyright().as_bytes(),
        0o644,
    )?;
    let changelog = put_file(
        &stage,
        &format!("{doc}/changelog"),
        changelog().as_bytes(),
        0o644,
    )?;
    gzip(&changelog)?;

    let control = stage.join("DEBIAN");
    std::fs::create_dir_all(&control)?;
    put_file(
        &stage,
        "DEBIAN/conffiles",
        b"/etc/cascade-janitor/config.toml\n",
        0o644,
    )?;
    for (script, text) in maintainer_scripts() {
        put_file(&stage, &format!("DEBIAN/{script}"), text.as_bytes(), 0o755)?;
    }
    put_file(&stage, "DEBIAN/md5sums", md5sums(&stage)?.as_bytes(), 0o644)?;
    let control_text = control_file(&architecture()?, installed_size_kib(&stage)?);
    put_file(&stage, "DEBIAN/control", control_text.as_bytes(), 0o644)?;

    let package = package_path(root)?;
    let mut build = Command::new("dpkg-deb");
    build
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&package);
    crate::step("dpkg-deb --build", build)?;
    eprintln!(
        "xtask: built {} ({} bytes)",
        package.display(),
        std::fs::metadata(&package)?.len()
    );
    Ok(package)
}

/// `lintian` on the package: no error (warnings are printed).
pub fn lintian(package: &Path) -> Result<()> {
    let mut lintian = Command::new("lintian");
    lintian
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(package);
    crate::step("lintian", lintian)
        .map_err(|e| e.context("lintian is Debian's package of that name (.ci/run installs it)"))
}

/// A unit of `deploy/systemd` as packaged: the binary is in `/usr/bin`.
fn packaged_unit(unit: &str, text: &str) -> Result<String> {
    let mentions = text.matches(HAND_INSTALLED).count();
    let is_main = unit == "cascade-janitor.service";
    if is_main && mentions == 0 {
        bail!("deploy/systemd/{unit} no longer runs {HAND_INSTALLED}: update xtask/src/deb.rs");
    }
    Ok(text.replace(HAND_INSTALLED, PACKAGED))
}

/// Man pages (one per command) and completions, from the clap definitions.
fn manual(stage: &Path) -> Result<()> {
    let command = cascade_config::cli::command();
    let man = stage.join("usr/share/man/man1");
    std::fs::create_dir_all(&man)?;
    let mut pages = vec![(PACKAGE.to_string(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("{PACKAGE}-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("{PACKAGE} {}", sub.get_name()));
        pages.push((name, page));
    }
    for (name, page) in pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .section("1")
            .manual("cascade-janitor manual")
            .source(format!("cascade-janitor {VERSION}"))
            .render(&mut text)?;
        let path = man.join(format!("{name}.1"));
        std::fs::write(&path, text)?;
        gzip(&path)?;
    }

    use clap_complete::Shell;
    for (shell, path) in [
        (
            Shell::Bash,
            "usr/share/bash-completion/completions/cascade-janitor",
        ),
        (
            Shell::Zsh,
            "usr/share/zsh/vendor-completions/_cascade-janitor",
        ),
        (
            Shell::Fish,
            "usr/share/fish/vendor_completions.d/cascade-janitor.fish",
        ),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(
            shell,
            &mut cascade_config::cli::command(),
            PACKAGE,
            &mut text,
        );
        put_file(stage, path, &text, 0o644)?;
    }
    Ok(())
}

fn control_file(arch: &str, installed_kib: u64) -> String {
    format!(
        "Package: {PACKAGE}
Version: {VERSION}
Architecture: {arch}
Maintainer: {MAINTAINER}
Installed-Size: {installed_kib}
Recommends: curl
Suggests: docker.io | podman-docker
Section: admin
Priority: optional
Homepage: https://cascade.example.org/janitor
Description: removes dangling Docker images labelled cascade.managed=true
 cascade-janitor sweeps a Docker or Podman engine for dangling (untagged)
 images that carry the label cascade.managed=true, and removes them, and
 nothing else: tagged images, images without the label, images in use and
 young images are never touched. It runs once (prune), as a daemon (run,
 with a systemd unit, metrics and a health check), or as the Docker CLI
 plugin `docker janitor`.
"
    )
}

fn changelog() -> String {
    format!(
        "{PACKAGE} ({VERSION}) unstable; urgency=medium

  * Package built by `cargo xtask deb`.

 -- {MAINTAINER}  Wed, 02 Dec 2026 00:00:00 +0000
"
    )
}

fn copyright() -> String {
    let apache = "Licensed under the Apache License, Version 2.0 (the \"License\");\n you may not use this file except in compliance with the License.\n .\n On Debian systems, the complete text of the Apache License, Version 2.0\n can be found in \"/usr/share/common-licenses/Apache-2.0\".";
    let mit = include_str!("../../LICENSE-MIT")
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                " .".to_string()
            } else {
                format!(" {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: {PACKAGE}
Source: https://cascade.example.org/janitor

Files: *
Copyright: 2026 The cascade-janitor developers
License: MIT or Apache-2.0

License: MIT
{mit}

License: Apache-2.0
 {apache}
"
    )
}

/// Like `dh_installsystemd` for units that are not enabled on install:
/// systemd learns of new or changed units, a removed package's service is
/// stopped, and a purge forgets its state.
fn maintainer_scripts() -> [(&'static str, String); 3] {
    let units = SYSTEMD_UNITS.join(" ");
    [
        (
            "postinst",
            format!(
                "#!/bin/sh
set -e
if [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then
\tsystemctl --system daemon-reload >/dev/null || true
\tif [ -n \"$2\" ]; then
\t\tdeb-systemd-invoke try-restart {units} >/dev/null || true
\tfi
fi
"
            ),
        ),
        (
            "prerm",
            format!(
                "#!/bin/sh
set -e
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then
\tdeb-systemd-invoke stop {units} >/dev/null || true
fi
"
            ),
        ),
        (
            "postrm",
            format!(
                "#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
\tsystemctl --system daemon-reload >/dev/null || true
fi
if [ \"$1\" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
\tdeb-systemd-helper purge {units} >/dev/null || true
fi
"
            ),
        ),
    ]
}

fn put_file(stage: &Path, relative: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = stage.join(relative);
    std::fs::create_dir_all(path.parent().context("a file in a folder")?)?;
    std::fs::write(&path, bytes)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// `gzip -9n`: no name or time stamp in the header (reproducible).
fn gzip(path: &Path) -> Result<()> {
    let mut gzip = Command::new("gzip");
    gzip.arg("-9nf").arg(path);
    crate::step("gzip", gzip)
}

/// `DEBIAN/md5sums` over every regular file outside `DEBIAN/`.
fn md5sums(stage: &Path) -> Result<String> {
    let mut files = Vec::new();
    walk(stage, &mut files)?;
    files.sort();
    let mut text = String::new();
    for file in files {
        let relative = file.strip_prefix(stage)?;
        if relative.starts_with("DEBIAN") {
            continue;
        }
        let out = Command::new("md5sum").arg(&file).output()?;
        ensure!(out.status.success(), "md5sum {}", file.display());
        let sum = String::from_utf8(out.stdout)?;
        let sum = sum.split_whitespace().next().context("md5sum output")?;
        writeln!(text, "{sum}  {}", relative.display())?;
    }
    Ok(text)
}

fn installed_size_kib(stage: &Path) -> Result<u64> {
    let mut files = Vec::new();
    walk(stage, &mut files)?;
    let mut bytes = 0;
    for file in files {
        if !file.strip_prefix(stage)?.starts_with("DEBIAN") {
            bytes += std::fs::metadata(&file)?.len();
        }
    }
    Ok(bytes.div_ceil(1024))
}

/// Regular files under `dir` (links are not followed).
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}
