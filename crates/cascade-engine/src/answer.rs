//! The engine's answers, read within a size limit `[tag:answer_limit]`.
//!
//! Every answer a sweep reads whole (`GET /version`, `GET /info`, `GET
//! /containers/json`, `GET /images/<name>/json`, `DELETE /images/<name>`,
//! and any error answer), and the image list it reads as it arrives
//! (`list.rs`), is read at most [`ANSWER_LIMIT_BYTES`] into its body. A
//! longer body (an engine or a proxy gone wrong, or something else
//! answering at the engine's address) ends the call with one line,
//! `the engine's answer to GET /images/json exceeded 64 MiB; ...`: the
//! call fails as an unexpected error, so the pass removes nothing, reports
//! it and the next pass tries again, instead of the janitor growing until
//! the kernel kills it. The connection is dropped with the rest of the body
//! unread.
//!
//! The limit is far above any real answer: a `GET /images/json` of 20,000
//! images is about 6 MB on Docker's classic store (API 1.41: about 300
//! bytes an image) and about 20 MB on its containerd store (about 1 KB an
//! image, with `Descriptor` and `Manifests`); `the_limit_is_far_above_a_real_list`
//! pins that arithmetic. Sent a 1 GiB image list, the daemon peaks at about
//! 93 MB resident (`integration/tests/hostile.rs`, docs/RELIABILITY.md).

use cascade_classify::Disposition;
use cascade_cleanup::DockerError;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};

use crate::connect::PooledTransport;

/// The most bytes of one answer's body the janitor reads `[ref:answer_limit]`.
pub const ANSWER_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Counts an answer's bytes against the limit as they arrive.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// `GET /images/json` and the like: what the message names.
    call: String,
    limit: u64,
    read: u64,
}

impl Budget {
    pub(crate) fn new(call: impl Into<String>) -> Budget {
        Budget::with_limit(call, ANSWER_LIMIT_BYTES)
    }

    pub(crate) fn with_limit(call: impl Into<String>, limit: u64) -> Budget {
        Budget {
            call: call.into(),
            limit,
            read: 0,
        }
    }

    /// Counts `bytes` more; an error once the body passed the limit.
    pub(crate) fn take(&mut self, bytes: usize) -> Result<(), DockerError> {
        self.read = self.read.saturating_add(bytes as u64);
        if self.read > self.limit {
            return Err(exceeded(&self.call, self.limit));
        }
        Ok(())
    }
}

/// The one line a too-long answer gives.
pub(crate) fn exceeded(call: &str, limit: u64) -> DockerError {
    DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!(
            "the engine's answer to {call} exceeded {}; nothing was read past it and nothing is removed on it. No engine's answer comes near that (20,000 images list in about 20 MB): check what answers at the engine address (a proxy in between?)",
            shown_limit(limit)
        ),
    }
}

/// `64 MiB`, or bytes for a limit under 1 MiB (tests).
pub(crate) fn shown_limit(limit: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if limit >= MIB && limit.is_multiple_of(MIB) {
        format!("{} MiB", limit / MIB)
    } else {
        format!("{limit} bytes")
    }
}

/// A body that ended in an error (the connection was reset mid-body):
/// classified as bollard's error would be, and named by its call.
pub(crate) fn broke_off(call: &str, err: hyper::Error) -> DockerError {
    let error = crate::images::docker_error(bollard::errors::Error::HyperResponseError { err });
    DockerError {
        message: format!("the engine's answer to {call} broke off: {}", error.message),
        ..error
    }
}

/// The whole body of `body`, at most `budget`'s limit.
pub(crate) async fn read_body(
    mut body: Incoming,
    budget: &mut Budget,
) -> Result<Bytes, DockerError> {
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| broke_off(&budget.call, err))?;
        if let Some(chunk) = frame.data_ref() {
            budget.take(chunk.len())?;
            collected.extend_from_slice(chunk);
        }
    }
    Ok(Bytes::from(collected))
}

/// The error of a non-2xx answer, its body read within the limit: bollard's
/// `DockerResponseServerError`, so it is classified as bollard's would be.
pub(crate) async fn error_answer(
    status: hyper::StatusCode,
    body: Incoming,
    call: &str,
) -> DockerError {
    let bytes = match read_body(body, &mut Budget::new(call)).await {
        Ok(bytes) => bytes,
        Err(error) => return error,
    };
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    crate::images::docker_error(bollard::errors::Error::DockerResponseServerError {
        status_code: status.as_u16(),
        message,
    })
}

/// `method path_and_query` through `transport`, its answer read within
/// the limit and decoded as `T`. An answer that is not `T` is an unexpected
/// error naming the call, as bollard's decoding error would be.
pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
    transport: &PooledTransport,
    method: hyper::Method,
    path_and_query: &str,
) -> Result<T, DockerError> {
    let call = format!(
        "{method} {}",
        path_and_query.split('?').next().unwrap_or_default()
    );
    let response = transport
        .send(method, path_and_query)
        .await
        .map_err(crate::images::docker_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(error_answer(status, response.into_body(), &call).await);
    }
    let bytes = read_body(response.into_body(), &mut Budget::new(call.clone())).await?;
    serde_json::from_slice(&bytes).map_err(|e| DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!("the engine's answer to {call} cannot be read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_one_line_naming_the_call_and_the_limit() {
        let mut budget = Budget::new("GET /images/json");
        assert!(budget.take(ANSWER_LIMIT_BYTES as usize).is_ok());
        let error = budget.take(1).expect_err("one byte over");
        assert_eq!(error.disposition, Disposition::Unexpected);
        assert!(
            error
                .message
                .starts_with("the engine's answer to GET /images/json exceeded 64 MiB; "),
            "{}",
            error.message
        );
        assert!(!error.message.contains('\n'));
        let small = Budget::with_limit("GET /info", 10)
            .take(11)
            .expect_err("over");
        assert!(
            small.message.contains("exceeded 10 bytes;"),
            "{}",
            small.message
        );
    }

    /// The limit against real answers: the largest image entry a matrix
    /// engine lists (Docker 28.5's containerd store, with `Descriptor` and
    /// `Manifests`: `list/tests.rs`'s sample, about 1 KB) times 20,000
    /// images must stay under a third of it.
    #[test]
    fn the_limit_is_far_above_a_real_list() {
        let entry = crate::list::tests::DOCKER_28_5_CONTAINERD.len() as u64;
        assert!((900..2_000).contains(&entry), "{entry}");
        assert!(20_000 * entry * 3 < ANSWER_LIMIT_BYTES, "{entry}");
    }
}
