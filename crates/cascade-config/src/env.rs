//! The environment, passed in rather than read: `load` gets an
//! [`Environment`], so every precedence rule is tested with a map.
//!
//! A `CASCADE_JANITOR_*` variable that is no option of any command is
//! refused: a misspelt one (`CASCADE_JANITOR_LABELS`) would otherwise leave
//! the default in force, e.g. a wider scope than the operator meant. The
//! exception is the shape of Kubernetes service links: a Service named
//! `cascade-janitor` makes Kubernetes inject `CASCADE_JANITOR_SERVICE_HOST`,
//! `CASCADE_JANITOR_PORT`, `CASCADE_JANITOR_PORT_9464_TCP` and the like into
//! every pod of the namespace; refusing them would crash-loop the pod.

use std::collections::BTreeMap;

use crate::ConfigError;
use crate::opt::Opt;

/// The prefix of every variable the janitor reads for an option.
pub const PREFIX: &str = "CASCADE_JANITOR_";

/// The variables `load` sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment. A name or value that is not UTF-8 is read
    /// lossily (it then fails the option's parser, naming the variable).
    pub fn from_process() -> Environment {
        std::env::vars_os()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A variable that is set and not blank (the docker CLI's test for
    /// `DOCKER_HOST`, `DOCKER_CERT_PATH`, `DOCKER_TLS_VERIFY`).
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// This environment with `name` set to `value` (replacing it).
    pub fn with(mut self, (name, value): (String, String)) -> Environment {
        self.vars.insert(name, value);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Environment {
        Environment {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Variable names Kubernetes injects for a Service named `cascade-janitor`.
pub fn is_service_link(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.starts_with("SERVICE_") || rest == "PORT" || rest.starts_with("PORT_")
    })
}

/// Refuses an unknown `CASCADE_JANITOR_*` variable; returns the service
/// links, which are ignored (the caller logs them at debug). A variable of
/// another command only is fine here (see [`refuse_dry_run`]).
pub fn check_names(env: &Environment) -> Result<Vec<String>, ConfigError> {
    let valid: Vec<String> = Opt::ALL.iter().map(|k| k.env()).collect();
    let mut links = Vec::new();
    for name in env.names() {
        if !name.starts_with(PREFIX) || valid.iter().any(|v| v == name) {
            continue;
        }
        if is_service_link(name) {
            tracing::debug!(
                variable = name,
                "ignoring a Kubernetes service link variable"
            );
            links.push(name.to_string());
            continue;
        }
        let shown: String = name.escape_debug().collect();
        let hint = nearest(name, &valid)
            .map(|n| format!(" (did you mean {n}?)"))
            .unwrap_or_default();
        return Err(ConfigError::new(format!(
            "environment variable {shown} is no cascade-janitor option{hint}; unset it (an option's variable is CASCADE_JANITOR_ and its long name in capitals, e.g. CASCADE_JANITOR_MIN_AGE for --min-age)"
        )));
    }
    Ok(links)
}

/// The valid name closest to `name`: one it starts with or that starts with
/// it, else one within a few edits.
pub fn nearest<'a>(name: &str, valid: &'a [String]) -> Option<&'a str> {
    let prefixed = valid
        .iter()
        .filter(|v| name.starts_with(v.as_str()) || v.starts_with(name))
        .max_by_key(|v| v.len());
    if let Some(v) = prefixed {
        return Some(v);
    }
    valid
        .iter()
        .map(|v| (strsim::levenshtein(name, v), v))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.as_str())
}

/// `run` has no dry-run mode: a dry-run request from the environment must
/// never turn into a removing daemon, so it is refused rather than ignored.
/// A falsey value is ignored, as any variable of another command.
pub fn refuse_dry_run(env: &Environment) -> Result<(), ConfigError> {
    let name = Opt::DryRun.env();
    if let Some(value) = env.get(&name)
        && flag_is_set(value)
    {
        return Err(ConfigError::new(format!(
            "{name}={}: {}, or unset {name}",
            value.escape_debug(),
            crate::DRY_RUN_REFUSAL
        )));
    }
    Ok(())
}

