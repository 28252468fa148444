//! `cargo xtask image`: the janitor's container image, built without a
//! registry.
//!
//! 1. `cargo build --release --locked --target <arch>-unknown-linux-gnu -p
//!    cascade-janitor` with `-C target-feature=+crt-static`: one statically
//!    linked binary (glibc, rustls with ring and a built-in root store).
//!    `--target` keeps the static flag off build scripts and proc macros.
//! 2. A check that the binary really is static (no ELF interpreter), because
//!    on an empty base a dynamic one fails with a baffling "no such file".
//! 3. `docker build` of the root `Dockerfile` (`FROM scratch`), whose
//!    `.dockerignore` lets only that binary out of `target/` into the context.
//!
//! The engine is the Docker CLI's (`DOCKER_HOST`), or `--docker-host`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

/// The tag `xtask image` builds by default; docs/deploy.md and
/// `integration/tests/image.rs` use it.
pub const JANITOR_IMAGE: &str = "cascade-janitor:local";

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Tag of the image to build
    #[arg(long, default_value = JANITOR_IMAGE)]
    tag: String,
    /// Engine to build on (passed to the Docker CLI as DOCKER_HOST); default: the CLI's own
    #[arg(long, value_name = "URL")]
    docker_host: Option<String>,
}

impl Default for ImageArgs {
    fn default() -> ImageArgs {
        ImageArgs {
            tag: JANITOR_IMAGE.to_string(),
            docker_host: None,
        }
    }
}

/// The Rust target the static binary is built for: this machine's
/// architecture, on Linux with glibc.
fn target_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Builds the static release binary (steps 1 and 2 above) and returns its
/// path relative to `root`; `xtask deb` packages the same binary.
pub fn static_binary(root: &Path) -> Result<PathBuf> {
    let triple = target_triple();
    let mut build = crate::cargo(&[]);
    build
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            &triple,
            "-p",
            "cascade-janitor",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root);
    crate::step("static cascade-janitor", build)?;

    let relative = PathBuf::from("target")
        .join(&triple)
        .join("release")
        .join("cascade-janitor");
    ensure_static(&root.join(&relative))?;
    Ok(relative)
}

pub fn image(args: &ImageArgs, root: &Path) -> Result<()> {
    let relative = static_binary(root)?;
    let binary = root.join(&relative);

    let mut docker = Command::new("docker");
    if let Some(host) = &args.docker_host {
        docker.env("DOCKER_HOST", host);
    }
    docker
        .args(["build", "--tag", &args.tag, "--build-arg"])
        .arg(format!("BINARY={}", relative.display()))
        .args(["--file", "Dockerfile", "."])
        .current_dir(root);
    crate::step("docker build", docker)?;

    let binary_bytes = std::fs::metadata(&binary)?.len();
    let mut inspect = Command::new("docker");
    if let Some(host) = &args.docker_host {
        inspect.env("DOCKER_HOST", host);
    }
    let size = inspect
        .args(["image", "inspect", "--format", "{{.Size}}", &args.tag])
        .output()
        .context("cannot run `docker image inspect`")?;
    eprintln!(
        "xtask: built {} ({} bytes; static binary {} bytes)",
        args.tag,
        String::from_utf8_lossy(&size.stdout).trim(),
        binary_bytes
    );
    Ok(())
}

/// Fails unless `binary` is an ELF file without a `PT_INTERP` program
/// header, i.e. it needs no dynamic loader (static or static-pie).
fn ensure_static(binary: &Path) -> Result<()> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    match elf_interpreter(&bytes) {
        Some(false) => Ok(()),
        Some(true) => bail!(
            "{} is dynamically linked; the scratch image needs a static binary. Is RUSTFLAGS overridden by .cargo/config.toml [build] rustflags?",
            binary.display()
        ),
        None => bail!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        ),
    }
}

/// `Some(true)` when the ELF64 (little-endian) file asks for an interpreter.
fn elf_interpreter(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut interp = false;
    for i in 0..phnum {
        interp |= u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP;
    }
    Some(interp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_elf_is_told_apart_from_a_static_one() {
        // The test binary itself is dynamically linked (default flags).
        let own = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        assert_eq!(elf_interpreter(&own), Some(true));
        // Drop PT_INTERP's type from every program header: now "static".
        let mut patched = own.clone();
        let phoff = u64::from_le_bytes(patched[0x20..0x28].try_into().expect("8")) as usize;
        let phentsize = u16::from_le_bytes(patched[0x36..0x38].try_into().expect("2")) as usize;
        let phnum = u16::from_le_bytes(patched[0x38..0x3a].try_into().expect("2")) as usize;
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            if patched[at..at + 4] == 3u32.to_le_bytes() {
                patched[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
            }
        }
        assert_eq!(elf_interpreter(&patched), Some(false));
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(elf_interpreter(&own[..0x30]), None);
    }
}
