//! `cargo xtask dind-image --engine V`: the nested-engine images of the
//! engine matrix, built without a registry.
//!
//! - `20.10`: the host's own engine binaries (Debian 12's `docker.io`) and
//!   every shared library `ldd` lists for them.
//! - `26.1` (Debian `trixie`) and `28.5` (Debian `sid`): the newest
//!   `docker.io` of that suite and its runtime, fetched with `apt-get
//!   download` into a private apt state under `target/dind-apt/` (the
//!   host's apt configuration, lists and cache are never touched),
//!   unpacked with `dpkg-deb -x` into one rootfs and `docker import`ed.
//!
//! Each image carries the versions it holds as labels
//! (`cascade.dind.docker`, `.containerd`, `.runc`), so `safety` prints
//! what it really ran on.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

/// Repository of the nested-engine images; the tag is the engine version.
pub const DIND_REPOSITORY: &str = "cascade-janitor-dind";

/// Engine versions an image can be built for, and where they come from.
pub const VERSIONS: &[(&str, Source)] = &[
    ("20.10", Source::Host),
    ("26.1", Source::Suite("trixie")),
    ("28.5", Source::Suite("sid")),
];

/// Every engine configuration of the matrix, in the order `safety` runs
/// them. 20.10 only has the classic store (its `vfs` driver is fixed in
/// the image's entrypoint).
pub const ENGINES: &[&str] = &[
    "20.10",
    "26.1-classic",
    "26.1-containerd",
    "28.5-classic",
    "28.5-containerd",
];

/// Engines outside the default matrix, run by name (`--engine`):
/// `28.5-overlay2` is the classic store on the graph driver production
/// hosts use, where a commit takes milliseconds (a second on `vfs`).
pub const EXTRA_ENGINES: &[&str] = &["28.5-overlay2"];

/// The engine `wanted` names (`20.10-classic` is `20.10`), from the matrix
/// or the extras.
pub fn engine_named(wanted: &str) -> Option<&'static str> {
    let wanted = if wanted == "20.10-classic" {
        "20.10"
    } else {
        wanted
    };
    ENGINES
        .iter()
        .chain(EXTRA_ENGINES)
        .find(|e| **e == wanted)
        .copied()
}

/// Every engine name `--engine` takes, for error messages.
pub fn engine_names() -> String {
    ENGINES
        .iter()
        .chain(EXTRA_ENGINES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The host's installed engine binaries.
    Host,
    /// A Debian suite, through a private apt state.
    Suite(&'static str),
}

const LABEL_PREFIX: &str = "cascade.dind";
const COMPONENTS: [&str; 3] = ["docker", "containerd", "runc"];

/// The version part of an engine name (`28.5-containerd` -> `28.5`).
pub fn version_of(engine: &str) -> Result<&'static str> {
    let version = engine.split('-').next().unwrap_or(engine);
    VERSIONS
        .iter()
        .map(|(v, _)| *v)
        .find(|v| *v == version)
        .with_context(|| {
            format!(
                "unknown engine `{engine}`; use one of {} (or the version alone: 20.10, 26.1, 28.5)",
                engine_names()
            )
        })
}

pub fn image_tag(version: &str) -> String {
    format!("{DIND_REPOSITORY}:{version}")
}

/// Builds the image for `version` unless it exists (or `force`).
pub fn dind_image(version: &str, force: bool) -> Result<()> {
    ensure_engine()?;
    let tag = image_tag(version);
    if !force && crate::image_exists(&tag)? {
        eprintln!(
            "xtask: {tag} already exists ({}); use --force to rebuild",
            describe(&tag)?
        );
        return Ok(());
    }
    let source = VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, s)| *s)
        .with_context(|| format!("no recipe for engine version {version}"))?;
    match source {
        Source::Host => from_host(&tag),
        Source::Suite(suite) => from_suite(version, suite, &tag),
    }?;
    eprintln!("xtask: built {tag} ({})", describe(&tag)?);
    Ok(())
}

/// "docker.io 26.1.5+dfsg1-9, containerd 1.7.24~ds1-6, runc 1.1.15+ds1-2",
/// from the image's labels.
pub fn describe(tag: &str) -> Result<String> {
    let mut parts = Vec::new();
    for component in COMPONENTS {
        let out = Command::new("docker")
            .args([
                "image",
                "inspect",
                "--format",
                &format!(r#"{{{{index .Config.Labels "{LABEL_PREFIX}.{component}"}}}}"#),
                tag,
            ])
            .output()
            .context("cannot run `docker image inspect`")?;
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let value = if value.is_empty() || value == "<no value>" {
            "unlabelled (rebuild with --force)".to_string()
        } else {
            value
        };
        let name = if component == "docker" {
            "docker.io"
        } else {
            component
        };
        parts.push(format!("{name} {value}"));
    }
    Ok(parts.join(", "))
}

fn ensure_engine() -> Result<()> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match info {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!("no Docker engine answers `docker info`; start dockerd (see .ci/run) and retry"),
    }
}