/// Whether a switch's variable turns it on in the widest reading: anything
/// but empty, n, no, f, false, off or 0.
fn flag_is_set(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty()
        && !["n", "no", "f", "false", "off", "0"]
            .iter()
            .any(|f| value.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    #[test]
    fn every_option_variable_is_accepted() {
        let all: Vec<(String, String)> = Opt::ALL
            .iter()
            .map(|k| (k.env(), "x".to_string()))
            .collect();
        let all: Environment = all.into_iter().collect();
        assert_eq!(check_names(&all).expect("all valid"), Vec::<String>::new());
        assert!(check_names(&env(&[("DOCKER_HOST", "x"), ("PATH", "/bin")])).is_ok());
    }

    #[test]
    fn unknown_variables_are_refused_with_a_hint() {
        let err = check_names(&env(&[("CASCADE_JANITOR_LABELS", "a=b")])).expect_err("plural");
        assert!(
            err.message.contains("did you mean CASCADE_JANITOR_LABEL?"),
            "{}",
            err.message
        );
        let err = check_names(&env(&[("CASCADE_JANITOR_\nX", "1")])).expect_err("odd name");
        assert!(!err.message.contains('\n'), "{}", err.message);
        let valid: Vec<String> = Opt::ALL.iter().map(|k| k.env()).collect();
        assert_eq!(
            nearest("CASCADE_JANITOR_TIMOUT", &valid),
            Some("CASCADE_JANITOR_TIMEOUT")
        );
        assert_eq!(
            nearest("CASCADE_JANITOR_TLS_CERTS", &valid),
            Some("CASCADE_JANITOR_TLS_CERT")
        );
        assert_eq!(nearest("CASCADE_JANITOR_ZZZZZZZZZZ", &valid), None);
    }

    #[test]
    fn kubernetes_service_links_are_ignored() {
        let links = [
            "CASCADE_JANITOR_SERVICE_HOST",
            "CASCADE_JANITOR_SERVICE_PORT",
            "CASCADE_JANITOR_SERVICE_PORT_METRICS",
            "CASCADE_JANITOR_PORT",
            "CASCADE_JANITOR_PORT_9464_TCP",
            "CASCADE_JANITOR_PORT_9464_TCP_ADDR",
            "CASCADE_JANITOR_PORT_9464_TCP_PROTO",
        ];
        let pairs: Vec<(&str, &str)> = links.iter().map(|l| (*l, "10.0.0.1")).collect();
        let ignored = check_names(&env(&pairs)).expect("service links pass");
        let mut expected: Vec<String> = links.iter().map(|l| l.to_string()).collect();
        expected.sort();
        assert_eq!(ignored, expected);
    }

    #[test]
    fn look_alikes_of_service_links_are_still_refused() {
        for name in [
            "CASCADE_JANITOR_SERVICE",
            "CASCADE_JANITOR_SERVICEHOST",
            "CASCADE_JANITOR_PORTS",
            "CASCADE_JANITOR_PORTAL",
            "CASCADE_JANITOR_METRICS_PORT",
        ] {
            let err = check_names(&env(&[(name, "1")])).expect_err(name);
            assert!(err.message.contains(name), "{}", err.message);
        }
    }

    #[test]
    fn a_dry_run_variable_is_refused_for_run_unless_falsey() {
        for value in ["true", "1", "yes", "on"] {
            let err = refuse_dry_run(&env(&[("CASCADE_JANITOR_DRY_RUN", value)])).expect_err(value);
            assert!(
                err.message
                    .contains("use `prune --dry-run`, or unset CASCADE_JANITOR_DRY_RUN"),
                "{}",
                err.message
            );
        }
        for value in ["false", "0", "off", "", "No"] {
            assert!(refuse_dry_run(&env(&[("CASCADE_JANITOR_DRY_RUN", value)])).is_ok());
        }
    }
}
