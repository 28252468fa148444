//! The engines the janitor has been proven on, and how it removes on each.
//!
//! Every promise the README makes (never an unlabelled image, parent or
//! not; never an image tagged again since the listing; never an image a
//! container uses; nothing too young) rests on what the engine does with
//! the calls a sweep sends, and engines differ there: Podman 4.3 ignores
//! `noprune` and deletes a removed image's untagged parents, whatever their
//! labels; Docker answers a delete of an image with children with 409,
//! Podman deletes it. So a removal is made only on an engine a row of
//! [`PROVEN_ENGINES`] admits: an implementation, a release range and an
//! image store on which the real-engine suite (`cargo xtask safety
//! --engine E`, for each `E` the row names) passed. An engine no row admits
//! is refused for removal (`[tag:proven_engines]`); a plan (dry run) still
//! works on it, and the owner can allow it explicitly
//! (`SweepConfig::allow_unproven_engine`), which then removes with the most
//! careful strategy its implementation has.

use std::fmt;

use crate::engine::{EngineIdentity, ImageStore, Implementation, Release};

/// How one image is removed so that an image tagged again since the
/// listing is never taken with its tag `[ref:scope_invariant]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalMethod {
    /// Tag the image with its removal name (`cascade_scope::removal_name`),
    /// then `DELETE` that name: the engine deletes the image only while that
    /// name is its only one (another name: it only untags ours), and refuses
    /// while a container uses it (409). Docker's classic store and Podman.
    RemovalName,
    /// `DELETE moby-dangling@<digest>`: the containerd store resolves that
    /// name only while the image is dangling (404 once tagged).
    DanglingName,
}

impl RemovalMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalMethod::RemovalName => "removal_name",
            RemovalMethod::DanglingName => "dangling_name",
        }
    }
}

/// What a pass must do on one engine, beyond `force=false, noprune=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalStrategy {
    pub method: RemovalMethod,
    /// The engine also deletes a removed image's parent when the parent has
    /// no name and no other child, and so on up, whatever `noprune` says
    /// (Podman before 4.6). The pass lists every image to see those
    /// parents, and keeps an image whose removal would take one that does
    /// not pass every rule itself (`would_remove_parent`).
    pub prunes_parents: bool,
    /// The engine does not AND two `label` filters (Podman 4.3 joins them
    /// into one that matches nothing): the listing asks for the first label
    /// only, and the pass's own check applies every label, as always.
    pub one_label_filter: bool,
}

/// One row of the table: an implementation, the releases `from..until`
/// (`until` excluded), a store, and how to remove there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEngine {
    pub implementation: Implementation,
    pub from: Release,
    pub until: Release,
    /// [`ImageStore::kind`].
    pub store: &'static str,
    pub strategy: RemovalStrategy,
    /// The engines of the matrix whose real-engine suite proves this row:
    /// `cargo xtask safety --engine E` for each.
    pub proven_by: &'static [&'static str],
}

impl ProvenEngine {
    fn admits(&self, identity: &EngineIdentity) -> bool {
        self.implementation == identity.implementation
            && self.store == identity.store.kind()
            && identity
                .release()
                .is_some_and(|r| self.from <= r && r < self.until)
    }

    /// `Docker 20.10 to 28.x, classic store`; `Podman 4.3.x, ...` for one
    /// minor release.
    pub fn describe(&self) -> String {
        let (from, until) = (self.from, self.until);
        let releases = if (until.major, until.minor) == (from.major, from.minor + 1) {
            format!("{}.{}.x", from.major, from.minor)
        } else if until.minor == 0 {
            format!("{}.{} to {}.x", from.major, from.minor, until.major - 1)
        } else {
            format!(
                "{}.{} to {}.{}",
                from.major,
                from.minor,
                until.major,
                until.minor - 1
            )
        };
        format!("{} {releases}, {} store", self.implementation, self.store)
    }
}

