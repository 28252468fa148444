//! Which parents an engine that ignores `noprune` would delete with the
//! images a pass removes, and which of those images must be kept for it.
//!
//! Podman before 4.6 deletes, after a removed image, its parent when the
//! parent has no name and no other child, then that parent's parent on the
//! same terms, and so on up; it checks neither labels nor containers
//! (libimage's `removeRecursive`). Removing a labelled snapshot built on an
//! unlabelled base whose tag has moved would take the base with it. So on
//! such an engine a pass works out, from every image (`all=true`), which
//! parents its removals would take, and keeps each image whose removal
//! would take a parent that does not pass every rule itself
//! (`SkipReason::WouldRemoveParent`). `[ref:scope_invariant]`
//!
//! The prediction assumes every removal of the pass succeeds, which
//! prunes the most; a removal that is kept or fails only leaves more
//! parents in place.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::docker::ListedImage;

/// An image ID without its `sha256:` prefix: Podman lists `Id` with it and
/// `ParentId` without.
pub(crate) fn bare(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// Every image of the engine, as a parent tree.
#[derive(Debug, Default)]
pub(crate) struct ImageTree<'a> {
    images: HashMap<&'a str, &'a ListedImage>,
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> ImageTree<'a> {
    pub(crate) fn new(all: &'a [ListedImage]) -> ImageTree<'a> {
        let mut tree = ImageTree::default();
        for image in all {
            tree.images.insert(bare(&image.id), image);
            if !image.parent_id.is_empty() {
                tree.children
                    .entry(bare(&image.parent_id))
                    .or_default()
                    .push(bare(&image.id));
            }
        }
        tree
    }

    fn parent(&self, id: &str) -> Option<&'a str> {
        let image = self.images.get(id)?;
        (!image.parent_id.is_empty()).then(|| bare(&image.parent_id))
    }

    pub(crate) fn image(&self, id: &str) -> Option<&'a ListedImage> {
        self.images.get(bare(id)).copied()
    }

    /// The parents the engine would delete if every image of `removed`
    /// were removed: a parent goes once it has no name and every child of
    /// it goes, repeated up the tree. Keyed by bare ID.
    pub(crate) fn pruned(&self, removed: &BTreeSet<&str>) -> BTreeSet<&'a str> {
        let mut gone: BTreeSet<&str> = removed.iter().map(|id| bare(id)).collect();
        let mut pruned = BTreeSet::new();
        let mut frontier: Vec<&str> = gone.iter().copied().collect();
        while let Some(id) = frontier.pop() {
            let Some(parent) = self.parent(id) else {
                continue;
            };
            if gone.contains(parent) {
                continue;
            }
            let Some(image) = self.images.get(parent) else {
                continue;
            };
            let unnamed = image.repo_tags.iter().all(|t| t == "<none>:<none>");
            let orphaned = self
                .children
                .get(parent)
                .is_none_or(|kids| kids.iter().all(|k| gone.contains(k)));
            if unnamed && orphaned {
                gone.insert(parent);
                pruned.insert(parent);
                frontier.push(parent);
            }
        }
        pruned
    }

    /// For each image of `removed` whose removal would take a parent in
    /// `refused` (a parent that does not pass every rule), the nearest such
    /// parent. Keyed by the image's ID as given.
    pub(crate) fn blocked<'r>(
        &self,
        removed: &BTreeSet<&'r str>,
        pruned: &BTreeSet<&str>,
        refused: &BTreeSet<&str>,
    ) -> BTreeMap<&'r str, &'a str> {
        let mut blocked = BTreeMap::new();
        for id in removed {
            let mut at = bare(id);
            while let Some(parent) = self.parent(at) {
                if !pruned.contains(parent) {
                    break;
                }
                if refused.contains(parent) {
                    blocked.insert(*id, parent);
                    break;
                }
                at = parent;
            }
        }
        blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, parent: &str, tags: &[&str]) -> ListedImage {
        ListedImage {
            id: format!("sha256:{id}"),
            created: 0,
            size: 1,
            labels: HashMap::new(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            // Podman's ParentId: bare hex.
            parent_id: parent.to_string(),
        }
    }

    fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    #[test]
    fn an_unnamed_parent_with_no_other_child_goes_and_so_on_up() {
        // base (tagged) <- p (unnamed) <- q (unnamed) <- c (candidate)
        let all = [
            image("base", "", &["base:1"]),
            image("p", "base", &[]),
            image("q", "p", &[]),
            image("c", "q", &[]),
        ];
        let tree = ImageTree::new(&all);
        let removed = set(&["sha256:c"]);
        let pruned = tree.pruned(&removed);
        assert_eq!(pruned, set(&["p", "q"]), "a tagged parent stops it");
        assert_eq!(
            tree.blocked(&removed, &pruned, &set(&["p"])),
            BTreeMap::from([("sha256:c", "p")])
        );
        assert_eq!(
            tree.blocked(&removed, &pruned, &set(&["q"])),
            BTreeMap::from([("sha256:c", "q")]),
            "the nearest refused parent"
        );
        assert!(tree.blocked(&removed, &pruned, &set(&["base"])).is_empty());
    }

    #[test]
    fn a_parent_with_another_child_stays_unless_that_child_goes_too() {
        // p (unnamed) <- c1, c2; p <- t (tagged child)
        let all = [
            image("p", "", &[]),
            image("c1", "p", &[]),
            image("c2", "p", &[]),
        ];
        let tree = ImageTree::new(&all);
        assert!(tree.pruned(&set(&["sha256:c1"])).is_empty());
        assert_eq!(
            tree.pruned(&set(&["sha256:c1", "sha256:c2"])),
            set(&["p"]),
            "the last child's removal takes it, whichever goes last"
        );
        let with_tagged_child = [
            image("p", "", &[]),
            image("c1", "p", &[]),
            image("t", "p", &["app:1"]),
        ];
        let tree = ImageTree::new(&with_tagged_child);
        assert!(tree.pruned(&set(&["sha256:c1"])).is_empty());
    }

    #[test]
    fn a_named_parent_is_never_pruned() {
        let all = [
            image("p", "", &["docker.io/library/base:1"]),
            image("c", "p", &[]),
        ];
        let tree = ImageTree::new(&all);
        assert!(tree.pruned(&set(&["sha256:c"])).is_empty());
        let docker_placeholder = [image("p", "", &["<none>:<none>"]), image("c", "p", &[])];
        let tree = ImageTree::new(&docker_placeholder);
        assert_eq!(tree.pruned(&set(&["sha256:c"])), set(&["p"]));
    }
}
