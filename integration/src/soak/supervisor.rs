//! The daemon under supervision: `cascade-janitor run` against the nested
//! engine, with JSON logs read line by line into [`DaemonEvent`]s, started
//! again whenever it exits (as a service manager would), and sampled from
//! `/proc/<pid>` for its resident memory, open fds and threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// What the daemon's log says, in order.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    Started {
        pid: u32,
        at: SystemTime,
    },
    /// One image removed (`removed`, debug).
    Removed {
        id: String,
        at: SystemTime,
    },
    /// A pass ended: `ok` unless its scan failed; `duration` only on a pass
    /// that removed something (its summary line says it).
    PassEnded {
        at: SystemTime,
        ok: bool,
        duration: Option<Duration>,
        /// A failed scan's error.
        error: Option<String>,
    },
    /// A removal that failed (`failed to remove dangling image`, `not
    /// removed`): the engine may have deleted the image all the same (it
    /// died before answering).
    Attempted {
        id: String,
        at: SystemTime,
    },
    /// "tagged again since the listing; kept": the removal name at work.
    KeptTaggedAgain,
    /// A removal answered 409: a container was created after the listing.
    KeptInUse,
    Exited {
        at: SystemTime,
        /// The fault driver killed it on purpose.
        expected: bool,
        status: String,
    },
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub janitor: PathBuf,
    pub docker_host: String,
    pub interval: Duration,
    pub min_age: Duration,
    /// `--timeout`: each engine call's limit.
    pub call_timeout: Duration,
    /// Every line of the daemon's log is appended here too.
    pub log: Option<PathBuf>,
}

/// The supervisor's handle: the current pid, a way to kill it on purpose,
/// and its samples.
#[derive(Debug, Default)]
pub struct Handle {
    pid: AtomicU32,
    expect_death: AtomicBool,
    kill: Notify,
}

impl Handle {
    /// The daemon's pid now, 0 between two runs.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// SIGKILL the daemon now; its exit is expected and it is restarted.
    pub fn kill(&self) {
        self.expect_death.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }
}

/// Runs the daemon until `cancel`, restarting it whenever it exits; on
/// `cancel`, sends SIGTERM and waits for it to exit.
pub async fn supervise(
    config: DaemonConfig,
    handle: Arc<Handle>,
    events: mpsc::UnboundedSender<DaemonEvent>,
    cancel: CancellationToken,
) -> Result<()> {
    let mut log = match &config.log {
        Some(path) => Some(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    while !cancel.is_cancelled() {
        let mut child = spawn(&config)?;
        let pid = child.id().context("the daemon has no pid")?;
        handle.pid.store(pid, Ordering::SeqCst);
        let _ = events.send(DaemonEvent::Started {
            pid,
            at: SystemTime::now(),
        });
        let stderr = child.stderr.take().context("stderr is piped")?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut stopping = false;
        let status = loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        if let Some(file) = log.as_mut() {
                            use tokio::io::AsyncWriteExt;
                            let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                        }
                        if let Some(event) = parse_line(&line) {
                            let _ = events.send(event);
                        }
                    }
                    // Closed: the process is exiting.
                    _ => break child.wait().await?,
                },
                () = handle.kill.notified() => {
                    let _ = child.start_kill();
                }
                () = cancel.cancelled(), if !stopping => {
                    stopping = true;
                    handle.expect_death.store(true, Ordering::SeqCst);
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
            }
        };
        handle.pid.store(0, Ordering::SeqCst);
        let expected = handle.expect_death.swap(false, Ordering::SeqCst);
        let _ = events.send(DaemonEvent::Exited {
            at: SystemTime::now(),
            expected,
            status: status.to_string(),
        });
    }
    Ok(())
}

fn spawn(config: &DaemonConfig) -> Result<tokio::process::Child> {
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    tokio::process::Command::new(&config.janitor)
        .args([
            "run",
            "--docker-host",
            &config.docker_host,
            "--interval",
            &secs(config.interval),
            "--min-sweep-gap",
            &secs(config.interval),
            "--min-age",
            &secs(config.min_age),
            "--timeout",
            &secs(config.call_timeout),
            "--event-debounce",
            "1s",
            "--log-format",
            "json",
        ])
        .env_remove("SENTRY_DSN")
        .env("RUST_LOG", "info,cascade_cleanup=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", config.janitor.display()))
}