const PLAIN_REMOVAL: RemovalStrategy = RemovalStrategy {
    method: RemovalMethod::RemovalName,
    prunes_parents: false,
    one_label_filter: false,
};

/// The engines the janitor removes on, each proven by the real-engine suite
/// on the matrix engines it names. `[tag:proven_engines]`
///
/// - Docker's classic store from 20.10 (the oldest release users run) to
///   28.x, proven at 20.10, 26.1 and 28.5: the delete path (reference
///   store, then `imageDeleteHelper`) is one code path over that span.
/// - Docker's containerd store from 26.1, the first release proven on it.
/// - Docker 29 and later are refused until a suite has run on them: 29
///   made the containerd store the default for new installs and raised the
///   minimum API version, and no Debian suite carries it yet, so it cannot
///   be run here. An operator who has checked it can allow it.
/// - Podman rows are narrow: its semantics changed within the 4 and 5
///   series (`noprune` honoured from 4.6, `label` filters ANDed from 5.0,
///   `RepoTags` `[]` instead of `null` from 5.7), so only the releases the
///   suite ran on are admitted: 4.3.x (Debian 12), and 5.4 to 5.8 (trixie
///   and sid: both ends proven, no relevant change between them).
pub static PROVEN_ENGINES: &[ProvenEngine] = &[
    ProvenEngine {
        implementation: Implementation::Docker,
        from: Release::new(20, 10, 0),
        until: Release::new(29, 0, 0),
        store: "classic",
        strategy: PLAIN_REMOVAL,
        proven_by: &["20.10", "26.1-classic", "28.5-classic", "28.5-overlay2"],
    },
    ProvenEngine {
        implementation: Implementation::Docker,
        from: Release::new(26, 1, 0),
        until: Release::new(29, 0, 0),
        store: "containerd",
        strategy: RemovalStrategy {
            method: RemovalMethod::DanglingName,
            prunes_parents: false,
            one_label_filter: false,
        },
        proven_by: &["26.1-containerd", "28.5-containerd"],
    },
    ProvenEngine {
        implementation: Implementation::Podman,
        from: Release::new(4, 3, 0),
        until: Release::new(4, 4, 0),
        store: "containers-storage",
        strategy: RemovalStrategy {
            method: RemovalMethod::RemovalName,
            prunes_parents: true,
            one_label_filter: true,
        },
        proven_by: &["podman-4.3"],
    },
    ProvenEngine {
        implementation: Implementation::Podman,
        from: Release::new(5, 4, 0),
        until: Release::new(5, 9, 0),
        store: "containers-storage",
        strategy: PLAIN_REMOVAL,
        proven_by: &["podman-5.4", "podman-5.8"],
    },
];

/// Why an engine is not admitted for removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unproven {
    pub identity: EngineIdentity,
    /// What about it no row admits, in a few words.
    pub why: String,
}

impl fmt::Display for Unproven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not an engine the janitor has been proven on ({})",
            self.identity.describe(),
            self.why
        )
    }
}

/// Whether a pass may remove on an engine, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A row of [`PROVEN_ENGINES`] admits it.
    Proven(&'static ProvenEngine),
    /// No row admits it, and removal on it was allowed anyway: the most
    /// careful strategy of its implementation.
    Allowed(Unproven),
    /// No row admits it: a pass plans, and removes nothing.
    Refused(Unproven),
}

impl Admission {
    /// The admission of `identity`; `allow_unproven` turns a refusal into
    /// [`Admission::Allowed`].
    pub fn of(identity: &EngineIdentity, allow_unproven: bool) -> Admission {
        if let Some(row) = PROVEN_ENGINES.iter().find(|row| row.admits(identity)) {
            return Admission::Proven(row);
        }
        let unproven = Unproven {
            identity: identity.clone(),
            why: why_unproven(identity),
        };
        if allow_unproven {
            Admission::Allowed(unproven)
        } else {
            Admission::Refused(unproven)
        }
    }

