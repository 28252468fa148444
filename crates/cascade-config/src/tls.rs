//! How each engine is reached: unix socket, TLS, or plain TCP (loopback or
//! `--allow-plain-tcp` only).
//!
//! TLS files come from `--tls-ca`, `--tls-cert`, `--tls-key` (flag, variable
//! or file), else, as the docker CLI does, from `DOCKER_TLS_VERIFY` (any
//! non-empty value) with the folder `DOCKER_CERT_PATH` (default
//! `$DOCKER_CONFIG`, then `~/.docker`) holding `ca.pem`, `cert.pem` and
//! `key.pem`; a missing `cert.pem`/`key.pem` there means no client
//! certificate, as in the CLI. An explicit option wins over the folder, file
//! by file. The engine's certificate is always verified: there is no
//! `DOCKER_TLS`-without-verify mode, and asking for one is refused.
//!
//! Only paths are resolved here (each must be a readable file); reading and
//! using them is the engine crate's (`cascade_engine::TlsFiles`).

use std::path::{Path, PathBuf};

use crate::address::{Address, EngineAddress, is_loopback};
use crate::env::Environment;
use crate::opt::Opt;
use crate::{ConfigError, Source};

/// How the settings reach one engine: unix socket, plain TCP, or TLS with
/// its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineTransport {
    /// `unix://`: the socket's file permissions are the authentication.
    Unix,
    /// `tcp://` without TLS: loopback, or allowed by `--allow-plain-tcp`.
    PlainTcp,
    /// `tcp://` over TLS, verifying the engine against `ca`.
    Tls(TlsFiles),
}

/// The TLS files are `cascade-engine`'s type: it reads them; this crate
/// only resolves and checks the paths.
pub use cascade_engine::{ClientCert, TlsFiles};

impl EngineTransport {
    /// The TLS files, for a TLS engine.
    pub fn tls(&self) -> Option<&TlsFiles> {
        match self {
            EngineTransport::Tls(files) => Some(files),
            EngineTransport::Unix | EngineTransport::PlainTcp => None,
        }
    }
}

/// One engine: the address as given, checked, and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// The address as given (`address.as_str()`).
    pub host: String,
    /// The same address, checked: what the engine crate and
    /// `cascade-embed`'s `EngineConfig` take.
    pub address: EngineAddress,
    pub transport: EngineTransport,
}

/// A `--tls-*` value as given, and where from.
#[derive(Debug, Clone)]
pub struct Given {
    pub key: Opt,
    pub path: PathBuf,
    pub source: Source,
}

impl Given {
    fn culprit(&self) -> String {
        self.source.culprit(self.key)
    }
}

/// The resolved TLS files and where each came from (for `--print-config`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub files: TlsFiles,
    pub ca: Source,
    pub client: Option<(Source, Source)>,
}

pub const TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
pub const CERT_PATH: &str = "DOCKER_CERT_PATH";
const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
const DOCKER_TLS: &str = "DOCKER_TLS";

