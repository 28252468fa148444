//! TLS engines (`tcp://` with a CA, and a client certificate when the
//! engine asks for one; the binary's `--tls-*` or `DOCKER_TLS_VERIFY`): rustls
//! with the ring provider, behind bollard's custom transport like the
//! pooled unix client.
//!
//! As the docker CLI does: the engine's certificate must chain to the given
//! CA (only that CA: no system roots) and name the host of the address (DNS
//! name or IP address, checked against its subject alternative names); TLS
//! 1.2 or 1.3; a client certificate when one is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::BollardRequest;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::connect::{ApiVersion, PooledTransport, pool_builder, versioned};

/// PEM files for a TLS engine. Paths only; the contents are read when the
/// client is built ([`client_config`]) and never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// The janitor's client certificate, when the engine asks for one
    /// (dockerd `--tlsverify` does).
    pub client: Option<ClientCert>,
}

/// A client certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A rustls configuration from `files`, or why not (one line naming the
/// file, never quoting it: a key file's text is a secret).
pub(crate) fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&files.ca, "the CA")? {
        roots.add(cert).map_err(|e| {
            format!(
                "the CA {} is not a usable CA certificate ({e})",
                files.ca.display()
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = certificates(&client.cert, "the client certificate")?;
            // The parser's own errors can quote a line of the file: say
            // only which file and what to fix.
            let key = PrivateKeyDer::from_pem_file(&client.key).map_err(|_| {
                format!(
                    "the private key {} holds no PEM private key; give the key of the client certificate",
                    client.key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "the client certificate {} and key {} do not go together ({e})",
                    client.cert.display(),
                    client.key.display()
                )
            })?
        }
    };
    Ok(Arc::new(config))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let none = || {
        format!(
            "{what} {} holds no PEM certificate; give a PEM file (-----BEGIN CERTIFICATE-----)",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|_| none())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| none())?;
    if certs.is_empty() {
        return Err(none());
    }
    Ok(certs)
}

/// A bollard client for `https://{authority}` over `config`, pooled and
/// versioned like the unix and plain-HTTP clients (a handshake per removal
/// would cost more than the removal).
pub(crate) fn pooled_tls(
    authority: &str,
    config: &Arc<ClientConfig>,
    version: ApiVersion,
) -> PooledTransport {
    // The URI's host is the name verified (DNS name or IP address), as the
    // docker CLI verifies the host of DOCKER_HOST.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(config))
        .https_only()
        .enable_http1()
        .build();
    let client = Arc::new(pool_builder().build(connector));
    PooledTransport::new(
        format!("https://{authority}"),
        move |request: BollardRequest| {
            let client = Arc::clone(&client);
            let request = versioned(request, &version);
            Box::pin(async move {
                let request = request?;
                client
                    .request(request)
                    .await
                    .map_err(|err| bollard::errors::Error::IOError {
                        err: std::io::Error::new(io_kind(&err), chain(&err)),
                    })
            })
        },
    )
}

/// hyper's own message is only "client error (Connect)"; the reason (an
/// unknown issuer, a name mismatch, a refused client certificate) is in its
/// sources.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The kind of the innermost I/O error, so `cascade-classify` sees a
/// refused connection as the transient failure it is.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> std::io::ErrorKind {
    let mut next = Some(error);
    let mut kind = std::io::ErrorKind::Other;
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kind = io.kind();
        }
        next = e.source();
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn good_files_make_a_config_with_or_without_a_client_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&ca_key)
            .expect("ca");
        let client_key = rcgen::KeyPair::generate().expect("key");
        let client = rcgen::CertificateParams::new(vec!["janitor".to_string()])
            .expect("params")
            .self_signed(&client_key)
            .expect("client");
        let files = TlsFiles {
            ca: write(dir.path(), "ca.pem", &ca.pem()),
            client: Some(ClientCert {
                cert: write(dir.path(), "cert.pem", &client.pem()),
                key: write(dir.path(), "key.pem", &client_key.serialize_pem()),
            }),
        };
        let config = client_config(&files).expect("config");
        assert!(config.client_auth_cert_resolver.has_certs());
        let without = client_config(&TlsFiles {
            client: None,
            ..files
        })
        .expect("config");
        assert!(!without.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_bad_file_is_named_and_a_key_is_never_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END NOT A KEY-----\n";
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&ca_key)
            .expect("ca");
        let ca_path = write(dir.path(), "ca.pem", &ca.pem());
        let key_path = write(dir.path(), "key.pem", secret);
        let err = client_config(&TlsFiles {
            ca: ca_path.clone(),
            client: Some(ClientCert {
                cert: ca_path.clone(),
                key: key_path.clone(),
            }),
        })
        .expect_err("no key");
        assert!(err.contains(&key_path.display().to_string()), "{err}");
        assert!(!err.contains("TOPSECRET") && !err.contains('\n'), "{err}");

        let not_pem = write(dir.path(), "junk.pem", "hello\n");
        let err = client_config(&TlsFiles {
            ca: not_pem.clone(),
            client: None,
        })
        .expect_err("no CA");
        assert_eq!(
            err,
            format!(
                "the CA {} holds no PEM certificate; give a PEM file (-----BEGIN CERTIFICATE-----)",
                not_pem.display()
            )
        );
    }
}
