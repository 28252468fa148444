//! The auditor: follows the daemon's log, judges each removal it reports
//! against the [`Ledger`] as it stood at the removal, and checks every few
//! seconds that each image that must survive is still on the engine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::Docker;

use super::ledger::{Ledger, Verdict};
use super::supervisor::DaemonEvent;

/// A removal is judged this long after its pass ended, so a protection
/// whose call answered just after the removal is in the ledger by then.
const SETTLE: Duration = Duration::from_secs(2);
/// How long a removal of an image the churn has not recorded waits for
/// the call that made it to answer.
const UNKNOWN_WAIT: Duration = Duration::from_secs(60);

/// What the auditor counted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditFigures {
    pub removed: u64,
    pub passes: u64,
    pub failed_passes: u64,
    /// Protected images found on the engine, summed over every check.
    pub protected_checked: u64,
    pub checks: u64,
    /// Checks skipped because the engine did not list its images.
    pub checks_failed: u64,
    /// Each loss, said in one line.
    pub losses: Vec<String>,
    /// Milliseconds from the tag call's start to the reported removal.
    pub window_losses: Vec<i64>,
    /// Milliseconds from the container create's start to the removal.
    pub engine_window: Vec<i64>,
    /// Milliseconds from the mounting container's create to the removal.
    pub mount_window: Vec<i64>,
    /// The janitor kept an image tagged again since its listing.
    pub kept_tagged_again: u64,
    /// A removal answered 409: a container created since the listing.
    pub kept_in_use: u64,
    pub starts: u64,
    /// Exits the fault driver did not cause.
    pub unexpected_exits: Vec<String>,
    /// The longest pass that removed something (its summary says).
    pub longest_pass_ms: u64,
    #[serde(skip)]
    pub ok_pass_ends: Vec<SystemTime>,
    #[serde(skip)]
    pub starts_at: Vec<SystemTime>,
}

