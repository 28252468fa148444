//! `/proc` sampling: the nested engine's CPU (its whole process tree, split
//! into dockerd, containerd and the rest) and a process's resident memory
//! and CPU ticks.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::NestedEngine;

/// The fields of one `/proc/<pid>/stat` line the benchmarks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command name (at most 15 bytes: `containerd-shim` is cut).
    pub comm: String,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// cutime + cstime: what its reaped children used. Counted with the
    /// process, so a child that exits between two readings is not lost.
    pub child_ticks: u64,
}

impl ProcStat {
    pub fn parse(line: &str) -> Result<ProcStat> {
        // The command name sits in parentheses and may itself hold spaces
        // and parentheses: split at the first `(` and the last `)`.
        let (pid, rest) = line
            .split_once('(')
            .with_context(|| format!("no `(` in the stat line `{line}`"))?;
        let (comm, rest) = rest
            .rsplit_once(')')
            .with_context(|| format!("no `)` in the stat line `{line}`"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) ... utime(11) stime(12)
        // cutime(13) cstime(14).
        let field = |i: usize, name: &str| -> Result<u64> {
            fields
                .get(i)
                .with_context(|| format!("no {name} in the stat line `{line}`"))?
                .parse::<u64>()
                .with_context(|| format!("{name} in the stat line `{line}`"))
        };
        Ok(ProcStat {
            pid: pid
                .trim()
                .parse()
                .with_context(|| format!("pid in the stat line `{line}`"))?,
            comm: comm.to_string(),
            ppid: u32::try_from(field(1, "ppid")?)?,
            ticks: field(11, "utime")? + field(12, "stime")?,
            child_ticks: field(13, "cutime")? + field(14, "cstime")?,
        })
    }
}

/// Every process under `proc_dir` (`/proc`, or a fake in a test). A process
/// that exits while it is read is skipped: it is not there any more.
pub fn read_processes(proc_dir: &Path) -> Result<Vec<ProcStat>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(proc_dir).with_context(|| format!("reading {}", proc_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        out.push(ProcStat::parse(&line)?);
    }
    Ok(out)
}

/// The process `root` and all its descendants, root first.
pub fn process_tree(root: u32, all: &[ProcStat]) -> Vec<ProcStat> {
    let mut children: HashMap<u32, Vec<&ProcStat>> = HashMap::new();
    for p in all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<ProcStat> = all.iter().filter(|p| p.pid == root).cloned().collect();
    let mut i = 0;
    while i < out.len() {
        let pid = out[i].pid;
        // pid 0 is the kernel's parent of init and kthreadd: never a child.
        if pid != 0
            && let Some(kids) = children.get(&pid)
        {
            out.extend(kids.iter().map(|p| (*p).clone()));
        }
        i += 1;
    }
    out
}

/// CPU an engine's processes used, in clock ticks: the nested container's
/// init (dockerd) and everything under it, split into dockerd, containerd
/// (the managed child and any other `containerd*` process, shims
/// included) and anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineCpu {
    pub dockerd: u64,
    pub containerd: u64,
    pub other: u64,
}

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

impl EngineCpu {
    /// The tree rooted at `root` in a process listing.
    pub fn of_tree(root: u32, all: &[ProcStat]) -> EngineCpu {
        let mut cpu = EngineCpu::default();
        for p in process_tree(root, all) {
            let ticks = p.ticks + p.child_ticks;
            if p.pid == root {
                cpu.dockerd += ticks;
            } else if p.comm.starts_with("containerd") {
                cpu.containerd += ticks;
            } else {
                cpu.other += ticks;
            }
        }
        cpu
    }

    /// Reads `/proc` now.
    pub fn read(root: u32) -> Result<EngineCpu> {
        let all = read_processes(Path::new("/proc"))?;
        anyhow::ensure!(
            all.iter().any(|p| p.pid == root),
            "the nested engine's process {root} is gone"
        );
        Ok(EngineCpu::of_tree(root, &all))
    }

    /// What was used between `before` and `self`.
    pub fn since(self, before: EngineCpu) -> EngineCpu {
        EngineCpu {
            dockerd: self.dockerd.saturating_sub(before.dockerd),
            containerd: self.containerd.saturating_sub(before.containerd),
            other: self.other.saturating_sub(before.other),
        }
    }

