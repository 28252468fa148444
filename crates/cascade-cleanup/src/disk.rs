//! The engine's data root as seen from this process: whether it is visible
//! here, and how much space its filesystem has. Used to measure what a sweep
//! really freed, and by `doctor`.

use std::path::Path;

/// Space on the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to unprivileged users.
    pub free: u64,
    pub total: u64,
}

pub fn disk_space(path: &Path) -> std::io::Result<DiskSpace> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(DiskSpace {
        free: stat.f_bavail.saturating_mul(stat.f_frsize),
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    disk_space(path).map(|d| d.free)
}

/// Whether `root`, the engine's `DockerRootDir`, is that engine's folder as
/// seen from here: on the engine's host, or in a container that mounts it.
/// A folder of the same name that belongs to another engine (a nested
/// engine's `/var/lib/docker` is not the host's) is recognised when it has
/// the classic layout, `image/<driver>`, for another driver. `Err` says why
/// it is not visible.
pub fn visible_data_root(root: &Path, driver: Option<&str>) -> Result<(), String> {
    if !root.is_dir() {
        return Err(format!("no folder {} here", root.display()));
    }
    if let Some(driver) = driver {
        let images = root.join("image");
        if images.is_dir() && !images.join(driver).is_dir() {
            return Err(format!(
                "{} here belongs to another engine: it has no image/{driver}",
                root.display()
            ));
        }
    }
    Ok(())
}
