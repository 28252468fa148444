//! Whether the engine's data root is visible from this process. Only then
//! can a sweep measure what it freed there (`cascade_cleanup::disk`), and
//! `doctor` report the engine's free space.

use std::path::Path;

/// Whether `root`, the engine's `DockerRootDir`, is that engine's folder as
/// seen from here: on the engine's host, or in a container that mounts it.
/// It asks for positive evidence, so a folder of the same name that belongs
/// to another engine (a nested or remote engine's `/var/lib/docker` is not
/// this host's), or one this process cannot read, is never measured by
/// mistake: `image/<driver>` must exist for the engine's storage driver, and
/// where an `engine-id` file is readable it must hold the engine's ID. `Err`
/// says why it is not visible.
pub fn visible_data_root(
    root: &Path,
    driver: Option<&str>,
    engine_id: Option<&str>,
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
    if let (Ok(here), Some(id)) = (std::fs::read_to_string(root.join("engine-id")), engine_id)
        && here.trim() != id
    {
        return Err(format!(
            "{}/engine-id here is another engine's",
            root.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_evidence_makes_a_root_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(visible_data_root(&root.join("absent"), Some("overlay2"), None).is_err());
        assert!(
            visible_data_root(root, Some("overlay2"), None).is_err(),
            "no image/ folder"
        );
        assert!(visible_data_root(root, None, None).is_err(), "no driver");
        std::fs::create_dir_all(root.join("image/overlay2")).expect("layout");
        assert!(
            visible_data_root(root, Some("vfs"), None).is_err(),
            "another driver"
        );
        assert_eq!(visible_data_root(root, Some("overlay2"), None), Ok(()));
        std::fs::write(root.join("engine-id"), "abc\n").expect("id");
        assert_eq!(
            visible_data_root(root, Some("overlay2"), Some("abc")),
            Ok(())
        );
        assert!(visible_data_root(root, Some("overlay2"), Some("xyz")).is_err());
    }
}