#[derive(Debug)]
pub struct Auditor {
    ledger: Arc<Mutex<Ledger>>,
    pub figures: AuditFigures,
    /// Removals of the pass in progress.
    pending: Vec<(String, SystemTime)>,
    due: VecDeque<(String, SystemTime, SystemTime, tokio::time::Instant)>,
    last_pass_end: Option<SystemTime>,
    process_start: SystemTime,
    lost: HashSet<String>,
    /// Removals the daemon tried and saw fail, with the pass's earliest
    /// start: the engine may have deleted the image before it died.
    attempted: HashMap<String, (SystemTime, SystemTime)>,
    /// When a fault killed the daemon, with the earliest start of the pass
    /// it was in: a removal it made but never logged happened before.
    kills: Vec<(SystemTime, SystemTime)>,
    /// Missing at the last check and not reported removed (yet): the log
    /// may lag the listing by a moment, so a loss only at the next check.
    suspects: HashSet<String>,
    /// The last failed scan's error, for what an operator would do.
    pub last_scan_error: Option<String>,
    /// Stops counting exits once the soak is ending.
    pub stopping: bool,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Auditor {
    pub fn new(ledger: Arc<Mutex<Ledger>>) -> Auditor {
        Auditor {
            ledger,
            figures: AuditFigures::default(),
            pending: Vec::new(),
            due: VecDeque::new(),
            last_pass_end: None,
            process_start: SystemTime::now(),
            lost: HashSet::new(),
            suspects: HashSet::new(),
            attempted: HashMap::new(),
            kills: Vec::new(),
            last_scan_error: None,
            stopping: false,
        }
    }

    /// The earliest a pass without a summary can have begun: the previous
    /// pass's end or the process's start, whichever is later.
    fn floor(&self) -> SystemTime {
        self.last_pass_end
            .map_or(self.process_start, |end| end.max(self.process_start))
    }

    fn flush(&mut self, pass_start: SystemTime) {
        let due = tokio::time::Instant::now() + SETTLE;
        for (id, at) in self.pending.drain(..) {
            self.due.push_back((id, at, pass_start, due));
        }
    }

    pub fn on_event(&mut self, event: DaemonEvent) {
        match event {
            DaemonEvent::Started { at, .. } => {
                self.process_start = at;
                self.figures.starts += 1;
                self.figures.starts_at.push(at);
            }
            DaemonEvent::Removed { id, at } => {
                locked(&self.ledger).mark_removed(&id, at);
                self.figures.removed += 1;
                self.pending.push((id, at));
            }
            DaemonEvent::PassEnded {
                at,
                ok,
                duration,
                error,
            } => {
                if error.is_some() {
                    self.last_scan_error = error;
                }
                if let Some(d) = duration {
                    let ms = d.as_millis() as u64;
                    self.figures.longest_pass_ms = self.figures.longest_pass_ms.max(ms);
                }
                let start = duration
                    .and_then(|d| at.checked_sub(d))
                    .unwrap_or_else(|| self.floor());
                self.flush(start);
                self.last_pass_end = Some(at);
                if ok {
                    self.figures.passes += 1;
                    self.figures.ok_pass_ends.push(at);
                } else {
                    self.figures.failed_passes += 1;
                }
            }
            DaemonEvent::Attempted { id, at } => {
                let floor = self.floor();
                self.attempted.insert(id, (at, floor));
            }
            DaemonEvent::KeptTaggedAgain => self.figures.kept_tagged_again += 1,
            DaemonEvent::KeptInUse => self.figures.kept_in_use += 1,
            DaemonEvent::Exited {
                at,
                expected,
                status,
            } => {
                let floor = self.floor();
                self.flush(floor);
                if expected {
                    self.kills.push((at, floor));
                }
                if !expected && !self.stopping {
                    self.figures.unexpected_exits.push(format!(
                        "{status} at {}",
                        humantime::format_rfc3339_millis(at)
                    ));
                }
            }
        }
    }

    /// Judges the removals whose settle time is up.
    pub fn judge_due(&mut self, all: bool) {
        let now = tokio::time::Instant::now();
        let mut retry = Vec::new();
        while let Some((_, _, _, due)) = self.due.front() {
            if !all && *due > now {
                break;
            }
            let Some((id, at, pass_start, due)) = self.due.pop_front() else {
                break;
            };
            // An image the churn has not recorded yet (its call answered
            // after the removal): judged once it has, or after a while.
            let (known, unsettled) = {
                let ledger = locked(&self.ledger);
                (ledger.contains(&id), ledger.unsettled > 0)
            };
            if (!known || unsettled) && !all && due.elapsed() < UNKNOWN_WAIT {
                retry.push((id, at, pass_start, due));
                continue;
            }
            let verdict = locked(&self.ledger).judge(&id, at, pass_start);
            self.record(&id, verdict);
        }
        for item in retry {
            self.due.push_back(item);
        }
    }

    fn record(&mut self, id: &str, verdict: Verdict) {
        match verdict {
            Verdict::Fine => {}
            Verdict::WindowLoss { ms } => self.figures.window_losses.push(ms),
            Verdict::EngineWindow { ms } => self.figures.engine_window.push(ms),
            Verdict::MountWindow { ms } => self.figures.mount_window.push(ms),
            Verdict::Loss { reason, detail } => {
                if self.lost.insert(id.to_string()) {
                    self.figures.losses.push(format!(
                        "{id} ({}) removed by the janitor: {detail}",
                        reason.as_str()
                    ));
                }
            }
        }
    }

    /// Every image that must be on the engine is there; one that is not
    /// and was not reported removed is a loss (a reported one is judged by
    /// its removal). Skipped when the engine does not answer in time.
    pub async fn check(&mut self, docker: &Docker) {
        let at = SystemTime::now();
        let listing = tokio::time::timeout(
            Duration::from_secs(10),
            crate::engine::all_image_ids(docker),
        )
        .await;
        let Ok(Ok(listed)) = listing else {
            self.figures.checks_failed += 1;
            return;
        };
        let must = locked(&self.ledger).must_exist_at(at);
        self.figures.checks += 1;
        let suspects = std::mem::take(&mut self.suspects);
        for (id, reason) in must {
            if listed.contains(&id) {
                self.figures.protected_checked += 1;
                continue;
            }
            let reported = locked(&self.ledger)
                .get(&id)
                .is_some_and(|e| e.removed.is_some());
            if reported {
                continue;
            }
            if !suspects.contains(&id) {
                self.suspects.insert(id);
                continue;
            }
            // Unreported: a removal the daemon saw fail, or one it made
            // just before a fault killed it, is judged as made then.
            let from = locked(&self.ledger)
                .get(&id)
                .and_then(|e| e.held_at(at).map(|p| p.from));
            let unreported = self.attempted.get(&id).copied().or_else(|| {
                self.kills
                    .iter()
                    .find(|(killed, _)| from.is_some_and(|f| f < *killed))
                    .copied()
            });
            if let Some((removed_at, pass_start)) = unreported {
                locked(&self.ledger).mark_removed(&id, removed_at);
                let verdict = locked(&self.ledger).judge(&id, removed_at, pass_start);
                self.record(&id, verdict);
            } else if self.lost.insert(id.clone()) {
                self.figures.losses.push(format!(
                    "{id} ({}) vanished from the engine without a removal report",
                    reason.as_str()
                ));
            }
        }
    }
}
