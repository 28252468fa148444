//! What `doctor` reports about the scope on one engine: how many images
//! carry the labels, how many of the dangling ones are in scope by the
//! janitor's own check, how many could go now, and how many dangling images
//! the janitor will never touch. Counting is a scope decision, so it lives
//! here and not in the binary, which only prints it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::docker::DockerImages;
use crate::sweep::{DanglingImageSweep, SkipReason, SweepConfig};

/// The scope as one engine sees it (see [`census`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCensus {
    /// Images that carry every label of the scope, tagged or not, by the
    /// janitor's own check of what the engine lists for the first label.
    pub labelled: usize,
    /// Dangling images the engine listed for the scope's filters.
    pub listed: usize,
    /// Of `listed`, the ones that passed the janitor's own check: really in
    /// scope. `[ref:scope_invariant]`
    pub in_scope: usize,
    /// Of `in_scope`, the ones a pass would remove now (old enough, unused).
    pub reclaimable: usize,
    /// Dangling images outside the scope: never touched.
    pub out_of_scope_dangling: usize,
}

/// Counts the scope on `docker` with a dry-run pass (nothing is removed) and
/// two listings; the error is the first failed query's message.
pub async fn census(
    docker: Arc<dyn DockerImages>,
    config: SweepConfig,
) -> Result<ScopeCensus, String> {
    let list = |key: &str, values: Vec<String>| {
        let docker = Arc::clone(&docker);
        let filters = HashMap::from([(key.to_string(), values)]);
        async move { docker.list_images(&filters).await }
    };
    // The engine is given the first label only and the rest are checked
    // here: Podman 4.3 matches nothing for two label filters.
    let first: Vec<String> = config.scope.label_filters().into_iter().take(1).collect();
    let labelled = list("label", first).await.map(|images| {
        images
            .iter()
            .filter(|i| config.scope.check_labels(&i.labels).is_ok())
            .count()
    });
    let dangling = list("dangling", vec!["true".to_string()])
        .await
        .map(|images| images.len());
    let sweep = DanglingImageSweep::new(
        Arc::clone(&docker),
        SweepConfig {
            dry_run: true,
            ..config
        },
    );
    let plan = sweep.run(&CancellationToken::new()).await;
    let labelled = labelled.map_err(|e| e.message)?;
    let dangling = dangling.map_err(|e| e.message)?;
    if let Some(error) = plan.scan_error {
        return Err(error);
    }
    let rejected = plan
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::FailedVerification { .. }))
        .count();
    let in_scope = plan.listed - rejected;
    Ok(ScopeCensus {
        labelled,
        listed: plan.listed,
        in_scope,
        reclaimable: plan.would_remove.len(),
        out_of_scope_dangling: dangling.saturating_sub(in_scope),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::docker::DockerError;
    use crate::fake::{FakeDocker, image, ours};

    fn config() -> SweepConfig {
        SweepConfig {
            min_age: Duration::from_secs(1800),
            ..SweepConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_only_what_passed_the_janitors_own_check_as_in_scope() {
        let label = [("cascade.managed", "true")];
        let fake = Arc::new(FakeDocker::with_images(vec![
            ours("sha256:old"),
            image("sha256:young", &label, &["<none>:<none>"], 60),
            // The fake ignores filters: an engine that wrongly lists an
            // unlabelled dangling image for the label filter.
            image("sha256:mysql", &[], &["<none>:<none>"], 3600),
        ]));
        fake.edit(|s| s.tagged = vec![image("sha256:current", &label, &["snap:latest"], 60)]);
        let counted = census(fake.clone(), config()).await;
        // `labelled` is the janitor's own count: the unlabelled image the
        // engine wrongly listed is not in it.
        assert_eq!(
            counted,
            Ok(ScopeCensus {
                labelled: 3,
                listed: 3,
                in_scope: 2,
                reclaimable: 1,
                out_of_scope_dangling: 1,
            })
        );
        assert!(fake.removed().is_empty(), "a census removes nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_listing_is_its_message() {
        let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
        fake.edit(|s| s.list_error = Some(DockerError::status(503, "engine is busy")));
        let counted = census(fake, config()).await;
        assert!(
            counted
                .as_ref()
                .is_err_and(|e| e.contains("engine is busy")),
            "{counted:?}"
        );
    }
}
