//! A TLS-terminating proxy in front of a nested engine's unix socket, the
//! way `dockerd --tlsverify` serves: bound to 127.0.0.1, its certificate
//! signed by a CA made here, client certificates required. Certificates are
//! generated per test with rcgen; nothing leaves the machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinHandle;

/// A CA, and certificates it signed, written as PEM files in a folder.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_der: CertificateDer<'static>,
}

/// A certificate and its key, as PEM files and as rustls wants them.
#[derive(Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Pki {
    /// A new CA; its certificate is `<dir>/<name>-ca.pem` ([`Pki::ca_pem`]).
    pub fn new(name: &str) -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("pki").tempdir_in("/tmp")?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key)?;
        std::fs::write(dir.path().join("ca.pem"), cert.pem())?;
        let ca_der = cert.der().clone();
        let ca = rcgen::Issuer::new(params, key);
        Ok(Pki { dir, ca, ca_der })
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by
    /// this CA, written as `<file>.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str]) -> Result<Issued> {
        let key = rcgen::KeyPair::generate()?;
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let cert = params.signed_by(&key, &self.ca)?;
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok(Issued {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

/// Terminates TLS on 127.0.0.1 and relays the bytes to `upstream` (a unix
/// socket), requiring a client certificate signed by the CA.
#[derive(Debug)]
pub struct TlsProxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(upstream: &Path, pki: &Pki, server: &Issued) -> Result<TlsProxy> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.clone())),
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let upstream = upstream.to_path_buf();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A failed handshake (wrong CA, no client certificate)
                    // just closes this connection, as dockerd does.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut engine) = UnixStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
                });
            }
        });
        Ok(TlsProxy { port, task })
    }

    /// `tcp://127.0.0.1:PORT`, for `--docker-host`.
    pub fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