/// `docker import` of `rootfs` (a tar stream) with the engine's entrypoint
/// and the version labels.
fn import(
    tag: &str,
    rootfs: impl FnOnce(&mut dyn Write) -> Result<()>,
    changes: &[String],
) -> Result<()> {
    let mut args = vec!["import".to_string()];
    for change in changes {
        args.push("--change".into());
        args.push(change.clone());
    }
    args.push("-".into());
    args.push(tag.into());
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run `docker import`")?;
    let mut stdin = child.stdin.take().context("docker import's stdin")?;
    let fed = rootfs(&mut stdin);
    drop(stdin);
    let status = child.wait()?;
    fed?;
    ensure!(status.success(), "docker import failed ({status})");
    Ok(())
}

fn label_change(versions: &[(&str, String)]) -> String {
    let labels: Vec<String> = versions
        .iter()
        .map(|(component, version)| format!(r#"{LABEL_PREFIX}.{component}="{version}""#))
        .collect();
    format!("LABEL {}", labels.join(" "))
}

fn print_versions(tag: &str, versions: &[(&str, String)]) {
    let list: Vec<String> = versions
        .iter()
        .map(|(c, v)| format!("{} {v}", if *c == "docker" { "docker.io" } else { c }))
        .collect();
    eprintln!("xtask: {tag} holds {}", list.join(", "));
}

// ---------------------------------------------------------------- 20.10

/// Engine binaries the nested engine needs, as DOCKER.md lists them. They
/// are looked up where Debian's docker.io and Docker's docker-ce put them.
const ENGINE_BINARIES: &[&str] = &[
    "dockerd",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "docker-init",
    "docker-proxy",
];
const BINARY_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/libexec/docker",
];

fn find_binary(name: &str) -> Result<PathBuf> {
    BINARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found in {BINARY_DIRS:?}; install Debian's docker.io (apt-get install docker.io)"))
}

/// The installed version of a Debian package, or what the binary says.
fn host_version(package: &str, binary: &str) -> String {
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output();
    if let Ok(out) = dpkg
        && out.status.success()
        && !out.stdout.is_empty()
    {
        return String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn from_host(tag: &str) -> Result<()> {
    let files = host_rootfs_files()?;
    let dockerd = find_binary("dockerd")?;
    let versions = [
        ("docker", host_version("docker.io", "dockerd")),
        ("containerd", host_version("containerd", "containerd")),
        ("runc", host_version("runc", "runc")),
    ];
    print_versions(tag, &versions);
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(true);
    for dir in [
        "tmp",
        "run",
        "run/dind",
        "var/lib/docker",
        "etc",
        "proc",
        "sys",
        "dev",
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        archive.append_data(&mut header, dir, std::io::empty())?;
    }
    for file in &files {
        let inside = file.strip_prefix("/").context("absolute path")?;
        archive
            .append_path_with_name(file, inside)
            .with_context(|| format!("cannot add {}", file.display()))?;
    }
    let rootfs = archive.into_inner()?;
    eprintln!(
        "xtask: importing {} host files ({} bytes) as {tag}",
        files.len(),
        rootfs.len()
    );
    import(
        tag,
        |w| Ok(w.write_all(&rootfs)?),
        &[
            // The store is fixed here: 20.10 only runs the classic store.
            format!(
                r#"ENTRYPOINT ["{}","--storage-driver=vfs","--iptables=false","--ip6tables=false","--bridge=none"]"#,
                dockerd.display()
            ),
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            label_change(&versions),
        ],
    )
}

/// The engine binaries plus every shared library `ldd` lists for them.
fn host_rootfs_files() -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for name in ENGINE_BINARIES {
        let path = find_binary(name)?;
        let out = Command::new("ldd")
            .arg(&path)
            .output()
            .context("cannot run ldd")?;
        files.insert(path);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let candidate = line
                .split("=>")
                .last()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            if candidate.starts_with('/') {
                files.insert(PathBuf::from(candidate));
            }
        }
    }
    Ok(files)
}

// ---------------------------------------------------------- 26.1, 28.5

/// What a suite's dockerd needs at run time (DOCKER.md, "Newer engines").
const SUITE_PACKAGES: &[&str] = &[
    "docker.io",
    "containerd",
    "runc",
    "tini",
    "libc6",
    "libseccomp2",
    "libsystemd0",
    "libcap2",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "libgcc-s1",
    "libgcrypt20",
    "libgpg-error0",
];

/// The Debian mirror the host already uses (first `URIs:` / `deb` line
/// that is not the security archive), so no other address is contacted.
fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name = path.to_string_lossy();
            if name.ends_with(".sources") || name.ends_with(".list") {
                texts.extend(std::fs::read_to_string(&path).ok());
            }
        }
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if line.starts_with("deb ") {
                line.split_whitespace()
                    .skip(1)
                    .find(|w| w.starts_with("http"))
            } else {
                None
            };
            if let Some(uri) = uri
                && uri.contains("/debian")
                && !uri.contains("security")
            {
                return uri.trim_end_matches('/').to_string();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// `apt-get`/`apt-cache` with every state path private to `state`.
fn apt(tool: &str, state: &Path) -> Command {
    let mut c = Command::new(tool);
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    c.args(["-q", "-o"])
        .arg(opt("Dir::Etc::sourcelist", &state.join("sources.list")))
        .args(["-o", "Dir::Etc::sourceparts=/nonexistent"])
        .args(["-o", "Dir::Etc::preferencesparts=/nonexistent"])
        .args(["-o", "Dir::Etc::preferences=/nonexistent"])
        .arg("-o")
        .arg(opt("Dir::State::Lists", &state.join("lists")))
        .arg("-o")
        .arg(opt("Dir::Cache", &state.join("cache")))
        .args(["-o", "Dir::State::status=/dev/null"])
        // Downloads land in our own folder; no `_apt` sandbox user needed.
        .args(["-o", "APT::Sandbox::User=root"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    c
}

fn run(what: &str, command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn from_suite(version: &str, suite: &str, tag: &str) -> Result<()> {
    let state = crate::workspace_root().join("target/dind-apt").join(suite);
    let debs = state.join("debs");
    let rootfs = state.join("rootfs");
    for dir in [&debs, &rootfs] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
    }
    for dir in [
        state.join("lists/partial"),
        state.join("cache/archives/partial"),
        debs.clone(),
        rootfs.clone(),
    ] {
        std::fs::create_dir_all(&dir)?;
    }
    let mirror = debian_mirror();
    std::fs::write(
        state.join("sources.list"),
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"
        ),
    )?;
    eprintln!(
        "xtask: apt-get update of {mirror} {suite} (private state in {})",
        state.display()
    );
    run(
        &format!("apt-get update ({suite})"),
        apt("apt-get", &state).arg("update"),
    )?;
    // One suite in the list, every priority equal: the candidate apt
    // downloads is the newest version the suite has.
    eprintln!("xtask: apt-get download {}", SUITE_PACKAGES.join(" "));
    run(
        &format!("apt-get download ({suite})"),
        apt("apt-get", &state)
            .arg("download")
            .args(SUITE_PACKAGES)
            .current_dir(&debs),
    )?;
    let mut versions = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    files.sort();
    for deb in &files {
        let fields = run(
            "dpkg-deb -f",
            Command::new("dpkg-deb")
                .arg("-f")
                .arg(deb)
                .args(["Package", "Version"]),
        )?;
        let field = |name: &str| {
            fields
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or("")
                .to_string()
        };
        let (package, package_version) = (field("Package"), field("Version"));
        match package.as_str() {
            "docker.io" => versions.push(("docker", package_version)),
            "containerd" => versions.push(("containerd", package_version)),
            "runc" => versions.push(("runc", package_version)),
            _ => {}
        }
        run(
            "dpkg-deb -x",
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&rootfs),
        )?;
    }
    versions.sort_by_key(|(c, _)| COMPONENTS.iter().position(|x| x == c));
    ensure!(
        versions.len() == COMPONENTS.len(),
        "apt-get download from {suite} did not fetch docker.io, containerd and runc (got {versions:?})"
    );
    print_versions(tag, &versions);
    let docker = &versions[0].1;
    if !docker.starts_with(&format!("{version}.")) {
        // The suite moved on; the tag keeps its name, the labels the truth.
        eprintln!(
            "xtask: WARNING: {suite} now carries docker.io {docker}, not {version}.x; {tag} holds {docker}"
        );
    }
    finish_rootfs(&rootfs)?;
    eprintln!("xtask: importing {} as {tag}", rootfs.display());
    import(
        tag,
        |w| {
            let mut tar = Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .args(["--numeric-owner", "-cf", "-", "."])
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot run tar")?;
            let mut out = tar.stdout.take().context("tar's stdout")?;
            std::io::copy(&mut out, w)?;
            let status = tar.wait()?;
            ensure!(status.success(), "tar of the rootfs failed ({status})");
            Ok(())
        },
        &[
            // No storage flag: the store comes from the mounted
            // /etc/docker/daemon.json (integration/src/engine.rs).
            r#"ENTRYPOINT ["/usr/sbin/dockerd","--iptables=false","--ip6tables=false","--bridge=none"]"#.into(),
            "ENV PATH=/usr/sbin:/usr/bin:/usr/libexec/docker".into(),
            label_change(&versions),
        ],
    )
}

/// Merged-/usr symlinks, the folders dockerd expects, and a minimal
/// passwd/group.
fn finish_rootfs(rootfs: &Path) -> Result<()> {
    for dir in ["lib", "lib64", "bin", "sbin"] {
        let top = rootfs.join(dir);
        let usr = rootfs.join("usr").join(dir);
        std::fs::create_dir_all(&usr)?;
        if top.is_symlink() {
            continue;
        }
        if top.is_dir() {
            // A package that still ships /lib/...: fold it into /usr.
            run(
                "cp -a",
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", top.display()))
                    .arg(&usr),
            )?;
            std::fs::remove_dir_all(&top)?;
        }
        std::os::unix::fs::symlink(format!("usr/{dir}"), &top)?;
    }
    for dir in [
        "tmp",
        "run/dind",
        "var/lib/docker",
        "etc/docker",
        "proc",
        "sys",
        "dev",
    ] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}
