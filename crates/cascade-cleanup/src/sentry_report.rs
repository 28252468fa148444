//! The Sentry events of a sweep, shaped as the router's own reports are.
//!
//! The contract (the router's alerts and dashboards query it):
//! - tags `source` and `disposition`;
//! - one fixed message per `source`, with no image ID or error text in it,
//!   and a fingerprint of `[source, disposition]`, so 1,000 failing images
//!   make one Sentry issue with 1,000 events, not 1,000 issues;
//! - extras `error` (the engine's message) and, for a removal, `imageId`.

use sentry::Level;

use crate::docker::DockerError;

/// Tag `source` of a failed scan (level error).
pub const SCAN_SOURCE: &str = "dangling_image_cleanup_scan";
/// Tag `source` of a failed removal (level warning, extra `imageId`).
pub const REMOVE_SOURCE: &str = "dangling_image_remove";
/// The one message of every failed scan.
pub const SCAN_MESSAGE: &str = "dangling image cleanup scan failed";
/// The one message of every failed removal.
pub const REMOVE_MESSAGE: &str = "dangling image removal failed";
/// Extra key holding the engine's error text.
pub const ERROR_EXTRA: &str = "error";
/// Extra key holding the image ID; the router spells it in camel case.
pub const IMAGE_ID_EXTRA: &str = "imageId";

pub(crate) fn scan_failed(error: &DockerError) {
    report(SCAN_SOURCE, SCAN_MESSAGE, Level::Error, error, None);
}

pub(crate) fn removal_failed(image_id: &str, error: &DockerError) {
    report(
        REMOVE_SOURCE,
        REMOVE_MESSAGE,
        Level::Warning,
        error,
        Some(image_id),
    );
}

fn report(source: &str, message: &str, level: Level, error: &DockerError, image_id: Option<&str>) {
    let disposition = error.disposition.as_str();
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", source);
            scope.set_tag("disposition", disposition);
            scope.set_fingerprint(Some(&[source, disposition]));
            scope.set_extra(ERROR_EXTRA, error.message.as_str().into());
            if let Some(id) = image_id {
                scope.set_extra(IMAGE_ID_EXTRA, id.into());
            }
        },
        || sentry::capture_message(message, level),
    );
}
