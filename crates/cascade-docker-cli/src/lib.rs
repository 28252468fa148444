//! The janitor as a Docker CLI plugin (`docker janitor ...`).
//!
//! The Docker CLI runs a plugin binary named `docker-<name>` found in
//! `~/.docker/cli-plugins` or `/usr/libexec/docker/cli-plugins` in two ways
//! (docker/cli `docs/extend/cli_plugins.md`):
//!
//! - `docker-janitor docker-cli-plugin-metadata`: print the plugin's
//!   metadata as one JSON object, exit 0 ([`metadata`]);
//! - `docker-janitor [GLOBAL OPTIONS] janitor [ARGS]`: the command itself,
//!   with the Docker CLI's own global options (`--context`, `-H`,
//!   `--config`, `--tls*`, `-D`, `-l`) in front, which the plugin must honour
//!   ([`parse`]).
//!
//! [`resolve`] then finds the engine the Docker CLI would talk to, the way
//! the CLI does (docker/cli `cli/command/cli.go`, `resolveContextName`):
//! `--host`, else `--context`, else `DOCKER_HOST`, else `DOCKER_CONTEXT`,
//! else the config file's `currentContext`, else the default context; a
//! named context's endpoint and TLS files come from the CLI's context store
//! (`<config dir>/contexts/{meta,tls}/<sha256 of the name>/`).
//!
//! This crate does no I/O beyond reading those files, and knows nothing of
//! the janitor's settings: [`Endpoint::variables`] says what the binary
//! passes on, as the janitor's own variables.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The plugin's name: `docker janitor`, binary `docker-janitor`.
pub const PLUGIN_NAME: &str = "janitor";
/// The binary's file name under a `cli-plugins` directory.
pub const PLUGIN_BINARY: &str = "docker-janitor";
/// The argument the Docker CLI uses to ask a plugin for its metadata.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
/// The engine of the default context when nothing names another.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Whether the process was started as the plugin binary (by file name,
/// so one binary serves as both `cascade-janitor` and `docker-janitor`).
pub fn invoked_as_plugin(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(PLUGIN_BINARY))
}

/// The metadata object the Docker CLI asks for.
pub fn metadata(version: &str) -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "cascade",
        "Version": version,
        "ShortDescription": "Remove dangling images labelled cascade.managed=true, and nothing else",
    })
    .to_string()
}

/// What the Docker CLI asked the plugin to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `docker-cli-plugin-metadata`.
    Metadata,
    /// `[global options] janitor [args]`: `args` are the janitor's own.
    Command {
        options: GlobalOptions,
        args: Vec<OsString>,
    },
}

/// The Docker CLI's global options (`docker --help`), as the plugin
/// receives them in front of its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalOptions {
    pub config: Option<PathBuf>,
    pub context: Option<String>,
    pub hosts: Vec<String>,
    pub debug: bool,
    pub log_level: Option<String>,
    pub tls: bool,
    pub tls_verify: bool,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Why the plugin cannot run. Each is one line naming the culprit and the
/// fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PluginError {
    #[error(
        "{PLUGIN_BINARY} is a Docker CLI plugin: run it as `docker {PLUGIN_NAME} ...` (or run cascade-janitor itself)"
    )]
    NotInvokedByDocker,
    #[error("the Docker option {0} needs a value")]
    MissingValue(String),
    #[error(
        "unknown Docker option {0} before `{PLUGIN_NAME}`; the janitor's own options go after it: `docker {PLUGIN_NAME} prune --help`"
    )]
    UnknownOption(String),
    #[error("a Docker option is not valid UTF-8: {0}")]
    NotUtf8(String),
    #[error(
        "conflicting options: either specify --host or --context, not both (as the docker CLI says)"
    )]
    HostAndContext,
    #[error(
        "Docker context \"{name}\" does not exist (no {path}); list them with `docker context ls`"
    )]
    UnknownContext { name: String, path: String },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "Docker context \"{context}\" has no docker endpoint in {path}; recreate it with `docker context create {context} --docker host=...`"
    )]
    NoDockerEndpoint { context: String, path: String },
    #[error(
        "{origin} names the engine {host}, which the janitor cannot reach: it speaks to unix:// and tcp:// engines only (ssh:// and npipe:// are not supported)"
    )]
    UnsupportedEndpoint { origin: String, host: String },
    #[error(
        "{origin} turns off TLS verification, which the janitor never does: give the engine's CA (--tlscacert, or the context's ca.pem) instead"
    )]
    SkipsVerification { origin: String },
}

