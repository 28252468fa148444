//! Faults injected during a soak, each in the middle of a sweep (right
//! after the daemon reports a removal), and the time to the next
//! successful pass once the fault is over.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use tokio::sync::watch;

use super::supervisor::Handle;
use crate::NestedEngine;

/// A fault of `cargo xtask soak --fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the engine (the nested engine's container), then start it
    /// again.
    EngineKill,
    /// SIGSTOP the engine past the daemon's call timeout, then SIGCONT.
    EngineStop,
    /// SIGKILL the daemon; the supervisor starts it again.
    JanitorKill,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::EngineKill => "engine-kill",
            Fault::EngineStop => "engine-stop",
            Fault::JanitorKill => "janitor-kill",
        }
    }
}

/// How long a fault may take to recover from once it is over: the next
/// pass must end successfully within this. On Docker a pass starts within
/// one interval (an event-driven one sooner) and takes a second or two
/// under churn; 60 s leaves room for a restarted engine's first answers
/// on a loaded 2-core machine.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(60);

/// The same on Podman (`vfs`), whose passes under churn take tens of
/// seconds on a loaded 2-core machine (its removals and `/info` wait for
/// the storage lock behind the churn's commits; measured 8-50 s at one
/// operation a second): 60 s more than its longest pass seen, with a floor
/// of [`RECOVERY_BOUND`].
pub fn recovery_bound(family: crate::engine::Family, longest_pass: Duration) -> Duration {
    match family {
        crate::engine::Family::Docker => RECOVERY_BOUND,
        crate::engine::Family::Podman => (longest_pass + RECOVERY_BOUND).max(RECOVERY_BOUND),
    }
}

/// What one fault did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRecord {
    pub fault: Fault,
    /// The fault hit while a pass was removing (a removal had just been
    /// reported); otherwise no removal came within a minute.
    pub mid_sweep: bool,
    #[serde(with = "rfc3339")]
    pub injected: SystemTime,
    /// From the injection to the end of the fault (engine answering again,
    /// daemon started again).
    pub fault_ms: u64,
    /// From the injection to the end of the next successful pass that ended
    /// after the fault was over; `None`: none within the bound
    /// ([`recovery_bound`]).
    pub recovery_ms: Option<u64>,
    pub bound_ms: u64,
    /// With no recovery: what the soak did as an operator would (the
    /// engine's own error names an image to remove), and the time from
    /// the injection to the next successful pass after that.
    pub operator: Option<String>,
    pub recovery_after_operator_ms: Option<u64>,
}

/// The image an engine's error asks to remove: Podman's list answers
/// `locating item named "manifest" for image with ID "<hex>" (consider
/// removing the image to resolve the issue)` after it was killed while
/// writing that image.
pub fn image_to_remove(error: &str) -> Option<String> {
    let (_, rest) = error.split_once("image with ID ")?;
    if !rest.contains("consider removing the image") {
        return None;
    }
    let id: String = rest
        .trim_start_matches(['"', '\\'])
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (id.len() == 64).then_some(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_image_podman_asks_to_remove() {
        let hex = "2968f2e4169ecc49b0049474e1975b42f63957c653aee3530593b2bb08279ac8";
        let error = format!(
            r#"engine unix:///s: Docker responded with status code 500: locating item named "manifest" for image with ID "{hex}" (consider removing the image to resolve the issue): file does not exist"#
        );
        assert_eq!(super::image_to_remove(&error).as_deref(), Some(hex));
        assert_eq!(super::image_to_remove("timed out after 5s"), None);
    }
}

mod rfc3339 {
    pub fn serialize<S: serde::Serializer>(
        t: &std::time::SystemTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }
}

/// What a fault needs to reach.
#[derive(Debug)]
pub struct FaultContext<'a> {
    pub engine: &'a NestedEngine,
    pub daemon: Arc<Handle>,
    /// Counts reported removals: a change means a pass is removing.
    pub removals: watch::Receiver<u64>,
    /// The daemon's call timeout: a stopped engine stays stopped past it.
    pub call_timeout: Duration,
}

/// Injects `fault` mid-sweep, ends it, and returns when the fault is
/// over; the caller then waits for recovery.
pub async fn inject(
    fault: Fault,
    ctx: &mut FaultContext<'_>,
) -> Result<(SystemTime, bool, SystemTime)> {
    ctx.removals.borrow_and_update();
    let mid_sweep = tokio::time::timeout(Duration::from_secs(60), ctx.removals.changed())
        .await
        .is_ok_and(|changed| changed.is_ok());
    let injected = SystemTime::now();
    match fault {
        Fault::EngineKill => {
            ctx.engine.kill_engine().await?;
            ctx.engine.start_engine().await?;
        }
        Fault::EngineStop => {
            ctx.engine.signal_engine("SIGSTOP").await?;
            // The fault itself: frozen for longer than any call may take.
            tokio::time::sleep(ctx.call_timeout + Duration::from_secs(3)).await;
            ctx.engine.signal_engine("SIGCONT").await?;
        }
        Fault::JanitorKill => {
            let before = ctx.daemon.pid();
            ctx.daemon.kill();
            // Over once the supervisor has started another daemon.
            crate::wait_until(Duration::from_secs(30), "the daemon started again", || {
                let daemon = Arc::clone(&ctx.daemon);
                async move {
                    let pid = daemon.pid();
                    pid != 0 && pid != before
                }
            })
            .await?;
        }
    }
    Ok((injected, mid_sweep, SystemTime::now()))
}
