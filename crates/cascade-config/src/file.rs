//! The `--config` file: a flat TOML table whose keys are the long option
//! names with `-` replaced by `_`, read into [`FileConfig`] with
//! `deny_unknown_fields`.
//!
//! One file serves every command: a key of another command only (`interval`
//! while running `prune`) is accepted and ignored, with a note in
//! `--print-config`. A key that is no option at all is refused (exit 2,
//! naming the key, file and line). Values are checked for their TOML type
//! here and go through the flag's own parser in `merge.rs`, so a value that
//! is refused on the command line is refused in the file too.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use crate::opt::FileConfig;
use crate::opt::{CommandName, Kind, Opt};
use crate::{ConfigError, DRY_RUN_REFUSAL, Source};

/// A list option's value: an array of strings, or one string (a list of one).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Strings {
    One(String),
    Many(Vec<String>),
}

impl FileText for Strings {
    fn texts(&self) -> Vec<String> {
        match self {
            Strings::One(s) => vec![s.clone()],
            Strings::Many(items) => items.clone(),
        }
    }
}

/// A value that is a number or a word (`concurrency = 4` or `"auto"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntOrStr {
    Int(i64),
    Str(String),
}

impl FileText for IntOrStr {
    fn texts(&self) -> Vec<String> {
        match self {
            IntOrStr::Int(n) => vec![n.to_string()],
            IntOrStr::Str(s) => vec![s.clone()],
        }
    }
}

/// A file value's texts (one, or a list's), for the flag's parser.
pub trait FileText {
    fn texts(&self) -> Vec<String>;
}

impl FileText for String {
    fn texts(&self) -> Vec<String> {
        vec![self.clone()]
    }
}

