//! `GET /events`, read line by line within a limit on each event
//! (`[ref:answer_limit]`).
//!
//! The event stream is an answer that never ends, so the answer limit
//! cannot bound it whole; what it bounds is one event. Engines write each
//! event as one line of JSON (Docker's and Podman's `json.Encoder`), so
//! the bytes held at any moment are those of the event not yet ended by
//! its newline. bollard's decoder would hold them without bound (a proxy
//! or a broken engine sending a line that never ends grows the janitor
//! until the kernel kills it); here a line past [`EVENT_LIMIT_BYTES`] ends
//! the stream with one line naming the call and the limit. The follower
//! then warns and subscribes again after its backoff, and the interval
//! still sweeps meanwhile, as for any broken stream.
//!
//! A line is one event: a line that is not a whole event is an error, not
//! the start of an event that goes on (bollard's reading), since no engine
//! writes one and re-reading a growing line at each newline would cost the
//! square of its length.

use std::collections::VecDeque;

use bollard::models::EventMessage;
use cascade_classify::Disposition;
use cascade_cleanup::{DockerError, EngineEvent};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::answer::{broke_off, error_answer, shown_limit};
use crate::connect::PooledTransport;

/// The most bytes of one event the follower holds `[ref:answer_limit]`.
/// An event carries its object's labels and little else: a few hundred
/// bytes, a few KiB for a heavily labelled container; 1 MiB is far above
/// any real one and bounds what a line that never ends can cost.
pub const EVENT_LIMIT_BYTES: usize = 1024 * 1024;

/// What the messages name.
const CALL: &str = "GET /events";

/// Splits the stream's bytes into events, in any split of chunks.
#[derive(Debug)]
pub(crate) struct EventLines {
    /// Bytes of events not yet ended by a newline.
    pending: Vec<u8>,
    /// Where in `pending` the newline search resumes.
    searched: usize,
    limit: usize,
}

impl EventLines {
    pub(crate) fn with_limit(limit: usize) -> EventLines {
        EventLines {
            pending: Vec::new(),
            searched: 0,
            limit,
        }
    }

    /// Takes the next chunk; returns the events it ended, in order. An
    /// error once the event in progress is longer than the limit, or when
    /// a line is not an event.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<EventMessage>, DockerError> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(at) = self.pending[self.searched..]
            .iter()
            .position(|b| *b == b'\n')
        {
            let end = self.searched + at;
            self.searched = end + 1;
            events.extend(decode(&self.pending[start..end])?);
            start = self.searched;
        }
        self.pending.drain(..start);
        self.searched -= start;
        if self.pending.len() > self.limit {
            // Nothing more is held: the stream ends here.
            self.pending = Vec::new();
            self.searched = 0;
            return Err(exceeded_event(self.limit));
        }
        Ok(events)
    }

    /// The stream ended: the last event, if one came without its newline.
    pub(crate) fn finish(&mut self) -> Result<Option<EventMessage>, DockerError> {
        let rest = std::mem::take(&mut self.pending);
        self.searched = 0;
        decode(&rest)
    }
}

/// One line's event; none for a blank line.
fn decode(line: &[u8]) -> Result<Option<EventMessage>, DockerError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|e| unreadable(e.to_string()))
}

fn unreadable(why: String) -> DockerError {
    DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!("an event of the engine's answer to {CALL} cannot be read: {why}"),
    }
}

/// The one line an over-long event gives.
fn exceeded_event(limit: usize) -> DockerError {
    DockerError {
        disposition: Disposition::Unexpected,
        status: None,
        message: format!(
            "one event of the engine's answer to {CALL} exceeded {}; nothing was read past it, the stream is dropped and followed again, and the interval still sweeps. No engine's event comes near that (a few KiB): check what answers at the engine address (a proxy in between?)",
            shown_limit(limit as u64)
        ),
    }
}

/// `GET /events?filters=...` through `transport`, each event decoded as
/// its line ends, within [`EVENT_LIMIT_BYTES`]. Errors as bollard would
/// report them; the stream ends after its first error.
pub(crate) fn subscribe(
    transport: PooledTransport,
    query: String,
) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
    futures_util::stream::once(async move {
        let path = format!("/events?{query}");
        let response = transport
            .get(&path)
            .await
            .map_err(crate::images::docker_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(error_answer(status, response.into_body(), CALL).await);
        }
        Ok(response.into_body())
    })
    .flat_map(|answer| match answer {
        Ok(body) => read(body, EventLines::with_limit(EVENT_LIMIT_BYTES)),
        Err(error) => futures_util::stream::iter([Err(error)]).boxed(),
    })
    .boxed()
}