    pub fn plus(self, other: EngineCpu) -> EngineCpu {
        EngineCpu {
            dockerd: self.dockerd + other.dockerd,
            containerd: self.containerd + other.containerd,
            other: self.other + other.other,
        }
    }

    pub fn total_seconds(self) -> f64 {
        (self.dockerd + self.containerd + self.other) as f64 / CLOCK_TICKS_PER_SECOND
    }
}

/// The nested engine's root process on the host: the container's init
/// (dockerd, or Podman's service), whose tree [`EngineCpu::read`] sums.
pub async fn engine_pid(engine: &NestedEngine) -> Result<u32> {
    let out = tokio::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.State.Pid}}",
            engine.container_id(),
        ])
        .output()
        .await
        .context("docker inspect of the nested engine")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("the nested engine's PID")
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/<pid>/status")
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(ProcStat::parse(&stat)?.ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_parses_even_with_parentheses_in_the_name() -> Result<()> {
        let line =
            "4242 (containerd) S 4200 4242 4242 0 -1 4194560 1 0 0 0 150 25 7 3 20 0 12 0 100 0 0";
        let p = ProcStat::parse(line)?;
        assert_eq!(
            p,
            ProcStat {
                pid: 4242,
                comm: "containerd".into(),
                ppid: 4200,
                ticks: 175,
                child_ticks: 10,
            }
        );
        let odd = ProcStat::parse("7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 1 2 20 0")?;
        assert_eq!(
            (odd.comm.as_str(), odd.ppid, odd.ticks, odd.child_ticks),
            ("a) b (c)", 1, 11, 3)
        );
        let error = ProcStat::parse("7 (x) R 1 2 3")
            .expect_err("too short")
            .to_string();
        assert!(error.contains("utime"), "{error}");
        assert!(ProcStat::parse("garbage").is_err());
        Ok(())
    }

    fn stat(pid: u32, comm: &str, ppid: u32, ticks: u64, child_ticks: u64) -> String {
        format!("{pid} ({comm}) S {ppid} 0 0 0 -1 0 0 0 0 0 {ticks} 0 {child_ticks} 0 20 0 1 0")
    }

    #[test]
    fn the_engine_tree_is_found_in_a_proc_listing() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let write = |pid: u32, line: String| -> Result<()> {
            std::fs::create_dir(dir.path().join(pid.to_string()))?;
            std::fs::write(dir.path().join(pid.to_string()).join("stat"), line)?;
            Ok(())
        };
        write(1, stat(1, "systemd", 0, 1000, 0))?;
        write(90, stat(90, "containerd-shim", 1, 5, 0))?; // the host's shim
        write(100, stat(100, "dockerd", 90, 300, 20))?; // the nested engine
        write(101, stat(101, "containerd", 100, 200, 0))?;
        write(102, stat(102, "containerd-shim", 101, 7, 0))?;
        write(103, stat(103, "runc", 102, 3, 0))?;
        write(200, stat(200, "dockerd", 1, 9999, 0))?; // the host's engine
        std::fs::create_dir(dir.path().join("self"))?; // not a pid: skipped
        std::fs::create_dir(dir.path().join("104"))?; // exited while read: skipped
        let all = read_processes(dir.path())?;
        assert_eq!(all.len(), 7);
        let mut tree: Vec<u32> = process_tree(100, &all).iter().map(|p| p.pid).collect();
        tree.sort_unstable();
        assert_eq!(tree, [100, 101, 102, 103]);
        assert_eq!(
            EngineCpu::of_tree(100, &all),
            EngineCpu {
                dockerd: 320,
                containerd: 207,
                other: 3,
            }
        );
        assert!(process_tree(999, &all).is_empty());
        Ok(())
    }

    #[test]
    fn engine_cpu_differences_and_sums() {
        let before = EngineCpu {
            dockerd: 100,
            containerd: 50,
            other: 0,
        };
        let after = EngineCpu {
            dockerd: 250,
            containerd: 80,
            other: 20,
        };
        let used = after.since(before);
        assert_eq!((used.dockerd, used.containerd, used.other), (150, 30, 20));
        assert_eq!(used.total_seconds(), 2.0);
        assert_eq!(used.plus(used).total_seconds(), 4.0);
    }
}