/// Parses the plugin's arguments (without `argv[0]`).
pub fn parse(args: &[OsString]) -> Result<Invocation, PluginError> {
    if args.first().map(OsString::as_os_str) == Some(OsStr::new(METADATA_COMMAND)) {
        return Ok(Invocation::Metadata);
    }
    let mut options = GlobalOptions::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| PluginError::NotUtf8(arg.to_string_lossy().into_owned()))?;
        if text == PLUGIN_NAME {
            return Ok(Invocation::Command {
                options,
                args: rest.cloned().collect(),
            });
        }
        if !text.starts_with('-') {
            return Err(PluginError::NotInvokedByDocker);
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if text.starts_with("--") => (name, Some(value.to_string())),
            _ => (text, None),
        };
        let mut value = |name: &str| -> Result<String, PluginError> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            let next = rest
                .next()
                .ok_or_else(|| PluginError::MissingValue(name.to_string()))?;
            next.to_str()
                .map(str::to_string)
                .ok_or_else(|| PluginError::NotUtf8(next.to_string_lossy().into_owned()))
        };
        match name {
            "--config" => options.config = Some(PathBuf::from(value(name)?)),
            "-c" | "--context" => options.context = Some(value(name)?),
            "-H" | "--host" => options.hosts.push(value(name)?),
            "-l" | "--log-level" => options.log_level = Some(value(name)?),
            "--tlscacert" => options.tls_ca = Some(PathBuf::from(value(name)?)),
            "--tlscert" => options.tls_cert = Some(PathBuf::from(value(name)?)),
            "--tlskey" => options.tls_key = Some(PathBuf::from(value(name)?)),
            "-D" | "--debug" => options.debug = true,
            "--tls" => options.tls = true,
            "--tlsverify" => options.tls_verify = true,
            _ => return Err(PluginError::UnknownOption(text.to_string())),
        }
    }
    Err(PluginError::NotInvokedByDocker)
}

/// Where the resolution found the engine, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    HostOption,
    DockerHost,
    Context(String),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::HostOption => f.write_str("--host"),
            Origin::DockerHost => f.write_str("DOCKER_HOST"),
            Origin::Context(name) => write!(f, "Docker context \"{name}\""),
            Origin::Default => f.write_str("the default context"),
        }
    }
}

/// TLS files for the engine (each already known to be needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The engine the Docker CLI would talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub origin: Origin,
    pub host: String,
    /// TLS files the janitor must be given; `None` leaves TLS to the
    /// janitor's own reading of `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`,
    /// which it shares with the Docker CLI.
    pub tls: Option<TlsFiles>,
    /// `RUST_LOG` for `-D` or `-l`.
    pub log_level: Option<&'static str>,
}

impl Endpoint {
    /// The janitor's variables that make it use this endpoint. They rank
    /// above the janitor's config file and below its flags, so
    /// `docker janitor prune --docker-host ...` still wins.
    pub fn variables(&self) -> Vec<(String, String)> {
        let mut vars = vec![("CASCADE_JANITOR_DOCKER_HOST".to_string(), self.host.clone())];
        if let Some(tls) = &self.tls {
            for (name, path) in [
                ("CASCADE_JANITOR_TLS_CA", &tls.ca),
                ("CASCADE_JANITOR_TLS_CERT", &tls.cert),
                ("CASCADE_JANITOR_TLS_KEY", &tls.key),
            ] {
                if let Some(path) = path {
                    vars.push((name.to_string(), path.display().to_string()));
                }
            }
        }
        vars
    }
}