/// The events of `body`, as its lines end.
fn read(body: Incoming, lines: EventLines) -> BoxStream<'static, Result<EngineEvent, DockerError>> {
    struct Reading {
        body: Option<Incoming>,
        lines: EventLines,
        ready: VecDeque<EventMessage>,
    }
    let reading = Reading {
        body: Some(body),
        lines,
        ready: VecDeque::new(),
    };
    futures_util::stream::unfold(reading, |mut r| async move {
        loop {
            if let Some(event) = r.ready.pop_front() {
                return Some((Ok(crate::images::engine_event(event)), r));
            }
            let body = r.body.as_mut()?;
            let failed = match body.frame().await {
                Some(Ok(frame)) => match frame.data_ref().map(|d| r.lines.feed(d)) {
                    Some(Ok(events)) => {
                        r.ready.extend(events);
                        continue;
                    }
                    Some(Err(error)) => error,
                    None => continue,
                },
                Some(Err(err)) => broke_off(CALL, err),
                None => match r.lines.finish() {
                    Ok(last) => {
                        r.body = None;
                        r.ready.extend(last);
                        continue;
                    }
                    Err(error) => error,
                },
            };
            // The first error ends the stream; the connection is dropped.
            r.body = None;
            r.ready.clear();
            return Some((Err(failed), r));
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_TAG: &str = r#"{"status":"tag","id":"sha256:aa","Type":"image","Action":"tag","Actor":{"ID":"sha256:aa","Attributes":{"cascade.managed":"true","name":"cascade-snapshot-p-w:latest"}},"scope":"local","time":1764000000,"timeNano":1764000000000000000}"#;
    const PODMAN_COMMIT: &str = r#"{"status":"commit","id":"0123","from":"localhost/base:1","Type":"container","Action":"commit","Actor":{"ID":"0123","Attributes":{"image":"localhost/base:1","name":"worker"}},"scope":"local","time":1764000001,"timeNano":1764000001000000000}"#;

    fn actions(events: &[EventMessage]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.action.clone().unwrap_or_default())
            .collect()
    }

    /// Two engines' events, one line each, arrive in every split of the
    /// bytes: each event is given once, in order, as its line ends.
    #[test]
    fn events_are_given_as_their_lines_end_in_any_split() {
        let body = format!("{DOCKER_TAG}\n{PODMAN_COMMIT}\n");
        for cut in 0..=body.len() {
            for second in cut..=body.len() {
                let mut lines = EventLines::with_limit(EVENT_LIMIT_BYTES);
                let mut seen = Vec::new();
                for part in [&body[..cut], &body[cut..second], &body[second..]] {
                    seen.extend(lines.feed(part.as_bytes()).expect("events"));
                }
                assert_eq!(lines.finish().expect("end"), None);
                assert_eq!(actions(&seen), ["tag", "commit"], "cut at {cut}, {second}");
            }
        }
    }

    #[test]
    fn the_events_fields_are_read() {
        let mut lines = EventLines::with_limit(EVENT_LIMIT_BYTES);
        let events = lines.feed(format!("{DOCKER_TAG}\n").as_bytes()).unwrap();
        let event = crate::images::engine_event(events[0].clone());
        assert_eq!(event.action, "tag");
        assert_eq!(event.id, "sha256:aa");
        assert_eq!(event.name, "cascade-snapshot-p-w:latest");
    }

    /// Blank lines are skipped, and a last event without its newline is
    /// given at the end.
    #[test]
    fn blank_lines_and_a_last_line_without_newline() {
        let mut lines = EventLines::with_limit(EVENT_LIMIT_BYTES);
        let mut seen = lines
            .feed(format!("\n\r\n{DOCKER_TAG}\n\n{PODMAN_COMMIT}").as_bytes())
            .unwrap();
        assert_eq!(actions(&seen), ["tag"]);
        seen.extend(lines.finish().unwrap());
        assert_eq!(actions(&seen), ["tag", "commit"]);
    }

    /// A line that never ends is refused once it passes the limit, in one
    /// line naming the call and the limit, and what it held is let go.
    #[test]
    fn an_event_longer_than_the_limit_ends_the_stream_in_one_line() {
        let mut lines = EventLines::with_limit(1024);
        assert!(lines.feed(&[b'{'; 1000]).unwrap().is_empty());
        let error = lines.feed(&[b'x'; 100]).expect_err("over the limit");
        assert_eq!(error.disposition, Disposition::Unexpected);
        assert!(
            error.message.starts_with(
                "one event of the engine's answer to GET /events exceeded 1024 bytes; "
            ),
            "{}",
            error.message
        );
        assert!(!error.message.contains('\n'));
        assert_eq!(lines.pending.capacity(), 0);
        // Events up to the limit pass, however many of them there are.
        let mut lines = EventLines::with_limit(DOCKER_TAG.len() + 1);
        for _ in 0..100 {
            let events = lines.feed(format!("{DOCKER_TAG}\n").as_bytes()).unwrap();
            assert_eq!(actions(&events), ["tag"]);
        }
    }

    #[test]
    fn a_line_that_is_not_an_event_is_an_error_naming_the_call() {
        let mut lines = EventLines::with_limit(EVENT_LIMIT_BYTES);
        let error = lines
            .feed(b"{\"Action\":\"tag\"}}\n")
            .expect_err("not JSON");
        assert_eq!(error.disposition, Disposition::Unexpected);
        assert!(
            error
                .message
                .starts_with("an event of the engine's answer to GET /events cannot be read: "),
            "{}",
            error.message
        );
        // A line is one event: one cut by a newline is not read on.
        let split = DOCKER_TAG.replacen(",\"Type\"", ",\n\"Type\"", 1);
        let mut lines = EventLines::with_limit(EVENT_LIMIT_BYTES);
        assert!(lines.feed(format!("{split}\n").as_bytes()).is_err());
        let mut cut = EventLines::with_limit(EVENT_LIMIT_BYTES);
        assert!(cut.feed(&DOCKER_TAG.as_bytes()[..40]).unwrap().is_empty());
        assert!(cut.finish().is_err());
    }
}
