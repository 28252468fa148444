//! The gentleness benchmark's probe: a `POST /commit` every 50 ms (by
//! default) on its own connection, recording each commit's latency, as the
//! router's CI jobs commit while a sweep runs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::raw::RawConnection;

/// One commit the probe made.
#[derive(Debug, Clone, Copy)]
pub struct CommitSample {
    pub started: Instant,
    pub latency: Duration,
}

/// The latencies of the samples that started in `[from, until]`.
pub fn started_within(samples: &[CommitSample], from: Instant, until: Instant) -> Vec<Duration> {
    samples
        .iter()
        .filter(|s| s.started >= from && s.started <= until)
        .map(|s| s.latency)
        .collect()
}

/// Failed commits in a row after which the probe gives up.
const PROBE_FAILURES_IN_A_ROW: usize = 5;

/// A closed loop of `POST /commit?container=<id>&repo=probe&tag=latest` on
/// its own connection, one every `period` (or at once when a commit took
/// longer): a stand-in for the CI jobs that share the engine with a sweep.
/// Each commit leaves the previous `probe:latest` dangling and
/// unlabelled: a decoy the janitor must keep.
pub struct CommitProbe {
    samples: tokio::sync::watch::Receiver<Vec<CommitSample>>,
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl std::fmt::Debug for CommitProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitProbe").finish_non_exhaustive()
    }
}

impl CommitProbe {
    pub async fn start(socket: &Path, container: &str, period: Duration) -> Result<CommitProbe> {
        let mut connection = RawConnection::open(socket).await?;
        let uri = format!("/commit?container={container}&repo=probe&tag=latest");
        let (sender, samples) = tokio::sync::watch::channel(Vec::new());
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let mut failed_in_a_row = 0;
            loop {
                let started = Instant::now();
                let (status, body) = tokio::select! {
                    r = connection.send(hyper::Method::POST, &uri) => r?,
                    () = stop.cancelled() => return Ok(()),
                };
                let latency = started.elapsed();
                if status == 201 {
                    failed_in_a_row = 0;
                } else {
                    // The containerd store fails a commit that races its GC
                    // ("lease does not exist"); a router retries, and the
                    // time it waited still counts. A probe that cannot
                    // commit at all stops.
                    failed_in_a_row += 1;
                    let body = String::from_utf8_lossy(&body);
                    if failed_in_a_row >= PROBE_FAILURES_IN_A_ROW {
                        bail!(
                            "the probe's commit answered {status} {failed_in_a_row} times in a row: {body}"
                        );
                    }
                    eprintln!(
                        "cascade-bench: a probe commit answered {status} (counted, retried): {}",
                        body.trim()
                    );
                }
                sender.send_modify(|s| s.push(CommitSample { started, latency }));
                tokio::select! {
                    () = tokio::time::sleep_until((started + period).into()) => {}
                    () = stop.cancelled() => return Ok(()),
                }
            }
        });
        Ok(CommitProbe {
            samples,
            cancel,
            task,
        })
    }

    /// Waits until `n` commits that started at or after `from` finished.
    /// Fails if the probe stopped (its error says why) or after `limit`.
    pub async fn wait_for(&mut self, from: Instant, n: usize, limit: Duration) -> Result<()> {
        let waited = tokio::time::timeout(
            limit,
            self.samples
                .wait_for(|s| s.iter().rev().take_while(|c| c.started >= from).count() >= n),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => {
                // The sender is gone: the probe's task ended with an error.
                let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
                task.await??;
                bail!("the commit probe stopped")
            }
            Err(_) => bail!("the commit probe made fewer than {n} commits in {limit:?}"),
        }
    }

    /// Every commit so far.
    pub fn samples(&self) -> Vec<CommitSample> {
        self.samples.borrow().clone()
    }

    /// Stops the loop (a commit in flight is abandoned) and returns every
    /// finished commit.
    pub async fn stop(self) -> Result<Vec<CommitSample>> {
        self.cancel.cancel();
        let samples = self.samples.borrow().clone();
        self.task.await??;
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commits_that_started_in_the_window_count() {
        let t0 = Instant::now();
        let at = |ms: u64, lat: u64| CommitSample {
            started: t0 + Duration::from_millis(ms),
            latency: Duration::from_millis(lat),
        };
        let samples = [at(0, 5), at(50, 900), at(100, 6), at(150, 7), at(200, 8)];
        let inside = started_within(
            &samples,
            t0 + Duration::from_millis(50),
            t0 + Duration::from_millis(150),
        );
        assert_eq!(inside, [900, 6, 7].map(Duration::from_millis));
    }
}
