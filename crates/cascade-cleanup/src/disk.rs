//! Free space on a filesystem: how a sweep measures what it really freed
//! on the engine's data root (when `DockerImages::local_data_root` says it
//! is visible here), and what `doctor` prints.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_is_read_from_the_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = disk_space(dir.path()).expect("statvfs");
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert!(free_space(&dir.path().join("absent")).is_err());
    }
}
