use std::collections::BTreeMap;

use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

struct Around {
    vars: BTreeMap<String, String>,
    home: PathBuf,
}

impl Surroundings for Around {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn home(&self) -> Option<PathBuf> {
        Some(self.home.clone())
    }
}

/// A home with `~/.docker` holding contexts as `docker context create`
/// writes them, and `currentContext` set to `current`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(current: Option<&str>) -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let docker = dir.path().join(".docker");
        std::fs::create_dir_all(&docker).expect("mkdir");
        if let Some(current) = current {
            std::fs::write(
                docker.join("config.json"),
                format!(r#"{{"auths":{{}},"currentContext":"{current}"}}"#),
            )
            .expect("config.json");
        }
        Home { dir }
    }

    fn context(&self, name: &str, host: &str, skip_verify: bool, tls: &[&str]) -> &Home {
        let id = context_id(name);
        let meta = self.docker().join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":{skip_verify}}}}}}}"#
            ),
        )
        .expect("meta.json");
        let tls_dir = self.docker().join("contexts/tls").join(&id).join("docker");
        for file in tls {
            std::fs::create_dir_all(&tls_dir).expect("mkdir");
            std::fs::write(tls_dir.join(file), "PEM").expect("pem");
        }
        self
    }

    fn docker(&self) -> PathBuf {
        self.dir.path().join(".docker")
    }

    fn around(&self, vars: &[(&str, &str)]) -> Around {
        Around {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: self.dir.path().to_path_buf(),
        }
    }
}

fn options(list: &[&str]) -> GlobalOptions {
    let mut all = args(list);
    all.push(OsString::from(PLUGIN_NAME));
    match parse(&all).expect("parses") {
        Invocation::Command { options, .. } => options,
        other => panic!("not a command: {other:?}"),
    }
}

fn host_of(home: &Home, list: &[&str], vars: &[(&str, &str)]) -> (Origin, String) {
    let endpoint = resolve(&options(list), &home.around(vars)).expect("resolves");
    (endpoint.origin, endpoint.host)
}