/// The process's view the resolution needs: variables and the home
/// directory (for `~/.docker`).
pub trait Surroundings {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// Finds the engine the Docker CLI would use with these options.
pub fn resolve(
    options: &GlobalOptions,
    around: &dyn Surroundings,
) -> Result<Endpoint, PluginError> {
    let set = |name: &str| around.var(name).filter(|v| !v.trim().is_empty());
    let config_dir = options
        .config
        .clone()
        .or_else(|| set("DOCKER_CONFIG").map(PathBuf::from))
        .or_else(|| around.home().map(|h| h.join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"));
    let log_level = log_level(options);

    if options.context.is_some() && !options.hosts.is_empty() {
        return Err(PluginError::HostAndContext);
    }
    let context = match (&options.context, options.hosts.first()) {
        (Some(name), _) => Some(name.clone()),
        (None, Some(_)) => None,
        (None, None) if set("DOCKER_HOST").is_some() => None,
        (None, None) => set("DOCKER_CONTEXT").or(current_context(&config_dir)?),
    }
    .filter(|name| name != "default");

    let endpoint = match context {
        Some(name) => context_endpoint(&config_dir, &name)?,
        None => {
            let (origin, host) = match options.hosts.first() {
                Some(host) => (Origin::HostOption, host.clone()),
                None => match set("DOCKER_HOST") {
                    Some(host) => (Origin::DockerHost, host),
                    None => (Origin::Default, DEFAULT_HOST.to_string()),
                },
            };
            let tls = flag_tls(options, &origin, &config_dir, &set)?;
            Endpoint {
                origin,
                host,
                tls,
                log_level: None,
            }
        }
    };
    let scheme_ok = endpoint.host.starts_with("unix://") || endpoint.host.starts_with("tcp://");
    if !scheme_ok {
        return Err(PluginError::UnsupportedEndpoint {
            origin: endpoint.origin.to_string(),
            host: endpoint.host,
        });
    }
    Ok(Endpoint {
        log_level,
        ..endpoint
    })
}

fn log_level(options: &GlobalOptions) -> Option<&'static str> {
    if options.debug {
        return Some("debug");
    }
    match options.log_level.as_deref()? {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" => Some("warn"),
        "error" | "fatal" => Some("error"),
        _ => None,
    }
}

/// TLS from the global options: `--tlsverify` or any `--tls*` file means
/// verified TLS with the CLI's default files (`DOCKER_CERT_PATH`, else the
/// config directory) for those not given.
fn flag_tls(
    options: &GlobalOptions,
    origin: &Origin,
    config_dir: &Path,
    set: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<TlsFiles>, PluginError> {
    let any_file =
        options.tls_ca.is_some() || options.tls_cert.is_some() || options.tls_key.is_some();
    if !(options.tls_verify || any_file) {
        if options.tls {
            return Err(PluginError::SkipsVerification {
                origin: format!("--tls without --tlsverify ({origin})"),
            });
        }
        return Ok(None);
    }
    let dir = set("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| config_dir.to_path_buf());
    let pick = |given: &Option<PathBuf>, name: &str| {
        given.clone().or_else(|| {
            let path = dir.join(name);
            path.exists().then_some(path)
        })
    };
    Ok(Some(TlsFiles {
        ca: pick(&options.tls_ca, "ca.pem"),
        cert: pick(&options.tls_cert, "cert.pem"),
        key: pick(&options.tls_key, "key.pem"),
    }))
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

fn current_context(config_dir: &Path) -> Result<Option<String>, PluginError> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(&path, e.to_string())),
    };
    let file: ConfigFile =
        serde_json::from_str(&text).map_err(|e| unreadable(&path, e.to_string()))?;
    Ok(file.current_context.filter(|c| !c.is_empty()))
}

#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: std::collections::BTreeMap<String, EndpointMeta>,
}

#[derive(Deserialize)]
struct EndpointMeta {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The directory name of a context in the CLI's store.
pub fn context_id(name: &str) -> String {
    format!("{:x}", Sha256::digest(name.as_bytes()))
}

fn context_endpoint(config_dir: &Path, name: &str) -> Result<Endpoint, PluginError> {
    let id = context_id(name);
    let meta_path = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let text = match std::fs::read_to_string(&meta_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PluginError::UnknownContext {
                name: name.to_string(),
                path: meta_path.display().to_string(),
            });
        }
        Err(e) => return Err(unreadable(&meta_path, e.to_string())),
    };
    let meta: ContextMeta =
        serde_json::from_str(&text).map_err(|e| unreadable(&meta_path, e.to_string()))?;
    let docker = meta.endpoints.get("docker");
    let Some(host) = docker
        .and_then(|d| d.host.clone())
        .filter(|h| !h.is_empty())
    else {
        return Err(PluginError::NoDockerEndpoint {
            context: name.to_string(),
            path: meta_path.display().to_string(),
        });
    };
    let origin = Origin::Context(name.to_string());
    if docker.is_some_and(|d| d.skip_tls_verify) {
        return Err(PluginError::SkipsVerification {
            origin: origin.to_string(),
        });
    }
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    let file = |name: &str| {
        let path = tls_dir.join(name);
        path.exists().then_some(path)
    };
    let tls = TlsFiles {
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
    };
    let tls = (tls != TlsFiles::default()).then_some(tls);
    Ok(Endpoint {
        origin,
        host,
        tls,
        log_level: None,
    })
}

fn unreadable(path: &Path, reason: String) -> PluginError {
    PluginError::Unreadable {
        path: path.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests;