/// The folder of `ca.pem`, `cert.pem`, `key.pem` when `DOCKER_TLS_VERIFY`
/// asks for TLS, and the variable to name for it.
fn cert_dir(env: &Environment) -> Result<Option<(PathBuf, String)>, ConfigError> {
    if env.non_empty(TLS_VERIFY).is_none() {
        return Ok(None);
    }
    if let Some(dir) = env.non_empty(CERT_PATH) {
        return Ok(Some((PathBuf::from(dir), CERT_PATH.to_string())));
    }
    let config_dir = match (env.non_empty(DOCKER_CONFIG), env.non_empty("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => Path::new(home).join(".docker"),
        (None, None) => {
            return Err(ConfigError::new(format!(
                "{TLS_VERIFY} is set, but neither {CERT_PATH} nor HOME is: set {CERT_PATH} to the folder holding ca.pem, cert.pem and key.pem"
            )));
        }
    };
    Ok(Some((
        config_dir,
        format!("{TLS_VERIFY} (without {CERT_PATH})"),
    )))
}

/// Refuses a path that is not a readable file, naming who gave it.
fn readable(path: &Path, culprit: &str) -> Result<(), ConfigError> {
    let why = match std::fs::File::open(path) {
        Ok(file) => match file.metadata() {
            Ok(meta) if meta.is_file() => return Ok(()),
            Ok(_) => "not a file".to_string(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    Err(ConfigError::new(format!(
        "{culprit}: cannot read {} ({why}); give the path of a readable PEM file",
        path.display()
    )))
}

/// The TLS files every `tcp://` engine uses, or `None` for plain TCP. Only
/// called when some engine is `tcp://`: a unix socket needs none of this.
pub fn resolve(
    ca: Option<Given>,
    cert: Option<Given>,
    key: Option<Given>,
    env: &Environment,
) -> Result<Option<Resolved>, ConfigError> {
    let dir = cert_dir(env)?;
    if dir.is_none() && ca.is_none() && cert.is_none() && key.is_none() {
        if env.non_empty(DOCKER_TLS).is_some() {
            return Err(ConfigError::new(format!(
                "{DOCKER_TLS} asks for TLS without verifying the engine's certificate, which cascade-janitor never does: set {TLS_VERIFY}=1 (with {CERT_PATH}) or --tls-ca, or unset {DOCKER_TLS}"
            )));
        }
        return Ok(None);
    }
    let from_dir = |name: &str| {
        dir.as_ref()
            .map(|(d, var)| (d.join(name), Source::Env(var.clone())))
    };
    let (ca_path, ca_source) = match (&ca, from_dir("ca.pem")) {
        (Some(given), _) => (given.path.clone(), given.source.clone()),
        (None, Some(found)) => found,
        (None, None) => {
            let given = cert.as_ref().or(key.as_ref());
            let culprit = given.map(Given::culprit).unwrap_or_default();
            return Err(ConfigError::new(format!(
                "{culprit}: TLS needs the CA that signed the engine's certificate: pass --tls-ca (or set {TLS_VERIFY} and {CERT_PATH})"
            )));
        }
    };
    readable(&ca_path, &ca_source.culprit(Opt::TlsCa))?;
    // From the folder, a missing cert.pem or key.pem means none (as in the
    // docker CLI); an explicit path must exist.
    let pick = |given: &Option<Given>, name: &str| -> Option<(PathBuf, Source)> {
        match given {
            Some(g) => Some((g.path.clone(), g.source.clone())),
            None => from_dir(name).filter(|(path, _)| path.exists()),
        }
    };
    let client = match (pick(&cert, "cert.pem"), pick(&key, "key.pem")) {
        (Some((cert_path, cert_source)), Some((key_path, key_source))) => {
            readable(&cert_path, &cert_source.culprit(Opt::TlsCert))?;
            readable(&key_path, &key_source.culprit(Opt::TlsKey))?;
            Some((
                ClientCert {
                    cert: cert_path,
                    key: key_path,
                },
                (cert_source, key_source),
            ))
        }
        (Some((_, source)), None) => {
            return Err(ConfigError::new(format!(
                "{}: a client certificate needs its private key: pass --tls-key too",
                source.culprit(Opt::TlsCert)
            )));
        }
        (None, Some((_, source))) => {
            return Err(ConfigError::new(format!(
                "{}: a private key needs its client certificate: pass --tls-cert too",
                source.culprit(Opt::TlsKey)
            )));
        }
        (None, None) => None,
    };
    let (client, client_sources) = match client {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    Ok(Some(Resolved {
        files: TlsFiles {
            ca: ca_path,
            client,
        },
        ca: ca_source,
        client: client_sources,
    }))
}

/// How `host` is reached, given the TLS files (if any). Refuses plain TCP
/// to an engine off this host unless `allow_plain_tcp`.
pub fn transport(
    host: &str,
    address: &Address,
    tls: Option<&TlsFiles>,
    allow_plain_tcp: bool,
    culprit: &str,
) -> Result<EngineTransport, ConfigError> {
    match (address, tls) {
        (Address::Unix(_), _) => Ok(EngineTransport::Unix),
        (Address::Http(_), Some(files)) => Ok(EngineTransport::Tls(files.clone())),
        (Address::Http(_), None) if allow_plain_tcp || is_loopback(address) => {
            Ok(EngineTransport::PlainTcp)
        }
        (Address::Http(_), None) => Err(ConfigError::new(format!(
            "{culprit}: `{host}` is plain tcp:// to an engine off this host, so its API would travel unencrypted and unauthenticated; configure TLS (--tls-ca with --tls-cert and --tls-key, or DOCKER_TLS_VERIFY and DOCKER_CERT_PATH) or pass --allow-plain-tcp"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::parse_host;

    struct Certs {
        dir: tempfile::TempDir,
    }

    impl Certs {
        /// A folder with the given PEM files (their content does not matter here).
        fn with(names: &[&str]) -> Certs {
            let dir = tempfile::tempdir().expect("tempdir");
            for name in names {
                std::fs::write(dir.path().join(name), "-----BEGIN CERTIFICATE-----\n")
                    .expect("write");
            }
            Certs { dir }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn dir(&self) -> String {
            self.dir.path().display().to_string()
        }
    }

    fn flag(key: Opt, path: PathBuf) -> Option<Given> {
        Some(Given {
            key,
            path,
            source: Source::Flag(key.flag()),
        })
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    #[test]
    fn nothing_asked_is_plain() {
        let r = resolve(None, None, None, &env(&[("DOCKER_CERT_PATH", "/x")])).expect("ok");
        assert!(
            r.is_none(),
            "DOCKER_CERT_PATH alone turns nothing on, as in the CLI"
        );
        let r = resolve(None, None, None, &env(&[("DOCKER_TLS_VERIFY", "")])).expect("ok");
        assert!(r.is_none(), "an empty DOCKER_TLS_VERIFY is unset");
    }

    #[test]
    fn docker_tls_verify_reads_the_cert_path_folder() {
        let certs = Certs::with(&["ca.pem", "cert.pem", "key.pem"]);
        let e = env(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &certs.dir()),
        ]);
        let r = resolve(None, None, None, &e).expect("ok").expect("tls");
        assert_eq!(
            r.files,
            TlsFiles {
                ca: certs.path("ca.pem"),
                client: Some(ClientCert {
                    cert: certs.path("cert.pem"),
                    key: certs.path("key.pem"),
                }),
            }
        );
        assert_eq!(r.ca, Source::Env("DOCKER_CERT_PATH".into()));
    }

    #[test]
    fn without_cert_path_the_folder_is_docker_config_then_home_docker() {
        let home = Certs::with(&[]);
        std::fs::create_dir(home.path(".docker")).expect("mkdir");
        std::fs::write(home.path(".docker").join("ca.pem"), "x").expect("write");
        let e = env(&[("DOCKER_TLS_VERIFY", "1"), ("HOME", &home.dir())]);
        let r = resolve(None, None, None, &e).expect("ok").expect("tls");
        assert_eq!(r.files.ca, home.path(".docker").join("ca.pem"));
        assert_eq!(
            r.files.client, None,
            "no cert.pem/key.pem there: no client cert"
        );

        let config = Certs::with(&["ca.pem"]);
        let e = env(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("HOME", &home.dir()),
            ("DOCKER_CONFIG", &config.dir()),
        ]);
        let r = resolve(None, None, None, &e).expect("ok").expect("tls");
        assert_eq!(r.files.ca, config.path("ca.pem"));

        let err =
            resolve(None, None, None, &env(&[("DOCKER_TLS_VERIFY", "1")])).expect_err("no HOME");
        assert!(err.message.contains("DOCKER_CERT_PATH"), "{}", err.message);
    }

    #[test]
    fn explicit_options_win_file_by_file() {
        let folder = Certs::with(&["ca.pem", "cert.pem", "key.pem"]);
        let mine = Certs::with(&["my-ca.pem", "my-cert.pem"]);
        let e = env(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &folder.dir()),
        ]);
        let r = resolve(
            flag(Opt::TlsCa, mine.path("my-ca.pem")),
            flag(Opt::TlsCert, mine.path("my-cert.pem")),
            None,
            &e,
        )
        .expect("ok")
        .expect("tls");
        assert_eq!(r.files.ca, mine.path("my-ca.pem"));
        let client = r.files.client.expect("client");
        assert_eq!(client.cert, mine.path("my-cert.pem"));
        assert_eq!(client.key, folder.path("key.pem"));
        assert_eq!(r.ca, Source::Flag("--tls-ca".into()));
    }

    #[test]
    fn explicit_options_alone_turn_tls_on() {
        let mine = Certs::with(&["ca.pem", "cert.pem", "key.pem"]);
        let r = resolve(
            flag(Opt::TlsCa, mine.path("ca.pem")),
            flag(Opt::TlsCert, mine.path("cert.pem")),
            flag(Opt::TlsKey, mine.path("key.pem")),
            &env(&[]),
        )
        .expect("ok")
        .expect("tls");
        assert!(r.files.client.is_some());
        let r = resolve(flag(Opt::TlsCa, mine.path("ca.pem")), None, None, &env(&[]))
            .expect("ok")
            .expect("tls");
        assert_eq!(
            r.files.client, None,
            "a CA alone: TLS without a client cert"
        );
    }

    #[test]
    fn missing_or_unreadable_files_name_the_option_and_path() {
        let certs = Certs::with(&["ca.pem"]);
        let missing = certs.path("absent.pem");
        let err = resolve(flag(Opt::TlsCa, missing.clone()), None, None, &env(&[]))
            .expect_err("missing ca");
        assert!(
            err.message.starts_with("--tls-ca: cannot read ")
                && err.message.contains(&missing.display().to_string()),
            "{}",
            err.message
        );
        let err = resolve(
            flag(Opt::TlsCa, certs.dir.path().to_path_buf()),
            None,
            None,
            &env(&[]),
        )
        .expect_err("a folder");
        assert!(err.message.contains("not a file"), "{}", err.message);
        let err = resolve(
            flag(Opt::TlsCa, certs.path("ca.pem")),
            flag(Opt::TlsCert, missing.clone()),
            flag(Opt::TlsKey, certs.path("ca.pem")),
            &env(&[]),
        )
        .expect_err("missing cert");
        assert!(
            err.message.starts_with("--tls-cert: cannot read"),
            "{}",
            err.message
        );

        let empty = Certs::with(&[]);
        let e = env(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &empty.dir()),
        ]);
        let err = resolve(None, None, None, &e).expect_err("no ca.pem");
        assert!(
            err.message.starts_with("DOCKER_CERT_PATH: cannot read ")
                && err
                    .message
                    .contains(&empty.path("ca.pem").display().to_string()),
            "{}",
            err.message
        );
        let env_given = Some(Given {
            key: Opt::TlsCa,
            path: missing,
            source: Source::Env("CASCADE_JANITOR_TLS_CA".into()),
        });
        let err = resolve(env_given, None, None, &env(&[])).expect_err("env");
        assert!(
            err.message
                .starts_with("CASCADE_JANITOR_TLS_CA: cannot read"),
            "{}",
            err.message
        );
    }

    #[test]
    fn half_a_client_identity_or_no_ca_is_refused() {
        let certs = Certs::with(&["ca.pem", "cert.pem", "key.pem"]);
        let err = resolve(
            flag(Opt::TlsCa, certs.path("ca.pem")),
            flag(Opt::TlsCert, certs.path("cert.pem")),
            None,
            &env(&[]),
        )
        .expect_err("cert without key");
        assert!(
            err.message
                .contains("--tls-cert: a client certificate needs its private key"),
            "{}",
            err.message
        );
        let err = resolve(
            flag(Opt::TlsCa, certs.path("ca.pem")),
            None,
            flag(Opt::TlsKey, certs.path("key.pem")),
            &env(&[]),
        )
        .expect_err("key without cert");
        assert!(
            err.message.contains("--tls-key: a private key needs"),
            "{}",
            err.message
        );
        let err = resolve(
            None,
            flag(Opt::TlsCert, certs.path("cert.pem")),
            flag(Opt::TlsKey, certs.path("key.pem")),
            &env(&[]),
        )
        .expect_err("no ca");
        assert!(
            err.message.contains("--tls-cert: TLS needs the CA"),
            "{}",
            err.message
        );
    }

    #[test]
    fn tls_without_verification_is_refused() {
        let err = resolve(None, None, None, &env(&[("DOCKER_TLS", "1")])).expect_err("DOCKER_TLS");
        assert!(
            err.message.contains("set DOCKER_TLS_VERIFY=1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn plain_tcp_only_to_loopback_unless_allowed() {
        let t = |host: &str, tls: Option<&TlsFiles>, allow: bool| {
            transport(
                host,
                &parse_host(host).expect(host),
                tls,
                allow,
                "--docker-host",
            )
        };
        assert_eq!(
            t("unix:///var/run/docker.sock", None, false).expect("unix"),
            EngineTransport::Unix
        );
        for host in [
            "tcp://127.0.0.1:2375",
            "tcp://[::1]:2375",
            "tcp://localhost:2375",
        ] {
            assert_eq!(t(host, None, false).expect(host), EngineTransport::PlainTcp);
        }
        let err = t("tcp://10.0.0.5:2375", None, false).expect_err("remote plain");
        assert!(
            err.message
                .starts_with("--docker-host: `tcp://10.0.0.5:2375` is plain tcp://")
                && err.message.contains("--allow-plain-tcp"),
            "{}",
            err.message
        );
        assert_eq!(
            t("tcp://10.0.0.5:2375", None, true).expect("allowed"),
            EngineTransport::PlainTcp
        );
        let files = TlsFiles {
            ca: PathBuf::from("/ca.pem"),
            client: None,
        };
        assert_eq!(
            t("tcp://10.0.0.5:2376", Some(&files), false).expect("tls"),
            EngineTransport::Tls(files.clone())
        );
        assert_eq!(
            t("tcp://127.0.0.1:2376", Some(&files), false).expect("tls on loopback too"),
            EngineTransport::Tls(files.clone())
        );
        assert_eq!(
            t("unix:///s.sock", Some(&files), false).expect("unix"),
            EngineTransport::Unix
        );
    }
}
