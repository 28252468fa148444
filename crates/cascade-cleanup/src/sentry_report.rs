//! The Sentry events of a sweep. Tags and levels are part of the contract
//! with the dashboards and alerts that already exist for the original loop.

use sentry::Level;

use crate::docker::DockerError;

/// Tag `source` of a failed scan (level error).
pub const SCAN_SOURCE: &str = "dangling_image_cleanup_scan";
/// Tag `source` of a failed removal (level warning, extra `image_id`).
pub const REMOVE_SOURCE: &str = "dangling_image_remove";

pub(crate) fn scan_failed(error: &DockerError) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", SCAN_SOURCE);
            scope.set_tag("disposition", error.disposition.as_str());
        },
        || {
            sentry::capture_message(
                &format!("dangling image cleanup scan failed: {}", error.message),
                Level::Error,
            )
        },
    );
}

pub(crate) fn removal_failed(image_id: &str, error: &DockerError) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", REMOVE_SOURCE);
            scope.set_tag("disposition", error.disposition.as_str());
            scope.set_extra("image_id", image_id.into());
        },
        || {
            sentry::capture_message(
                &format!(
                    "failed to remove dangling image {image_id}: {}",
                    error.message
                ),
                Level::Warning,
            )
        },
    );
}
