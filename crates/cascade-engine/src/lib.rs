//! Everything that talks to a real Docker engine.
//!
//! `cascade-cleanup` decides what a sweep does through its traits
//! ([`DockerImages`](cascade_cleanup::DockerImages),
//! [`EngineEvents`](cascade_cleanup::EngineEvents)); this crate implements
//! them with bollard:
//!
//! - [`EngineAddress`]: an engine's address, checked once (it names an
//!   engine and carries no credentials) and kept as written; [`parse_host`]
//!   and [`Address`]: where it listens; [`has_credentials`], [`redact`] and
//!   [`is_loopback`], the checks every owner of an address applies;
//! - [`connect`]: connects and negotiates the API version at once (one-shot
//!   commands), over a pooled transport that keeps connections alive and
//!   puts the negotiated version in every request's path (`/v1.41/...`);
//! - [`EngineConnection`]: a negotiated connection to one engine, with the
//!   bollard implementations of the cleanup traits (remove with
//!   `force=false, noprune=true`) and the plain engine facts `doctor` prints
//!   ([`EngineConnection::version`], [`EngineConnection::storage`]);
//! - [`EngineClient`]: the daemon's lazily connecting engine, which names its
//!   engine in every error, so an engine that is down never stops the others,
//!   and negotiates again whenever it reconnects;
//! - [`TlsFiles`]: a `tcp://` engine over TLS (rustls, ring), verified as
//!   the docker CLI verifies it;
//! - [`ANSWER_LIMIT_BYTES`] and [`EVENT_LIMIT_BYTES`]: the most of one
//!   answer, and of one event of the event stream, that is ever read;
//! - [`disk`]: whether the engine's data root is visible from here;
//! - [`endpoints`]: [`ENDPOINTS`], every engine endpoint the janitor calls
//!   (`[tag:engine_endpoints]`), which the socket proxy's allow-list is
//!   generated from.
//!
//! Errors are [`EngineError`]: a bad address or unusable TLS files (the
//! caller's usage errors) or an unreachable engine. Messages that say what
//! to check name the settings in the library's terms ("the engine
//! address", "the CA of the engine's TLS files"), never a command-line
//! flag; an owner with names of its own gives them as [`SettingNames`]
//! (the binary names its flags, and maps the errors to its exit codes).

mod address;
#[cfg(test)]
mod adversarial;
mod answer;
mod client;
mod connect;
pub mod disk;
pub mod endpoints;
mod events;
mod images;
pub mod list;
mod names;
#[cfg(test)]
mod tests;
mod tls;

pub use address::{
    Address, BadAddress, DEFAULT_SOCKET, EngineAddress, has_credentials, is_local, is_loopback,
    parse_host, redact,
};
pub use answer::ANSWER_LIMIT_BYTES;
pub use bollard::Docker;
pub use client::EngineClient;
pub use connect::{EngineError, connect, connect_with};
pub use endpoints::{ENDPOINTS, Endpoint, endpoint_of};
pub use events::EVENT_LIMIT_BYTES;
pub use images::{
    EngineConnection, EngineVersion, Storage, docker_error, engine_facts, engine_time,
    event_filters, image_store, listed_image,
};
pub use names::SettingNames;
pub use tls::{ClientCert, TlsFiles};
