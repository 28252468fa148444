//! The binary started as the Docker CLI plugin `docker-janitor`
//! (`docker janitor ...`): answers the plugin protocol and points the
//! janitor at the engine the Docker CLI would use (`cascade-docker-cli`).
//! Under any other name the arguments and environment pass through.

use std::ffi::OsString;
use std::process::ExitCode;

use cascade_config::Environment;
use cascade_docker_cli::{Invocation, PLUGIN_NAME, Surroundings};

use crate::{EXIT_OK, EXIT_USAGE};

/// What `main` goes on with.
pub enum Start {
    /// Load the settings from these and run.
    Janitor {
        args: Vec<OsString>,
        env: Environment,
        /// The log level when `RUST_LOG` is not set.
        log_level: &'static str,
    },
    /// Already answered (the metadata, or a one-line error).
    Done(ExitCode),
}

struct Process;

impl Surroundings for Process {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn home(&self) -> Option<std::path::PathBuf> {
        std::env::home_dir()
    }
}

pub fn start(args: Vec<OsString>) -> Start {
    let env = Environment::from_process();
    let Some(argv0) = args.first() else {
        return Start::Janitor {
            args,
            env,
            log_level: "info",
        };
    };
    if !cascade_docker_cli::invoked_as_plugin(argv0) {
        return Start::Janitor {
            args,
            env,
            log_level: "info",
        };
    }
    let refuse = |e: cascade_docker_cli::PluginError| {
        eprintln!("docker {PLUGIN_NAME}: {e}");
        Start::Done(ExitCode::from(EXIT_USAGE))
    };
    let (options, rest) = match cascade_docker_cli::parse(&args[1..]) {
        Ok(Invocation::Metadata) => {
            println!(
                "{}",
                cascade_docker_cli::metadata(env!("CARGO_PKG_VERSION"))
            );
            return Start::Done(ExitCode::from(EXIT_OK));
        }
        Ok(Invocation::Command { options, args }) => (options, args),
        Err(e) => return refuse(e),
    };
    let endpoint = match cascade_docker_cli::resolve(&options, &Process) {
        Ok(endpoint) => endpoint,
        Err(e) => return refuse(e),
    };
    let env = endpoint
        .variables()
        .into_iter()
        .fold(env, Environment::with);
    // clap names the program after argv[0] in usage lines and help.
    let args = std::iter::once(OsString::from(format!("docker {PLUGIN_NAME}")))
        .chain(rest)
        .collect();
    Start::Janitor {
        args,
        env,
        log_level: endpoint.log_level.unwrap_or("info"),
    }
}
