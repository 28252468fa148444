//! Whether the engine's data root is visible from this process. Only then
//! can a sweep measure what it freed there (`cascade_cleanup::disk`), and
//! `doctor` report the engine's free space.

use std::path::Path;

use cascade_cleanup::ImageStore;

use crate::images::Storage;

/// The engine's data root as seen from here, where free space measures what
/// a removal frees, or why it cannot be used: a remote engine's disk is not
/// this host's (`local` false); the containerd store keeps images outside
/// `DockerRootDir`; and otherwise only on [`visible_store_root`]'s positive
/// evidence. `doctor` and a sweep's reclaimed space both decide here.
pub fn data_root_here<'a>(
    storage: &'a Storage,
    image: Option<&str>,
    local: bool,
) -> Result<&'a Path, String> {
    if !local {
        return Err("a remote engine's disk".to_string());
    }
    if let ImageStore::Containerd { .. } = storage.store {
        return Err("the containerd image store keeps images outside the root dir".to_string());
    }
    let root = storage
        .root_dir
        .as_deref()
        .ok_or_else(|| "the engine did not say its root dir".to_string())?;
    visible_store_root(storage, image)?;
    Ok(root)
}

/// Whether the store `storage` describes is visible from here, with `image`
/// (an image the engine holds) as evidence where needed: Docker's data root
/// ([`visible_data_root`]) or Podman's containers/storage graph root
/// ([`visible_graph_root`]).
pub fn visible_store_root(storage: &Storage, image: Option<&str>) -> Result<(), String> {
    let Some(root) = storage.root_dir.as_deref() else {
        return Err("the engine did not say its data root".to_string());
    };
    match storage.store {
        ImageStore::ContainersStorage { .. } => {
            visible_graph_root(root, storage.driver.as_deref(), image)
        }
        _ => visible_data_root(
            root,
            storage.driver.as_deref(),
            storage.engine_id.as_deref(),
            image,
        ),
    }
}

/// Whether `root`, Podman's graph root (`/var/lib/containers/storage`), is
/// that engine's as seen from here: `<driver>-images/<hex>` must exist for
/// `image`, an image it holds. Podman's `/info` `ID` is new at every call,
/// so it proves nothing.
pub fn visible_graph_root(
    root: &Path,
    driver: Option<&str>,
    image: Option<&str>,
) -> Result<(), String> {
    let Some(driver) = driver else {
        return Err("the engine did not say its storage driver".to_string());
    };
    let Some(hex) = image
        .map(|id| id.strip_prefix("sha256:").unwrap_or(id))
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Err(format!(
            "no image of the engine's to look for in {}",
            root.display()
        ));
    };
    if root.join(format!("{driver}-images")).join(hex).is_dir() {
        Ok(())
    } else {
        Err(format!(
            "{} here does not hold the engine's image {}: another engine's, or not readable",
            root.display(),
            &hex[..12]
        ))
    }
}

/// Whether `root`, the engine's `DockerRootDir`, is that engine's folder as
/// seen from here: on the engine's host, or in a container that mounts it.
/// It asks for positive evidence, so a folder of the same name that belongs
/// to another engine (a nested or remote engine's `/var/lib/docker` is not
/// this host's), or one this process cannot read, is never measured by
/// mistake: `image/<driver>` must exist for the engine's storage driver, and
/// where an `engine-id` file is readable it must hold the engine's ID.
/// Engines before 23.0 write no `engine-id`; then `image`, the ID of an
/// image the engine holds (`sha256:<hex>`), must be in the folder's image
/// database. `Err` says why it is not visible.
pub fn visible_data_root(
    root: &Path,
    driver: Option<&str>,
    engine_id: Option<&str>,
    image: Option<&str>,
) -> Result<(), String> {
    if !root.is_dir() {
        return Err(format!("no folder {} here", root.display()));
    }
    let Some(driver) = driver else {
        return Err("the engine did not say its storage driver".to_string());
    };
    if !root.join("image").join(driver).is_dir() {
        return Err(format!(
            "{} here has no image/{driver}: another engine's, or not readable",
            root.display()
        ));
    }
    match std::fs::read_to_string(root.join("engine-id")) {
        Ok(here) => match engine_id {
            Some(id) if here.trim() != id => Err(format!(
                "{}/engine-id here is another engine's",
                root.display()
            )),
            _ => Ok(()),
        },
        Err(_) => {
            let Some(hex) = image
                .and_then(|id| id.strip_prefix("sha256:"))
                .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                return Err(format!(
                    "{} here has no engine-id (engines before 23.0 write none) and no image of the engine's to look for",
                    root.display()
                ));
            };
            let entry = root
                .join("image")
                .join(driver)
                .join("imagedb/content/sha256")
                .join(hex);
            if entry.is_file() {
                Ok(())
            } else {
                Err(format!(
                    "{} here has no engine-id and not the engine's image {}: another engine's",
                    root.display(),
                    &hex[..12]
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_evidence_makes_a_root_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let image = format!("sha256:{}", "ab".repeat(32));
        let seen = Some(image.as_str());
        assert!(visible_data_root(&root.join("absent"), Some("overlay2"), None, seen).is_err());
        assert!(
            visible_data_root(root, Some("overlay2"), None, seen).is_err(),
            "no image/ folder"
        );
        assert!(
            visible_data_root(root, None, None, seen).is_err(),
            "no driver"
        );
        let db = root.join("image/overlay2/imagedb/content/sha256");
        std::fs::create_dir_all(&db).expect("layout");
        assert!(
            visible_data_root(root, Some("vfs"), None, seen).is_err(),
            "another driver"
        );
        // No engine-id (Docker before 23.0): the engine's image must be here.
        let why = visible_data_root(root, Some("overlay2"), None, seen).expect_err("no image");
        assert!(why.contains("another engine's"), "{why}");
        assert!(
            visible_data_root(root, Some("overlay2"), None, None).is_err(),
            "nothing to look for"
        );
        std::fs::write(db.join("ab".repeat(32)), "{}").expect("image");
        assert_eq!(
            visible_data_root(root, Some("overlay2"), None, seen),
            Ok(())
        );
        let bare = "ab".repeat(32);
        for odd in ["sha256:../../../etc/passwd", bare.as_str(), "sha256:abc"] {
            assert!(
                visible_data_root(root, Some("overlay2"), None, Some(odd)).is_err(),
                "{odd}"
            );
        }
        // With an engine-id it decides, image or not.
        std::fs::write(root.join("engine-id"), "abc\n").expect("id");
        assert_eq!(
            visible_data_root(root, Some("overlay2"), Some("abc"), None),
            Ok(())
        );
        assert!(visible_data_root(root, Some("overlay2"), Some("xyz"), seen).is_err());
    }
}