impl FileText for i64 {
    fn texts(&self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl FileText for bool {
    fn texts(&self) -> Vec<String> {
        vec![self.to_string()]
    }
}

/// A key as written, before its value is typed.
#[derive(Debug)]
struct RawEntry {
    key_span: Range<usize>,
    value_span: Range<usize>,
    value: toml::Value,
}

/// The file read and typed.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub values: FileConfig,
    text: String,
    raw: BTreeMap<String, RawEntry>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

impl ConfigFile {
    /// Reads `path` (named by `source`) for `command`.
    pub fn read(
        path: &Path,
        source: &Source,
        command: CommandName,
    ) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read config file {} ({e}); fix the path given by {source} or remove it",
                path.display()
            ))
        })?;
        Self::parse(path, text, command)
    }

    pub fn parse(
        path: &Path,
        text: String,
        command: CommandName,
    ) -> Result<ConfigFile, ConfigError> {
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> = toml::from_str(&text)
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| format!(", line {}", line_of(&text, s.start)))
                    .unwrap_or_default();
                let message = e.message().trim().replace('\n', " ");
                ConfigError::new(format!(
                    "config file {}{line} is not valid TOML: {message}; write one `key = value` per line, e.g. min_age = \"10m\"",
                    path.display()
                ))
            })?;
        let raw = table
            .into_iter()
            .map(|(key, value)| {
                let key_span = key.span();
                let value_span = value.span();
                (
                    key.into_inner(),
                    RawEntry {
                        key_span,
                        value_span,
                        value: value.into_inner(),
                    },
                )
            })
            .collect();
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            values: FileConfig::default(),
            text,
            raw,
        };
        file.check_shape()?;
        if command == CommandName::Run {
            file.refuse_dry_run()?;
        }
        file.values = toml::from_str(&file.text).map_err(|e| file.typed_error(&e))?;
        Ok(file)
    }

    fn at(&self, line: Option<usize>) -> String {
        format!("config file {}{}", self.path.display(), at_line(line))
    }

    /// The line of a byte offset in the file.
    pub fn line(&self, offset: usize) -> usize {
        line_of(&self.text, offset)
    }

    /// Where a value stands, as a [`Source`].
    pub fn source<T>(&self, value: &Spanned<T>) -> Source {
        Source::File {
            path: self.path.clone(),
            line: Some(self.line(value.span().start)),
        }
    }

    /// Sections and the options that configure the configuration itself,
    /// which a typed parse would only call unknown.
    fn check_shape(&self) -> Result<(), ConfigError> {
        for (key, entry) in &self.raw {
            let at = self.at(Some(self.line(entry.key_span.start)));
            if let toml::Value::Table(_) = entry.value {
                return Err(ConfigError::new(format!(
                    "{at}: `[{key}]`: the config file is flat, without sections; write its keys at the top level, e.g. interval = \"30m\""
                )));
            }
            if let Some(option) = Opt::from_name(key).filter(|k| !k.in_file()) {
                return Err(ConfigError::new(format!(
                    "{at}: `{key}` cannot be set in the config file; use {} on the command line",
                    option.flag()
                )));
            }
        }
        Ok(())
    }

    /// `run` has no dry-run mode: `dry_run` in the file must never turn into
    /// a removing daemon, so anything but `false` is refused, whatever its
    /// type (checked before typing, so `dry_run = "yes"` says this too).
    fn refuse_dry_run(&self) -> Result<(), ConfigError> {
        let Some(entry) = self.raw.get(Opt::DryRun.name()) else {
            return Ok(());
        };
        if matches!(entry.value, toml::Value::Boolean(false)) {
            return Ok(());
        }
        let shown = match &entry.value {
            toml::Value::String(text) => crate::print::show_str(text),
            toml::Value::Boolean(b) => b.to_string(),
            other => format!("<{}>", other.type_str()),
        };
        Err(ConfigError::new(format!(
            "{}: `dry_run = {shown}`: {DRY_RUN_REFUSAL}, or remove dry_run from {}",
            self.at(Some(self.line(entry.key_span.start))),
            self.path.display()
        )))
    }

    /// serde's error, told the way the flag's would be: which key, which
    /// line, what was expected and an example.
    fn typed_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let within =
            |r: &Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
        if let Some((key, entry)) = self.raw.iter().find(|(_, en)| within(&en.key_span))
            && Opt::from_name(key).is_none()
        {
            let keys: Vec<&str> = Opt::ALL
                .iter()
                .filter(|k| k.in_file())
                .map(|k| k.name())
                .collect();
            return ConfigError::new(format!(
                "{}: unknown key `{key}`; keys are the long options with - replaced by _: {}",
                self.at(Some(self.line(entry.key_span.start))),
                keys.join(", ")
            ));
        }
        if let Some((key, entry)) = self.raw.iter().find(|(_, en)| within(&en.value_span))
            && let Some(option) = Opt::from_name(key)
        {
            return ConfigError::new(format!(
                "{}: `{key}`: expected {}, found {}; {}",
                self.at(Some(self.line(entry.key_span.start))),
                option.kind().what(),
                entry.value.type_str(),
                example(option)
            ));
        }
        // Not tied to one key: serde's own words, on one line.
        let line = e.span().map(|s| self.line(s.start));
        ConfigError::new(format!(
            "{}: {}",
            self.at(line),
            e.message().trim().replace('\n', " ")
        ))
    }

    /// Notes for the keys of another command, which are ignored.
    pub fn ignored(&self, command: CommandName) -> Vec<String> {
        self.raw
            .iter()
            .filter_map(|(key, entry)| {
                let option = Opt::from_name(key)?;
                if option.commands().contains(&command) {
                    return None;
                }
                let commands: Vec<&str> = option.commands().iter().map(|c| c.as_str()).collect();
                Some(format!(
                    "{key} (line {}, only for {})",
                    self.line(entry.key_span.start),
                    commands.join(", ")
                ))
            })
            .collect()
    }
}

