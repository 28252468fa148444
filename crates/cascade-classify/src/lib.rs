//! What a failed Docker API call means for the janitor.
//!
//! Removing an image can fail for reasons that are perfectly normal on a busy
//! host (a container still uses it, someone else removed it first) and for
//! reasons an operator must hear about. This crate maps a failure to a
//! [`Disposition`] and everything that follows from it: how loudly to log,
//! whether to report it to Sentry, and whether trying again makes sense.
//!
//! It is pure: no I/O, no global state. It reads bollard's error type through
//! a wildcard match only, so a new bollard variant lands in
//! [`Disposition::Unexpected`] instead of breaking the build.

use std::fmt;

/// What a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Disposition {
    /// 409: a container uses the image, or it has dependent children. Normal.
    InUse,
    /// 404: the image is already gone (someone else removed it). Normal.
    Gone,
    /// The engine did not answer in time, refused the connection, or said it
    /// is temporarily unable to serve (408, 429, 502, 503, 504).
    Transient,
    /// Anything else: a 500, a 400, an undecodable answer.
    Unexpected,
}

/// How loudly a failure is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Debug,
    Warn,
}

/// Whether the same call is worth making again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing to retry: the outcome is final (gone) or someone else's
    /// decision (in use); the next pass looks again anyway.
    Pointless,
    /// Likely to succeed later; the next pass will try again.
    NextPass,
    /// Will probably fail the same way; a human should look.
    AfterInvestigation,
}

impl Disposition {
    /// All dispositions, for tables and exhaustive tests.
    pub const ALL: [Disposition; 4] = [
        Disposition::InUse,
        Disposition::Gone,
        Disposition::Transient,
        Disposition::Unexpected,
    ];

    /// Log level of a failed removal with this disposition.
    pub fn severity(self) -> Severity {
        match self {
            Disposition::InUse | Disposition::Gone => Severity::Debug,
            Disposition::Transient | Disposition::Unexpected => Severity::Warn,
        }
    }

    /// Whether a failed removal is reported to Sentry. In-use and gone are
    /// the everyday outcomes of a shared host and never reported.
    pub fn is_reported(self) -> bool {
        matches!(self, Disposition::Transient | Disposition::Unexpected)
    }

    /// Whether it counts as a failure of the sweep (exit code 1 for `prune`),
    /// as opposed to an image that was simply skipped.
    pub fn is_failure(self) -> bool {
        self.is_reported()
    }

    pub fn retry(self) -> Retry {
        match self {
            Disposition::InUse | Disposition::Gone => Retry::Pointless,
            Disposition::Transient => Retry::NextPass,
            Disposition::Unexpected => Retry::AfterInvestigation,
        }
    }

    /// A stable snake_case name, for logs, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::InUse => "in_use",
            Disposition::Gone => "gone",
            Disposition::Transient => "transient",
            Disposition::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an HTTP status code the engine answered with.
pub fn classify_status(status: u16) -> Disposition {
    match status {
        409 => Disposition::InUse,
        404 => Disposition::Gone,
        408 | 429 | 502 | 503 | 504 => Disposition::Transient,
        _ => Disposition::Unexpected,
    }
}

/// Classifies a bollard error. Never exhaustive over bollard's enum: new
/// variants are [`Disposition::Unexpected`] until someone decides otherwise.
pub fn classify(error: &bollard::errors::Error) -> Disposition {
    use bollard::errors::Error;
    match error {
        Error::DockerResponseServerError { status_code, .. } => classify_status(*status_code),
        Error::RequestTimeoutError => Disposition::Transient,
        Error::IOError { err } => classify_io(err.kind()),
        Error::HyperResponseError { .. } | Error::HyperLegacyError { .. } => Disposition::Transient,
        Error::SocketNotFoundError(_) => Disposition::Transient,
        _ => Disposition::Unexpected,
    }
}

/// Connection-level I/O failures are the engine being away or restarting.
pub fn classify_io(kind: std::io::ErrorKind) -> Disposition {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
        | TimedOut | UnexpectedEof | NotFound | Interrupted | WouldBlock => Disposition::Transient,
        _ => Disposition::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_table() {
        let table = [
            (409, Disposition::InUse),
            (404, Disposition::Gone),
            (408, Disposition::Transient),
            (429, Disposition::Transient),
            (502, Disposition::Transient),
            (503, Disposition::Transient),
            (504, Disposition::Transient),
            (500, Disposition::Unexpected),
            (400, Disposition::Unexpected),
            (401, Disposition::Unexpected),
            (403, Disposition::Unexpected),
            (200, Disposition::Unexpected),
        ];
        for (status, want) in table {
            assert_eq!(classify_status(status), want, "{status}");
        }
    }

    #[test]
    fn consequences_table() {
        use Disposition::*;
        let table = [
            (InUse, Severity::Debug, false, Retry::Pointless),
            (Gone, Severity::Debug, false, Retry::Pointless),
            (Transient, Severity::Warn, true, Retry::NextPass),
            (Unexpected, Severity::Warn, true, Retry::AfterInvestigation),
        ];
        assert_eq!(table.len(), Disposition::ALL.len());
        for (d, sev, reported, retry) in table {
            assert_eq!(d.severity(), sev, "{d}");
            assert_eq!(d.is_reported(), reported, "{d}");
            assert_eq!(d.is_failure(), reported, "{d}");
            assert_eq!(d.retry(), retry, "{d}");
        }
    }

    #[test]
    fn bollard_errors() {
        use bollard::errors::Error;
        let server = |status_code| Error::DockerResponseServerError {
            status_code,
            message: "x".to_string(),
        };
        assert_eq!(classify(&server(409)), Disposition::InUse);
        assert_eq!(classify(&server(404)), Disposition::Gone);
        assert_eq!(classify(&server(500)), Disposition::Unexpected);
        assert_eq!(
            classify(&Error::RequestTimeoutError),
            Disposition::Transient
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&Error::IOError { err: refused }),
            Disposition::Transient
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            classify(&Error::IOError { err: denied }),
            Disposition::Unexpected
        );
        let json = serde_json_error();
        assert_eq!(classify(&json), Disposition::Unexpected);
    }

    fn serde_json_error() -> bollard::errors::Error {
        bollard::errors::Error::DockerStreamError {
            error: "bad".into(),
        }
    }

    proptest! {
        /// Every status code maps to exactly one disposition, and only 409 and
        /// 404 are the quiet ones.
        #[test]
        fn every_status_code(status in 0u16..=u16::MAX) {
            let d = classify_status(status);
            prop_assert_eq!(d == Disposition::InUse, status == 409);
            prop_assert_eq!(d == Disposition::Gone, status == 404);
            prop_assert_eq!(d.is_reported(), status != 409 && status != 404);
            let server = bollard::errors::Error::DockerResponseServerError { status_code: status, message: String::new() };
            prop_assert_eq!(classify(&server), d);
        }
    }
}
