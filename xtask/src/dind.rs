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
//! - `podman-4.3` (Debian `bookworm`), `podman-5.4` (`trixie`) and
//!   `podman-5.8` (`sid`): the suite's `podman` and `crun` with their whole
//!   dependency closure (`apt-get install -d` against an empty dpkg status,
//!   in the same kind of private apt state), unpacked and imported the same
//!   way; the entrypoint is `podman system service` on `vfs`.
//!
//! Each image carries the versions it holds as labels
//! (`cascade.dind.docker`, `.containerd`, `.runc`; for Podman
//! `cascade.dind.podman`, `.conmon`, `.crun`), so `safety` prints what it
//! really ran on.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

/// Repository of the nested-engine images; the tag is the image name below.
pub const DIND_REPOSITORY: &str = "cascade-janitor-dind";

/// The images that can be built (their tag in [`DIND_REPOSITORY`]), and
/// where each comes from.
pub const VERSIONS: &[(&str, Source)] = &[
    ("20.10", Source::Host),
    ("26.1", Source::Suite("trixie")),
    ("28.5", Source::Suite("sid")),
    ("podman-4.3", Source::Podman("bookworm")),
    ("podman-5.4", Source::Podman("trixie")),
    ("podman-5.8", Source::Podman("sid")),
];

/// Every engine configuration of the matrix, in the order `safety` runs
/// them: the five Docker ones, then the three Podman ones. 20.10 only has
/// the classic store (its `vfs` driver is fixed in the image's
/// entrypoint); Podman has one store, containers-storage on `vfs`, so its
/// engine names are its image names.
pub const ENGINES: &[&str] = &[
    "20.10",
    "26.1-classic",
    "26.1-containerd",
    "28.5-classic",
    "28.5-containerd",
    "podman-4.3",
    "podman-5.4",
    "podman-5.8",
];

/// Engines outside the default matrix, run by name (`--engine`):
/// `28.5-overlay2` is the classic store on the graph driver production
/// hosts use, where a commit takes milliseconds (a second on `vfs`).
pub const EXTRA_ENGINES: &[&str] = &["28.5-overlay2"];

/// Another name `--engine` takes for an engine: `20.10-classic` is `20.10`.
const ALIASES: &[(&str, &str)] = &[("20.10-classic", "20.10")];

/// The engine `wanted` names (`20.10-classic` is `20.10`), from the matrix
/// or the extras.
pub fn engine_named(wanted: &str) -> Option<&'static str> {
    let wanted = ALIASES
        .iter()
        .find(|(alias, _)| *alias == wanted)
        .map_or(wanted, |(_, name)| *name);
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

/// What `safety --engine` accepts: every engine and its aliases (the
/// clap value parser, so the list is kept here only).
pub fn engine_choices() -> Vec<&'static str> {
    let mut choices: Vec<&'static str> = ENGINES.iter().chain(EXTRA_ENGINES).copied().collect();
    choices.extend(ALIASES.iter().map(|(alias, _)| *alias));
    choices
}

/// What `dind-image --engine` accepts: every image, and every engine name
/// (which builds that engine's image).
pub fn image_choices() -> Vec<&'static str> {
    let mut choices: Vec<&'static str> = VERSIONS.iter().map(|(v, _)| *v).collect();
    for engine in engine_choices() {
        if !choices.contains(&engine) {
            choices.push(engine);
        }
    }
    choices
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The host's installed engine binaries.
    Host,
    /// A Debian suite's `docker.io`, through a private apt state.
    Suite(&'static str),
    /// A Debian suite's `podman`, through a private apt state.
    Podman(&'static str),
}

impl Source {
    fn family(self) -> Family {
        match self {
            Source::Host | Source::Suite(_) => Family::Docker,
            Source::Podman(_) => Family::Podman,
        }
    }
}

/// Which engine an image runs; it decides the labels and the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Docker,
    Podman,
}