    /// How removals are made: the row's strategy, else the most careful
    /// one for the engine (a refused engine's plan uses it too).
    pub fn strategy(&self) -> RemovalStrategy {
        match self {
            Admission::Proven(row) => row.strategy,
            Admission::Allowed(unproven) | Admission::Refused(unproven) => {
                careful_strategy(&unproven.identity)
            }
        }
    }

    pub fn refusal(&self) -> Option<&Unproven> {
        match self {
            Admission::Refused(unproven) => Some(unproven),
            _ => None,
        }
    }

    /// The admitting row, described; `None` for an unproven engine.
    pub fn proven(&self) -> Option<String> {
        match self {
            Admission::Proven(row) => Some(row.describe()),
            _ => None,
        }
    }
}

/// On an engine outside the table: on the containerd store, the dangling
/// name (only Docker has that store); elsewhere the removal name, and on
/// anything but Docker every guard the worst proven Podman needs.
fn careful_strategy(identity: &EngineIdentity) -> RemovalStrategy {
    match (&identity.implementation, &identity.store) {
        (_, ImageStore::Containerd { .. }) => RemovalStrategy {
            method: RemovalMethod::DanglingName,
            prunes_parents: false,
            one_label_filter: false,
        },
        (Implementation::Docker, _) => PLAIN_REMOVAL,
        _ => RemovalStrategy {
            method: RemovalMethod::RemovalName,
            prunes_parents: true,
            one_label_filter: true,
        },
    }
}

/// The closest rows, for the refusal's message.
fn why_unproven(identity: &EngineIdentity) -> String {
    let rows: Vec<&ProvenEngine> = PROVEN_ENGINES
        .iter()
        .filter(|row| row.implementation == identity.implementation)
        .collect();
    if rows.is_empty() {
        return "the janitor is proven on Docker and Podman only".to_string();
    }
    let Some(release) = identity.release() else {
        return format!(
            "its version `{}` states no release number",
            identity.version
        );
    };
    let newest = rows.iter().map(|r| r.until).max();
    if newest.is_some_and(|until| release >= until) {
        return format!(
            "{} {}.{} is newer than every proven release; proven: {}",
            identity.implementation,
            release.major,
            release.minor,
            describe_rows(&rows)
        );
    }
    format!("proven: {}", describe_rows(&rows))
}