/// One JSON log line of the daemon, as an event (`None` for the others).
pub fn parse_line(line: &str) -> Option<DaemonEvent> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    let message = fields.get("message")?.as_str()?;
    let at = value
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .unwrap_or_else(SystemTime::now);
    let field = |name: &str| fields.get(name).and_then(|v| v.as_str());
    if message == "removed" {
        return Some(DaemonEvent::Removed {
            id: field("image_id")?.to_string(),
            at,
        });
    }
    if message.starts_with("dangling image cleanup: removed") {
        let duration = fields
            .get("duration_ms")
            .and_then(|v| v.as_u64())
            .map(Duration::from_millis);
        return Some(DaemonEvent::PassEnded {
            at,
            ok: true,
            duration,
            error: None,
        });
    }
    if message == "dangling image cleanup: nothing removed" {
        return Some(DaemonEvent::PassEnded {
            at,
            ok: true,
            duration: None,
            error: None,
        });
    }
    if message == "dangling image cleanup: scan failed" {
        return Some(DaemonEvent::PassEnded {
            at,
            ok: false,
            duration: None,
            error: field("error").map(str::to_string),
        });
    }
    if message == "tagged again since the listing; kept" {
        return Some(DaemonEvent::KeptTaggedAgain);
    }
    if message == "not removed" && field("kind") == Some("in_use") {
        return Some(DaemonEvent::KeptInUse);
    }
    if message == "not removed" || message == "failed to remove dangling image" {
        return Some(DaemonEvent::Attempted {
            id: field("image_id")?.to_string(),
            at,
        });
    }
    None
}

/// One `/proc/<pid>` reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// Reads `/proc/<pid>` (`None` once the process is gone).
pub fn sample(proc_dir: &Path, pid: u32) -> Option<Sample> {
    let dir = proc_dir.join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let value = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let fds = std::fs::read_dir(dir.join("fd")).ok()?.count() as u64;
    Some(Sample {
        rss_kib: value("VmRSS:")?,
        fds,
        threads: value("Threads:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_the_auditor_reads() {
        let removed = r#"{"timestamp":"2026-12-02T05:50:00.250000Z","level":"DEBUG","fields":{"message":"removed","image_id":"sha256:abc","size":12},"target":"cascade_cleanup::sweep"}"#;
        let Some(DaemonEvent::Removed { id, at }) = parse_line(removed) else {
            panic!("a removal");
        };
        assert_eq!(id, "sha256:abc");
        assert_eq!(
            at,
            humantime::parse_rfc3339("2026-12-02T05:50:00.250Z").expect("time")
        );
        let summary = r#"{"timestamp":"2026-12-02T05:50:01Z","level":"INFO","fields":{"message":"dangling image cleanup: removed 3 images, reclaimed 10 bytes","removed":3,"duration_ms":420}}"#;
        assert!(matches!(
            parse_line(summary),
            Some(DaemonEvent::PassEnded { ok: true, duration: Some(d), .. }) if d == Duration::from_millis(420)
        ));
        let failed = r#"{"timestamp":"2026-12-02T05:50:01Z","level":"ERROR","fields":{"message":"dangling image cleanup: scan failed","error":"x","kind":"transient"}}"#;
        assert!(matches!(
            parse_line(failed),
            Some(DaemonEvent::PassEnded { ok: false, .. })
        ));
        let busy = r#"{"timestamp":"2026-12-02T05:50:01Z","level":"DEBUG","fields":{"message":"not removed","image_id":"sha256:a","kind":"in_use","error":"conflict"}}"#;
        assert!(matches!(parse_line(busy), Some(DaemonEvent::KeptInUse)));
        let failed = r#"{"timestamp":"2026-12-02T05:50:01Z","level":"WARN","fields":{"message":"failed to remove dangling image","image_id":"sha256:b","kind":"transient","error":"connection reset"}}"#;
        assert!(
            matches!(parse_line(failed), Some(DaemonEvent::Attempted { id, .. }) if id == "sha256:b")
        );
        assert!(parse_line("not json").is_none());
        assert!(parse_line(r#"{"fields":{"message":"kept"}}"#).is_none());
    }

    #[test]
    fn own_process_can_be_sampled() {
        let me = sample(Path::new("/proc"), std::process::id()).expect("self");
        assert!(me.rss_kib > 0 && me.fds > 0 && me.threads > 0, "{me:?}");
        assert_eq!(sample(Path::new("/proc"), u32::MAX), None);
    }
}