#[test]
fn the_metadata_is_what_the_docker_cli_requires() {
    let value: serde_json::Value = serde_json::from_str(&metadata("1.2.3")).expect("json");
    assert_eq!(value["SchemaVersion"], "0.1.0");
    assert_eq!(value["Vendor"], "cascade");
    assert_eq!(value["Version"], "1.2.3");
    assert!(
        value["ShortDescription"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}

#[test]
fn only_the_plugin_file_name_is_plugin_mode() {
    assert!(invoked_as_plugin(OsStr::new(
        "/root/.docker/cli-plugins/docker-janitor"
    )));
    assert!(invoked_as_plugin(OsStr::new("docker-janitor")));
    assert!(!invoked_as_plugin(OsStr::new("/usr/bin/cascade-janitor")));
    assert!(!invoked_as_plugin(OsStr::new("docker-janitor-old")));
}

#[test]
fn global_options_come_before_the_plugin_name_and_the_rest_is_the_janitors() {
    assert_eq!(
        parse(&args(&[METADATA_COMMAND])).expect("parses"),
        Invocation::Metadata
    );
    let parsed = parse(&args(&[
        "--context",
        "nested",
        "--config=/cfg",
        "-D",
        "janitor",
        "prune",
        "--dry-run",
        "--context",
    ]))
    .expect("parses");
    assert_eq!(
        parsed,
        Invocation::Command {
            options: GlobalOptions {
                config: Some(PathBuf::from("/cfg")),
                context: Some("nested".into()),
                debug: true,
                ..GlobalOptions::default()
            },
            args: args(&["prune", "--dry-run", "--context"]),
        }
    );
    let parsed = parse(&args(&[
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        "/ca.pem",
        "janitor",
    ]))
    .expect("parses");
    let Invocation::Command {
        options,
        args: rest,
    } = parsed
    else {
        panic!("not a command")
    };
    assert_eq!(options.hosts, vec!["tcp://127.0.0.1:2376".to_string()]);
    assert!(options.tls_verify);
    assert_eq!(options.tls_ca, Some(PathBuf::from("/ca.pem")));
    assert!(rest.is_empty());
}

#[test]
fn arguments_the_docker_cli_never_sends_are_refused_in_one_line() {
    assert_eq!(
        parse(&args(&["prune", "--dry-run"])),
        Err(PluginError::NotInvokedByDocker)
    );
    assert_eq!(parse(&args(&[])), Err(PluginError::NotInvokedByDocker));
    assert_eq!(
        parse(&args(&["--context"])),
        Err(PluginError::MissingValue("--context".into()))
    );
    assert_eq!(
        parse(&args(&["--dry-run", "janitor"])),
        Err(PluginError::UnknownOption("--dry-run".into()))
    );
}

#[test]
fn a_context_is_stored_under_the_sha256_of_its_name() {
    // The Docker CLI's store layout (docker/cli `cli/context/store`).
    assert_eq!(
        context_id("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_engine_is_chosen_in_the_docker_clis_order() {
    let home = Home::new(Some("current"));
    home.context("current", "unix:///current.sock", false, &[])
        .context("other", "unix:///other.sock", false, &[]);
    let current = Origin::Context("current".into());
    let other = Origin::Context("other".into());

    assert_eq!(
        host_of(&home, &[], &[]),
        (current, "unix:///current.sock".into())
    );
    assert_eq!(
        host_of(&home, &[], &[("DOCKER_CONTEXT", "other")]),
        (other.clone(), "unix:///other.sock".into())
    );
    let env_host = [
        ("DOCKER_HOST", "unix:///env.sock"),
        ("DOCKER_CONTEXT", "other"),
    ];
    assert_eq!(
        host_of(&home, &[], &env_host),
        (Origin::DockerHost, "unix:///env.sock".into())
    );
    assert_eq!(
        host_of(&home, &["--context", "other"], &env_host),
        (other, "unix:///other.sock".into())
    );
    assert_eq!(
        host_of(&home, &["-H", "unix:///flag.sock"], &env_host),
        (Origin::HostOption, "unix:///flag.sock".into())
    );
    assert_eq!(
        host_of(&home, &["--context", "default"], &[]),
        (Origin::Default, DEFAULT_HOST.into())
    );
    assert_eq!(
        resolve(
            &options(&["--context", "other", "-H", "unix:///x.sock"]),
            &home.around(&[])
        ),
        Err(PluginError::HostAndContext)
    );
}

#[test]
fn without_a_config_file_it_is_the_default_engine() {
    let home = Home::new(None);
    assert_eq!(
        host_of(&home, &[], &[]),
        (Origin::Default, DEFAULT_HOST.into())
    );
    // DOCKER_CONFIG moves the whole directory, as for the CLI.
    let elsewhere = Home::new(Some("far"));
    elsewhere.context("far", "unix:///far.sock", false, &[]);
    let dir = elsewhere.docker().display().to_string();
    assert_eq!(
        host_of(&home, &[], &[("DOCKER_CONFIG", &dir)]),
        (Origin::Context("far".into()), "unix:///far.sock".into())
    );
    assert_eq!(
        host_of(&home, &["--config", &dir], &[]),
        (Origin::Context("far".into()), "unix:///far.sock".into())
    );
}

#[test]
fn a_contexts_tls_files_become_the_janitors_tls_settings() {
    let home = Home::new(Some("remote"));
    home.context(
        "remote",
        "tcp://127.0.0.1:2376",
        false,
        &["ca.pem", "cert.pem", "key.pem"],
    );
    let endpoint = resolve(&options(&[]), &home.around(&[])).expect("resolves");
    let tls_dir = home
        .docker()
        .join("contexts/tls")
        .join(context_id("remote"))
        .join("docker");
    let expected: Vec<(String, String)> = [
        ("CASCADE_JANITOR_DOCKER_HOST", "tcp://127.0.0.1:2376".into()),
        (
            "CASCADE_JANITOR_TLS_CA",
            tls_dir.join("ca.pem").display().to_string(),
        ),
        (
            "CASCADE_JANITOR_TLS_CERT",
            tls_dir.join("cert.pem").display().to_string(),
        ),
        (
            "CASCADE_JANITOR_TLS_KEY",
            tls_dir.join("key.pem").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(endpoint.variables(), expected);
}

#[test]
fn contexts_the_janitor_cannot_honour_are_refused_by_name() {
    let home = Home::new(None);
    home.context("ssh", "ssh://me@host", false, &[]).context(
        "insecure",
        "tcp://127.0.0.1:2376",
        true,
        &[],
    );
    let err = |list: &[&str]| {
        resolve(&options(list), &home.around(&[]))
            .expect_err("refused")
            .to_string()
    };
    assert_eq!(
        err(&["--context", "ssh"]),
        "Docker context \"ssh\" names the engine ssh://me@host, which the janitor cannot reach: it speaks to unix:// and tcp:// engines only (ssh:// and npipe:// are not supported)"
    );
    assert!(err(&["--context", "insecure"]).starts_with(
        "Docker context \"insecure\" turns off TLS verification, which the janitor never does"
    ));
    assert!(
        err(&["--context", "missing"]).starts_with("Docker context \"missing\" does not exist")
    );
    assert!(err(&["-H", "tcp://127.0.0.1:2375", "--tls"]).starts_with("--tls without --tlsverify"));
}

#[test]
fn the_docker_clis_log_options_become_a_log_level() {
    let home = Home::new(None);
    let level = |list: &[&str]| {
        resolve(&options(list), &home.around(&[]))
            .expect("resolves")
            .log_level
    };
    assert_eq!(level(&["-D"]), Some("debug"));
    assert_eq!(level(&["-l", "fatal"]), Some("error"));
    assert_eq!(level(&["--log-level=warn"]), Some("warn"));
    assert_eq!(level(&[]), None);
}
