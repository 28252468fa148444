//! The Sentry events of a sweep, shaped as the router's own reports are.
//!
//! The contract (the router's alerts and dashboards query it):
//! - tags `source` and `disposition`;
//! - one fixed message per `source`, with no image ID or error text in it,
//!   and a fingerprint of `[source, disposition]`, so 1,000 failing images
//!   make one Sentry issue with 1,000 events, not 1,000 issues;
//! - extras `error` (the engine's message) and, for a removal, `imageId`.
//!
//! A panic the loop caught has the same shape: source
//! `dangling_image_cleanup_panic`, one fixed message, tag `where` (sweep,
//! observer, events) in place of `disposition` and in the fingerprint, and
//! the panic's text in extra `panic`.

use sentry::Level;

use crate::docker::DockerError;
use crate::lifecycle::PanicSite;

/// Tag `source` of a failed scan (level error).
pub const SCAN_SOURCE: &str = "dangling_image_cleanup_scan";
/// Tag `source` of a failed removal (level warning, extra `imageId`).
pub const REMOVE_SOURCE: &str = "dangling_image_remove";
/// The one message of every failed scan.
pub const SCAN_MESSAGE: &str = "dangling image cleanup scan failed";
/// The one message of every failed removal.
pub const REMOVE_MESSAGE: &str = "dangling image removal failed";
/// Tag `source` of a panic the loop caught (level error, tag `where`).
pub const PANIC_SOURCE: &str = "dangling_image_cleanup_panic";
/// The one message of every caught panic.
pub const PANIC_MESSAGE: &str = "dangling image cleanup caught a panic";
/// Extra key holding the panic's text.
pub const PANIC_EXTRA: &str = "panic";
/// Extra key holding the engine (Docker host URL) of the loop.
pub const ENGINE_EXTRA: &str = "engine";
/// Extra key holding the engine's error text.
pub const ERROR_EXTRA: &str = "error";
/// Extra key holding the image ID; the router spells it in camel case.
pub const IMAGE_ID_EXTRA: &str = "imageId";
/// Tag `source` of a pass that refused to remove on an engine no row of
/// the proven-engine table admits (level error, tags `implementation` and
/// `version`, extra `engine` and `reason`).
pub const UNPROVEN_SOURCE: &str = "dangling_image_cleanup_unproven_engine";
/// The one message of every refusal.
pub const UNPROVEN_MESSAGE: &str = "dangling image cleanup refused an unproven engine";
/// Extra key holding why the engine is refused.
pub const REASON_EXTRA: &str = "reason";
/// Tag `source` of a removal after which the engine said it deleted images
/// the janitor did not ask for (level error, extras `imageId`, `deleted`).
pub const UNEXPECTED_SOURCE: &str = "dangling_image_cleanup_unexpected_deletion";
/// The one message of every unexpected deletion.
pub const UNEXPECTED_MESSAGE: &str = "the engine deleted images the janitor did not ask for";
/// Extra key holding the IDs the engine deleted unasked.
pub const DELETED_EXTRA: &str = "deleted";

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

pub(crate) fn unproven_engine(engine: &str, unproven: &crate::proven::Unproven) {
    let identity = &unproven.identity;
    let implementation = identity.implementation.as_str().to_string();
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", UNPROVEN_SOURCE);
            scope.set_tag("implementation", &implementation);
            scope.set_tag("version", &identity.version);
            scope.set_fingerprint(Some(&[UNPROVEN_SOURCE, &implementation, &identity.version]));
            scope.set_extra(ENGINE_EXTRA, engine.into());
            scope.set_extra(REASON_EXTRA, unproven.to_string().into());
        },
        || sentry::capture_message(UNPROVEN_MESSAGE, Level::Error),
    );
}

pub(crate) fn unexpected_deletion(engine: &str, image_id: &str, deleted: &str) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", UNEXPECTED_SOURCE);
            scope.set_fingerprint(Some(&[UNEXPECTED_SOURCE]));
            scope.set_extra(ENGINE_EXTRA, engine.into());
            scope.set_extra(IMAGE_ID_EXTRA, image_id.into());
            scope.set_extra(DELETED_EXTRA, deleted.into());
        },
        || sentry::capture_message(UNEXPECTED_MESSAGE, Level::Error),
    );
}

pub(crate) fn panicked(engine: &str, site: PanicSite, message: &str) {
    let site = site.as_str();
    sentry::with_scope(
        |scope| {
            scope.set_tag("source", PANIC_SOURCE);
            scope.set_tag("where", site);
            scope.set_fingerprint(Some(&[PANIC_SOURCE, site]));
            scope.set_extra(PANIC_EXTRA, message.into());
            scope.set_extra(ENGINE_EXTRA, engine.into());
        },
        || sentry::capture_message(PANIC_MESSAGE, Level::Error),
    );
}