impl Family {
    /// The components whose versions label the image: the label's last
    /// part and the Debian package it is read from (the engine first).
    fn components(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Family::Docker => &[
                ("docker", "docker.io"),
                ("containerd", "containerd"),
                ("runc", "runc"),
            ],
            Family::Podman => &[("podman", "podman"), ("conmon", "conmon"), ("crun", "crun")],
        }
    }

    /// Folders the engine expects in its rootfs, beyond what its packages
    /// ship. `tmp` and `var/tmp` get mode 1777 ([`finish_rootfs`]); Podman
    /// stages `docker build` contexts and loaded archives in `/var/tmp`
    /// (without it: `stat /var/tmp`).
    fn rootfs_dirs(self) -> &'static [&'static str] {
        match self {
            Family::Docker => &[
                "tmp",
                "run/dind",
                "var/lib/docker",
                "etc/docker",
                "proc",
                "sys",
                "dev",
            ],
            Family::Podman => &[
                "tmp",
                "var/tmp",
                "run/dind",
                "var/lib/containers",
                "etc",
                "proc",
                "sys",
                "dev",
            ],
        }
    }
}

const LABEL_PREFIX: &str = "cascade.dind";

/// The image an engine runs (`28.5-containerd` -> `28.5`, `podman-5.4` ->
/// `podman-5.4`); an image's own name is accepted too.
pub fn version_of(engine: &str) -> Result<&'static str> {
    let image = |name: &str| VERSIONS.iter().map(|(v, _)| *v).find(|v| *v == name);
    image(engine)
        .or_else(|| engine.rsplit_once('-').and_then(|(v, _)| image(v)))
        .with_context(|| {
            format!(
                "unknown engine `{engine}`; use one of {} (or an image alone: {})",
                engine_names(),
                VERSIONS
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn source_of(version: &str) -> Result<Source> {
    VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, s)| *s)
        .with_context(|| format!("no recipe for engine image {version}"))
}

/// The engine family an image (`version_of`'s answer) runs.
pub fn family_of(version: &str) -> Result<Family> {
    Ok(source_of(version)?.family())
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
            describe(version)?
        );
        return Ok(());
    }
    match source_of(version)? {
        Source::Host => from_host(&tag),
        Source::Suite(suite) => from_suite(version, suite, &tag),
        Source::Podman(suite) => from_podman(version, suite, &tag),
    }?;
    eprintln!("xtask: built {tag} ({})", describe(version)?);
    Ok(())
}

