//! What this crate's messages call the settings they point the reader at.
//!
//! A message that says what to check ("is the engine address right?")
//! names a setting, and each owner of an engine names its settings its own
//! way: an embedder sets `JanitorConfig`'s engines and their TLS files, the
//! binary reads `--docker-host` and `--tls-ca`. The library speaks in its
//! own terms ([`SettingNames::LIBRARY`]); an owner with other names gives
//! them to [`crate::EngineConnection::with_names`],
//! [`crate::EngineClient::with_names`] and [`crate::EngineError::message`],
//! so the words are its own without this crate knowing any command line.

/// The words for each setting a message may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingNames {
    /// What sets the engine's address, as a noun after "invalid":
    /// `invalid {address} `HOST``.
    pub address: &'static str,
    /// The same, as the subject of a question: `is {the_address} a Docker
    /// engine?`.
    pub the_address: &'static str,
    /// Everything that may have set the address: `is {address_sources}
    /// right?`.
    pub address_sources: &'static str,
    /// The CA file the engine's certificate must chain to.
    pub tls_ca: &'static str,
    /// The client certificate the engine may refuse.
    pub tls_cert: &'static str,
}

impl SettingNames {
    /// The library's own terms: an engine's address and its TLS files, as
    /// `cascade-embed`'s `EngineConfig` holds them.
    pub const LIBRARY: SettingNames = SettingNames {
        address: "engine address",
        the_address: "the engine address",
        address_sources: "the engine address",
        tls_ca: "the CA of the engine's TLS files",
        tls_cert: "the client certificate",
    };
}

impl Default for SettingNames {
    fn default() -> SettingNames {
        SettingNames::LIBRARY
    }
}
