//! Which engine answers the Docker API: its implementation, version and
//! image store, as `GET /version` and `GET /info` state them.
//!
//! Docker and Podman both answer the Docker API, with different semantics
//! behind the same calls (Podman before 4.6 ignores `noprune`, deletes an
//! image with children, refuses a two-name delete with 500, ...). What a
//! removal may rely on is decided per engine by the table of proven engines
//! (`proven.rs`); this module only says which engine it is.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

/// Who implements the API, from `/version`'s `Components`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// Docker Engine (moby): a component named `Engine`.
    Docker,
    /// Podman's Docker-compatible service: a component named `Podman Engine`.
    Podman,
    /// Anything else, by the name of its first component (empty: none).
    Other(String),
}

impl Implementation {
    /// From `/version`'s component names, in the order the engine gives them.
    pub fn from_components<'a>(names: impl IntoIterator<Item = &'a str>) -> Implementation {
        let names: Vec<&str> = names.into_iter().collect();
        if names.contains(&"Podman Engine") {
            Implementation::Podman
        } else if names.contains(&"Engine") {
            Implementation::Docker
        } else {
            Implementation::Other(names.first().copied().unwrap_or_default().to_string())
        }
    }

    /// `docker`, `podman`, or the other engine's component name.
    pub fn as_str(&self) -> &str {
        match self {
            Implementation::Docker => "docker",
            Implementation::Podman => "podman",
            Implementation::Other(name) if name.is_empty() => "unknown",
            Implementation::Other(name) => name,
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Implementation::Docker => f.write_str("Docker"),
            Implementation::Podman => f.write_str("Podman"),
            Implementation::Other(name) if name.is_empty() => {
                f.write_str("an engine that names no component")
            }
            Implementation::Other(name) => write!(f, "`{name}`"),
        }
    }
}

/// How the engine stores images. It decides how a removal is kept from
/// taking an image that was tagged again after the pass listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStore {
    /// Docker's graph-driver store (`overlay2`, `vfs`, ...).
    Classic { driver: String },
    /// Docker's containerd image store (Docker 24+ with the
    /// `containerd-snapshotter` feature, the default of new Docker 29
    /// installs): a dangling image is also named `moby-dangling@<digest>`,
    /// and removing it by that name fails with 404 once it is tagged again.
    Containerd { snapshotter: String },
    /// Podman's containers/storage, with its graph driver (`overlay`,
    /// `vfs`, ...).
    ContainersStorage { driver: String },
}

impl ImageStore {
    /// `classic (vfs graph driver)`, `containerd (overlayfs snapshotter)`,
    /// `containers-storage (overlay driver)`.
    pub fn describe(&self) -> String {
        match self {
            ImageStore::Classic { driver } => format!("classic ({driver} graph driver)"),
            ImageStore::Containerd { snapshotter } => {
                format!("containerd ({snapshotter} snapshotter)")
            }
            ImageStore::ContainersStorage { driver } => {
                format!("containers-storage ({driver} driver)")
            }
        }
    }

    /// `classic`, `containerd` or `containers-storage`: the store without
    /// its driver, as the table of proven engines and the metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageStore::Classic { .. } => "classic",
            ImageStore::Containerd { .. } => "containerd",
            ImageStore::ContainersStorage { .. } => "containers-storage",
        }
    }
}

/// What the containerd store names a dangling image, before its digest.
pub const DANGLING_PREFIX: &str = "moby-dangling@";