/// "docker.io 26.1.5+dfsg1-9, containerd 1.7.24~ds1-6, runc 1.1.15+ds1-2"
/// (or "podman 5.4.2+ds1-2, conmon ..., crun ..."), from the labels of
/// `version`'s image.
pub fn describe(version: &str) -> Result<String> {
    let tag = image_tag(version);
    let mut parts = Vec::new();
    for (component, package) in family_of(version)?.components() {
        let out = Command::new("docker")
            .args([
                "image",
                "inspect",
                "--format",
                &format!(r#"{{{{index .Config.Labels "{LABEL_PREFIX}.{component}"}}}}"#),
                &tag,
            ])
            .output()
            .context("cannot run `docker image inspect`")?;
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let value = if value.is_empty() || value == "<no value>" {
            "unlabelled (rebuild with --force)".to_string()
        } else {
            value
        };
        parts.push(format!("{package} {value}"));
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

fn print_versions(tag: &str, family: Family, versions: &[(&str, String)]) {
    let list: Vec<String> = versions
        .iter()
        .map(|(c, v)| {
            let package = family
                .components()
                .iter()
                .find(|(component, _)| component == c)
                .map_or(*c, |(_, package)| *package);
            format!("{package} {v}")
        })
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
    print_versions(tag, Family::Docker, &versions);
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

/// `apt-get`/`apt-cache` with every state path private to `state`: its
/// own lists, cache, state folder and an empty dpkg status, and no lock on
/// the host's dpkg database.
fn apt(tool: &str, state: &Path) -> Command {
    let mut c = Command::new(tool);
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    c.args(["-q", "-o"])
        .arg(opt("Dir::Etc::sourcelist", &state.join("sources.list")))
        .args(["-o", "Dir::Etc::sourceparts=/nonexistent"])
        .args(["-o", "Dir::Etc::preferencesparts=/nonexistent"])
        .args(["-o", "Dir::Etc::preferences=/nonexistent"])
        .arg("-o")
        .arg(opt("Dir::State", &state.join("state")))
        .arg("-o")
        .arg(opt("Dir::State::Lists", &state.join("lists")))
        .arg("-o")
        .arg(opt("Dir::Cache", &state.join("cache")))
        .args(["-o", "Dir::State::status=/dev/null"])
        .args(["-o", "Debug::NoLocking=1"])
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

/// A private apt state for one suite under `target/dind-apt/<name>`, its
/// lists fresh, and an empty `rootfs/` beside it.
struct AptState {
    dir: PathBuf,
    rootfs: PathBuf,
    suite: String,
}

impl AptState {
    fn update(name: &str, suite: &str) -> Result<AptState> {
        let dir = crate::workspace_root().join("target/dind-apt").join(name);
        let rootfs = dir.join("rootfs");
        let debs = dir.join("debs");
        let archives = dir.join("cache/archives");
        // Packages of an earlier build must not be unpacked with this one's.
        for old in [&debs, &rootfs, &archives] {
            if old.exists() {
                std::fs::remove_dir_all(old)?;
            }
        }
        for new in [
            dir.join("lists/partial"),
            dir.join("state"),
            archives.join("partial"),
            debs,
            rootfs.clone(),
        ] {
            std::fs::create_dir_all(&new)?;
        }
        let mirror = debian_mirror();
        std::fs::write(
            dir.join("sources.list"),
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"
            ),
        )?;
        eprintln!(
            "xtask: apt-get update of {mirror} {suite} (private state in {})",
            dir.display()
        );
        run(
            &format!("apt-get update ({suite})"),
            apt("apt-get", &dir).arg("update"),
        )?;
        Ok(AptState {
            dir,
            rootfs,
            suite: suite.to_string(),
        })
    }

    fn apt_get(&self) -> Command {
        apt("apt-get", &self.dir)
    }

    /// Every `.deb` in `folder`, sorted.
    fn debs_in(folder: &Path) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// `dpkg-deb -x` of every `.deb` in `folder` into the rootfs; returns
    /// the versions of `family`'s components, in its order, and warns when
    /// the engine is not the `version` the image is named for.
    fn unpack(
        &self,
        folder: &Path,
        family: Family,
        version: &str,
        tag: &str,
    ) -> Result<Vec<(&'static str, String)>> {
        let components = family.components();
        let mut versions = Vec::new();
        let debs = Self::debs_in(folder)?;
        eprintln!(
            "xtask: unpacking {} packages into {}",
            debs.len(),
            self.rootfs.display()
        );
        for deb in &debs {
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
            if let Some((component, _)) = components.iter().find(|(_, p)| *p == package) {
                versions.push((*component, package_version));
            }
            run(
                "dpkg-deb -x",
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(deb)
                    .arg(&self.rootfs),
            )?;
        }
        versions.sort_by_key(|(c, _)| components.iter().position(|(x, _)| x == c));
        let packages: Vec<&str> = components.iter().map(|(_, p)| *p).collect();
        ensure!(
            versions.len() == components.len(),
            "apt-get from {} did not fetch {} (got {versions:?})",
            self.suite,
            packages.join(", ")
        );
        print_versions(tag, family, &versions);
        let (engine, engine_version) = (packages[0], &versions[0].1);
        let wanted = version.strip_prefix("podman-").unwrap_or(version);
        if !engine_version.starts_with(&format!("{wanted}.")) {
            // The suite moved on; the tag keeps its name, the labels the truth.
            eprintln!(
                "xtask: WARNING: {} now carries {engine} {engine_version}, not {wanted}.x; {tag} holds {engine_version}",
                self.suite
            );
        }
        Ok(versions)
    }

    /// `docker import` of the finished rootfs as `tag`.
    fn import(&self, family: Family, tag: &str, changes: &[String]) -> Result<()> {
        finish_rootfs(&self.rootfs, family)?;
        eprintln!("xtask: importing {} as {tag}", self.rootfs.display());
        let rootfs = &self.rootfs;
        import(
            tag,
            |w| {
                let mut tar = Command::new("tar")
                    .arg("-C")
                    .arg(rootfs)
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
            changes,
        )
    }
}

fn from_suite(version: &str, suite: &str, tag: &str) -> Result<()> {
    let state = AptState::update(suite, suite)?;
    let debs = state.dir.join("debs");
    // One suite in the list, every priority equal: the candidate apt
    // downloads is the newest version the suite has.
    eprintln!("xtask: apt-get download {}", SUITE_PACKAGES.join(" "));
    run(
        &format!("apt-get download ({suite})"),
        state
            .apt_get()
            .arg("download")
            .args(SUITE_PACKAGES)
            .current_dir(&debs),
    )?;
    let versions = state.unpack(&debs, Family::Docker, version, tag)?;
    state.import(
        Family::Docker,
        tag,
        &[
            // No storage flag: the store comes from the mounted
            // /etc/docker/daemon.json (integration/src/engine.rs).
            r#"ENTRYPOINT ["/usr/sbin/dockerd","--iptables=false","--ip6tables=false","--bridge=none"]"#.into(),
            "ENV PATH=/usr/sbin:/usr/bin:/usr/libexec/docker".into(),
            label_change(&versions),
        ],
    )
}

// ------------------------------------------------------------ Compose v2

/// Where [`compose_plugin`] puts the Docker CLI plugin `docker-compose`
/// (`integration/tests/compose.rs` links it into a CLI folder of its own).
pub const COMPOSE_PLUGIN: &str = "target/compose/docker-compose";

/// Compose v2 as Debian ships it: the `docker-compose` package of trixie
/// (2.26; bookworm's is Compose v1, in Python), a static Go binary, fetched
/// with the same private apt state as the engines and never installed on
/// the host. Does nothing when it is already there.
pub fn compose_plugin() -> Result<PathBuf> {
    let target = crate::workspace_root().join(COMPOSE_PLUGIN);
    if target.exists() {
        return Ok(target);
    }
    let state = AptState::update("compose-trixie", "trixie")?;
    let debs = state.dir.join("debs");
    run(
        "apt-get download docker-compose (trixie)",
        state
            .apt_get()
            .args(["download", "docker-compose"])
            .current_dir(&debs),
    )?;
    for deb in AptState::debs_in(&debs)? {
        run(
            "dpkg-deb -x",
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&state.rootfs),
        )?;
    }
    let plugin = state
        .rootfs
        .join("usr/libexec/docker/cli-plugins/docker-compose");
    ensure!(
        plugin.exists(),
        "trixie's docker-compose has no {}",
        plugin.display()
    );
    std::fs::create_dir_all(target.parent().context("target/compose")?)?;
    std::fs::copy(&plugin, &target)?;
    eprintln!("xtask: Compose plugin at {}", target.display());
    Ok(target)
}

// ------------------------------------------- podman-4.3, podman-5.4, podman-5.8

/// What `apt-get install -d` resolves the closure of. crun is podman's
/// runtime here (runc is the alternative its package accepts).
const PODMAN_PACKAGES: &[&str] = &["podman", "crun"];

/// `podman system service` on the socket the container's command names
/// (`unix:///run/dind/docker.sock`, integration/src/engine.rs): its own
/// storage on `vfs` (overlay cannot stack on the container's root), cgroupfs
/// and a file for events (no systemd inside), and no idle timeout.
const PODMAN_ENTRYPOINT: &str = r#"ENTRYPOINT ["/usr/bin/podman","--log-level=info","--root=/var/lib/containers/storage","--runroot=/run/containers/storage","--storage-driver=vfs","--cgroup-manager=cgroupfs","--events-backend=file","system","service","--time=0"]"#;

fn from_podman(version: &str, suite: &str, tag: &str) -> Result<()> {
    let state = AptState::update(&format!("podman-{suite}"), suite)?;
    // The whole dependency closure, and nothing installed: the empty dpkg
    // status (`apt`) makes apt fetch every package podman needs into the
    // private cache, without recommends (fonts, gtk: `apt-cache depends
    // --recurse` takes 318 packages, this about 100).
    eprintln!(
        "xtask: apt-get install -d --no-install-recommends {}",
        PODMAN_PACKAGES.join(" ")
    );
    run(
        &format!("apt-get install -d ({suite})"),
        state
            .apt_get()
            .args(["install", "-d", "-y", "--no-install-recommends"])
            .args(PODMAN_PACKAGES),
    )?;
    let archives = state.dir.join("cache/archives");
    let versions = state.unpack(&archives, Family::Podman, version, tag)?;
    state.import(
        Family::Podman,
        tag,
        &[
            PODMAN_ENTRYPOINT.into(),
            "ENV PATH=/usr/sbin:/usr/bin".into(),
            label_change(&versions),
        ],
    )
}

/// Merged-/usr symlinks, the folders the engine expects, and a minimal
/// passwd/group.
fn finish_rootfs(rootfs: &Path, family: Family) -> Result<()> {
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
    use std::os::unix::fs::PermissionsExt;
    for dir in family.rootfs_dirs() {
        let path = rootfs.join(dir);
        std::fs::create_dir_all(&path)?;
        if matches!(*dir, "tmp" | "var/tmp") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777))?;
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}