/// An example line for `key`, from the option's default.
pub fn example(key: Opt) -> String {
    let default = key.default().map(str::to_string);
    let show = crate::print::show_str;
    let value = match (key.kind(), default) {
        (Kind::Str, Some(d)) => show(&d),
        (Kind::Str, None) => show("..."),
        (Kind::Int, d) => d.unwrap_or_else(|| "1".into()),
        (Kind::IntOrStr, Some(d)) if d.parse::<i64>().is_err() => show(&d),
        (Kind::IntOrStr, d) => d.unwrap_or_else(|| "1".into()),
        (Kind::Bool, _) => "true".into(),
        (Kind::List, d) => format!(
            "[{}]",
            show(d.as_deref().unwrap_or(crate::address::DEFAULT_SOCKET))
        ),
    };
    format!("e.g. {key} = {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, command: CommandName) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/etc/janitor.toml"), text.to_string(), command)
    }

    #[test]
    fn every_file_key_is_a_field() {
        // One line per key, each of the right type: deny_unknown_fields
        // would refuse a key that is no field.
        let text: String = Opt::ALL
            .iter()
            .filter(|k| k.in_file())
            .map(|k| match k.kind() {
                Kind::Str => format!("{k} = \"x\"\n"),
                Kind::Int | Kind::IntOrStr => format!("{k} = 1\n"),
                Kind::Bool => format!("{k} = false\n"),
                Kind::List => format!("{k} = [\"x\"]\n"),
            })
            .collect();
        let f = file(&text, CommandName::Prune).expect("every key parses");
        assert!(f.values.interval.is_some() && f.values.tls_key.is_some());
        assert_eq!(f.ignored(CommandName::Prune).len(), 7, "run's keys");
    }

    #[test]
    fn bad_toml_names_the_file_and_line() {
        let err = file("min_age = \"10m\"\ninterval = \n", CommandName::Run).expect_err("bad toml");
        assert!(
            err.message.contains("/etc/janitor.toml, line 2"),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let err =
            file("min_age = \"1m\"\n\nintervl = \"5m\"\n", CommandName::Run).expect_err("unknown");
        assert!(
            err.message
                .contains("line 3: unknown key `intervl`; keys are"),
            "{}",
            err.message
        );
        let f = file("interval = \"5m\"\n", CommandName::Prune).expect("another command's key");
        assert_eq!(
            f.ignored(CommandName::Prune),
            vec!["interval (line 1, only for run)".to_string()]
        );
        let err = file("[run]\ninterval = \"5m\"\n", CommandName::Run).expect_err("section");
        assert!(err.message.contains("flat"), "{}", err.message);
        let err = file("config = \"/x\"\n", CommandName::Run).expect_err("config");
        assert!(err.message.contains("--config"), "{}", err.message);
    }

    #[test]
    fn wrong_types_name_the_key_and_give_an_example() {
        for (text, expected) in [
            (
                "min_age = 5\n",
                "line 1: `min_age`: expected a string, found integer; e.g. min_age = \"10m\"",
            ),
            (
                "concurrency = true\n",
                "`concurrency`: expected a whole number or a string, found boolean; e.g. concurrency = \"auto\"",
            ),
            (
                "label = \"a=1\"\nmin_age = [\"a\"]\n",
                "line 2: `min_age`: expected a string, found array",
            ),
            (
                "label = [1]\n",
                "`label`: expected an array of strings, found array; e.g. label = [\"cascade.managed=true\"]",
            ),
            (
                "docker_host = 3\n",
                "e.g. docker_host = [\"unix:///var/run/docker.sock\"]",
            ),
            (
                "no_events = \"yes\"\n",
                "`no_events`: expected true or false, found string",
            ),
            (
                "allow_plain_tcp = 1\n",
                "`allow_plain_tcp`: expected true or false, found integer",
            ),
            // A key of another command is typed too: one file, one meaning.
            ("output = 5\n", "`output`: expected a string"),
        ] {
            let err = file(text, CommandName::Run).expect_err(text);
            assert!(err.message.contains(expected), "{text:?}: {}", err.message);
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
    }

    #[test]
    fn run_refuses_dry_run_of_any_type_but_false() {
        for (text, shown) in [
            ("dry_run = true\n", "true"),
            ("dry_run = \"yes\"\n", "\"yes\""),
        ] {
            let err = file(text, CommandName::Run).expect_err(text);
            assert!(
                err.message
                    .contains(&format!("`dry_run = {shown}`: run has no dry-run mode")),
                "{}",
                err.message
            );
        }
        let f = file("dry_run = false\n", CommandName::Run).expect("false is ignored");
        assert_eq!(f.ignored(CommandName::Run).len(), 1);
        assert!(file("dry_run = true\n", CommandName::Prune).is_ok());
    }
}