/// A release number, `major.minor.patch`, as engines state them
/// (`20.10.24+dfsg1`, `5.8.6`, `29.0.0-rc.1`: what follows the numbers is
/// ignored; a missing patch is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// `None` unless the text starts with `MAJOR.MINOR`.
    pub fn parse(text: &str) -> Option<Release> {
        let text = text.trim().trim_start_matches('v');
        let dotted: String = text
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut numbers = dotted.split('.').map(str::parse::<u32>);
        let major = numbers.next()?.ok()?;
        let minor = numbers.next()?.ok()?;
        let patch = numbers.next().and_then(Result::ok).unwrap_or(0);
        Some(Release::new(major, minor, patch))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which engine answers, as it states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineIdentity {
    pub implementation: Implementation,
    /// As the engine states it (`20.10.24+dfsg1`, `5.4.2`).
    pub version: String,
    /// The API version it serves at most (`/version`'s `ApiVersion`).
    pub api_version: Option<String>,
    pub store: ImageStore,
}

impl EngineIdentity {
    /// `Podman 5.4.2 (API 1.41), containers-storage (vfs driver)`.
    pub fn describe(&self) -> String {
        let api = self
            .api_version
            .as_deref()
            .map(|v| format!(" (API {v})"))
            .unwrap_or_default();
        format!(
            "{} {}{api}, {}",
            self.implementation,
            self.version,
            self.store.describe()
        )
    }

    /// The release number, when the version states one.
    pub fn release(&self) -> Option<Release> {
        Release::parse(&self.version)
    }
}

/// What a pass learns about the engine once, before it lists anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFacts {
    pub identity: EngineIdentity,
    /// The engine's clock, in seconds since the Unix epoch (`GET /info`
    /// `SystemTime`), so an image's age is measured where it was created;
    /// `None` when the engine does not say.
    pub now: Option<i64>,
}

/// The engine as a report states it (`prune --output json`, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EngineSummary {
    /// `docker`, `podman`, or another engine's first component name.
    pub implementation: String,
    /// The engine's version as it states it.
    pub version: String,
    /// The API version the engine serves at most.
    pub api_version: Option<String>,
    /// `classic`, `containerd` or `containers-storage`.
    pub store: String,
    /// The store's graph driver or snapshotter.
    pub driver: String,
    /// The row of the proven-engine table that admits this engine, e.g.
    /// `Podman 5.4 to 5.8, containers-storage`; null when none does.
    pub proven: Option<String>,
    /// How removals are made: `removal_name` or `dangling_name`; null when
    /// removal is refused on this engine.
    pub removal: Option<String>,
}

impl EngineSummary {
    pub(crate) fn new(
        identity: &EngineIdentity,
        proven: Option<String>,
        removal: Option<&str>,
    ) -> EngineSummary {
        let driver = match &identity.store {
            ImageStore::Classic { driver } | ImageStore::ContainersStorage { driver } => driver,
            ImageStore::Containerd { snapshotter } => snapshotter,
        };
        EngineSummary {
            implementation: identity.implementation.as_str().to_string(),
            version: identity.version.clone(),
            api_version: identity.api_version.clone(),
            store: identity.store.kind().to_string(),
            driver: driver.clone(),
            proven,
            removal: removal.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_read_as_engines_state_them() {
        let cases = [
            ("20.10.24+dfsg1", Some(Release::new(20, 10, 24))),
            ("5.8.6", Some(Release::new(5, 8, 6))),
            ("29.0.0-rc.1", Some(Release::new(29, 0, 0))),
            ("28.5", Some(Release::new(28, 5, 0))),
            ("v4.3.1", Some(Release::new(4, 3, 1))),
            ("", None),
            ("29", None),
            ("dev", None),
            ("master-dockerproject-2026", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Release::parse(text), expected, "{text:?}");
        }
        assert!(Release::new(28, 5, 2) < Release::new(29, 0, 0));
        assert!(Release::new(4, 3, 1) < Release::new(4, 10, 0));
    }

    #[test]
    fn the_implementation_comes_from_the_component_names() {
        assert_eq!(
            Implementation::from_components(["Engine", "containerd", "runc", "docker-init"]),
            Implementation::Docker
        );
        assert_eq!(
            Implementation::from_components(["Podman Engine", "Conmon", "OCI Runtime (crun)"]),
            Implementation::Podman
        );
        assert_eq!(
            Implementation::from_components(["Moby Engine"]),
            Implementation::Other("Moby Engine".into())
        );
        assert_eq!(
            Implementation::from_components([]),
            Implementation::Other(String::new())
        );
        assert_eq!(Implementation::Other(String::new()).as_str(), "unknown");
    }
}