fn describe_rows(rows: &[&ProvenEngine]) -> String {
    rows.iter()
        .map(|r| r.describe())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(implementation: Implementation, version: &str, store: ImageStore) -> EngineIdentity {
        EngineIdentity {
            implementation,
            version: version.to_string(),
            api_version: Some("1.41".into()),
            store,
        }
    }

    fn classic() -> ImageStore {
        ImageStore::Classic {
            driver: "overlay2".into(),
        }
    }

    fn containerd() -> ImageStore {
        ImageStore::Containerd {
            snapshotter: "overlayfs".into(),
        }
    }

    fn storage() -> ImageStore {
        ImageStore::ContainersStorage {
            driver: "overlay".into(),
        }
    }

    fn admitted_by(identity: &EngineIdentity) -> Option<&'static [&'static str]> {
        match Admission::of(identity, false) {
            Admission::Proven(row) => Some(row.proven_by),
            _ => None,
        }
    }

    #[test]
    fn each_matrix_engine_is_admitted_by_the_row_it_proves() {
        use Implementation::{Docker, Podman};
        let cases = [
            (Docker, "20.10.24+dfsg1", classic(), "20.10"),
            (Docker, "26.1.5+dfsg1", classic(), "26.1-classic"),
            (Docker, "26.1.5+dfsg1", containerd(), "26.1-containerd"),
            (Docker, "28.5.2+dfsg3", classic(), "28.5-classic"),
            (Docker, "28.5.2+dfsg3", containerd(), "28.5-containerd"),
            (Podman, "4.3.1", storage(), "podman-4.3"),
            (Podman, "5.4.2", storage(), "podman-5.4"),
            (Podman, "5.8.6", storage(), "podman-5.8"),
        ];
        for (implementation, version, store, matrix) in cases {
            let identity = engine(implementation, version, store);
            let rows = admitted_by(&identity).unwrap_or_else(|| panic!("{identity:?}"));
            assert!(rows.contains(&matrix), "{matrix} not in {rows:?}");
        }
    }

    #[test]
    fn engines_outside_the_table_are_refused_with_the_reason() {
        use Implementation::{Docker, Other, Podman};
        let cases = [
            (
                Docker,
                "29.0.1",
                classic(),
                "newer than every proven release",
            ),
            (
                Docker,
                "29.1.0",
                containerd(),
                "newer than every proven release",
            ),
            (
                Docker,
                "19.03.15",
                classic(),
                "proven: Docker 20.10 to 28.x",
            ),
            (
                Docker,
                "25.0.3",
                containerd(),
                "Docker 26.1 to 28.x, containerd",
            ),
            (Podman, "4.9.3", storage(), "proven: Podman 4.3.x"),
            (Podman, "5.3.1", storage(), "Podman 5.4 to 5.8"),
            (
                Podman,
                "6.1.1",
                storage(),
                "newer than every proven release",
            ),
            (Podman, "dev", storage(), "states no release number"),
            (
                Other("Moby Engine".into()),
                "28.5.2",
                classic(),
                "Docker and Podman only",
            ),
            // Podman never runs Docker's stores: a renaming proxy or a bug.
            (Podman, "5.4.2", classic(), "proven: Podman"),
        ];
        for (implementation, version, store, why) in cases {
            let identity = engine(implementation, version, store);
            let admission = Admission::of(&identity, false);
            let refusal = admission
                .refusal()
                .unwrap_or_else(|| panic!("{identity:?} was admitted"));
            let line = refusal.to_string();
            assert!(line.contains(why), "{line}");
            assert!(line.contains(&identity.version), "names the engine: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(matches!(
                Admission::of(&identity, true),
                Admission::Allowed(_)
            ));
        }
    }

    #[test]
    fn an_allowed_engine_gets_every_guard_its_implementation_may_need() {
        let podman = engine(Implementation::Podman, "4.9.3", storage());
        let strategy = Admission::of(&podman, true).strategy();
        assert_eq!(strategy.method, RemovalMethod::RemovalName);
        assert!(strategy.prunes_parents && strategy.one_label_filter);
        let docker29 = engine(Implementation::Docker, "29.0.0", containerd());
        assert_eq!(
            Admission::of(&docker29, true).strategy().method,
            RemovalMethod::DanglingName
        );
        let docker29 = engine(Implementation::Docker, "29.0.0", classic());
        assert_eq!(Admission::of(&docker29, true).strategy(), PLAIN_REMOVAL);
        let other = engine(Implementation::Other("x".into()), "1.0", classic());
        assert!(Admission::of(&other, true).strategy().prunes_parents);
    }

    #[test]
    fn only_podman_before_4_6_needs_the_parent_guard_and_one_label() {
        for row in PROVEN_ENGINES {
            let podman43 = row.implementation == Implementation::Podman && row.from.major == 4;
            assert_eq!(row.strategy.prunes_parents, podman43, "{}", row.describe());
            assert_eq!(
                row.strategy.one_label_filter,
                podman43,
                "{}",
                row.describe()
            );
            assert_eq!(
                row.strategy.method == RemovalMethod::DanglingName,
                row.store == "containerd",
                "{}",
                row.describe()
            );
            assert!(!row.proven_by.is_empty());
            assert!(row.from < row.until);
        }
        let described: Vec<String> = PROVEN_ENGINES.iter().map(ProvenEngine::describe).collect();
        assert_eq!(
            described,
            [
                "Docker 20.10 to 28.x, classic store",
                "Docker 26.1 to 28.x, containerd store",
                "Podman 4.3.x, containers-storage store",
                "Podman 5.4 to 5.8, containers-storage store",
            ]
        );
    }
}
