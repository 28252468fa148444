//! One value per option: flag > `CASCADE_JANITOR_*` variable > file >
//! default (for the engine address: ... > file > `DOCKER_HOST` > the local
//! socket), each recorded with its [`Source`] for `--print-config`.
//!
//! A flag's value was parsed by clap; a variable's and a file's go through
//! the same parser here, so every source refuses the same values, and the
//! error names the source (flag, variable, or file and line). The methods
//! named like the options (`min_age()`) are generated from the table in
//! `opt.rs`; checks that need several options are `resolve.rs`'s.

use clap::ArgMatches;
use clap::parser::ValueSource;
use toml::Spanned;

use crate::env::Environment;
use crate::file::{ConfigFile, FileConfig, FileText};
use crate::opt::{CommandName, Kind, Opt};
use crate::print::{Origin, ToToml};
use crate::{ConfigError, Source};

/// Splits a list option's values, on the command line (clap's
/// `value_delimiter`) and in its variable alike.
pub(crate) const LIST_DELIMITER: char = ',';

pub(crate) fn invalid(source: &Source, key: Opt, text: &str, why: &str) -> ConfigError {
    ConfigError::new(format!(
        "{}: invalid value `{}`: {why}",
        source.culprit(key),
        text.escape_debug()
    ))
}

/// The sources of one command's options, and the `--print-config` lines of
/// the values read so far.
pub(crate) struct Merger<'a> {
    command: CommandName,
    matches: &'a ArgMatches,
    env: &'a Environment,
    pub(crate) file: Option<ConfigFile>,
    pub(crate) origins: Vec<Origin>,
}

impl<'a> Merger<'a> {
    /// `matches` are the subcommand's.
    pub(crate) fn new(
        command: CommandName,
        matches: &'a ArgMatches,
        env: &'a Environment,
    ) -> Merger<'a> {
        Merger {
            command,
            matches,
            env,
            file: None,
            origins: Vec::new(),
        }
    }

    pub(crate) fn env(&self) -> &'a Environment {
        self.env
    }

    fn on_command_line(&self, key: Opt) -> bool {
        // clap (in debug builds) panics on an id that is not an argument of
        // this command; `Opt::commands` and `Opt::id` are checked against
        // clap in opt.rs, so asking only for this command's options is safe.
        key.commands().contains(&self.command)
            && matches!(
                self.matches.value_source(key.id()),
                Some(ValueSource::CommandLine)
            )
    }

    /// What clap holds for `key`: the flag's values, or its default.
    fn clap<T: Clone + Send + Sync + 'static>(&self, key: Opt) -> Result<Vec<T>, ConfigError> {
        match self.matches.try_get_many::<T>(key.id()) {
            Ok(values) => Ok(values.map(|v| v.cloned().collect()).unwrap_or_default()),
            Err(e) => Err(ConfigError::new(format!("{}: {e}", key.flag()))),
        }
    }

    /// The texts of a file key, and where they stand.
    pub(crate) fn file_texts<F: FileText>(
        &self,
        field: impl Fn(&FileConfig) -> Option<&Spanned<F>>,
    ) -> Option<(Vec<String>, Source)> {
        let file = self.file.as_ref()?;
        let spanned = field(&file.values)?;
        Some((spanned.get_ref().texts(), file.source(spanned)))
    }

    /// flag > variable > file > [`Opt::below_file`] > default, for `key`.
    /// A variable's or the file's texts are parsed by `parse` (the flag's
    /// own parser); a list's variable is split like its flag.
    fn merge<T: Clone + Send + Sync + 'static>(
        &self,
        key: Opt,
        file: Option<(Vec<String>, Source)>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(Vec<T>, Source), ConfigError> {
        if self.on_command_line(key) {
            return Ok((self.clap(key)?, Source::Flag(key.flag())));
        }
        let name = key.env();
        let given = match self.env.get(&name) {
            Some(text) if key.kind() == Kind::List => {
                let texts = text.split(LIST_DELIMITER).map(str::to_string).collect();
                Some((texts, Source::Env(name)))
            }
            Some(text) => Some((vec![text.to_string()], Source::Env(name))),
            None => file.or_else(|| {
                let var = key.below_file()?;
                let text = self.env.non_empty(var)?;
                Some((vec![text.trim().to_string()], Source::Env(var.to_string())))
            }),
        };
        let Some((texts, source)) = given else {
            return Ok((self.clap(key)?, Source::Default));
        };
        let values = texts
            .iter()
            .map(|text| parse(text).map_err(|why| invalid(&source, key, text, &why)))
            .collect::<Result<_, _>>()?;
        Ok((values, source))
    }

    /// An option that always has a value (clap's default at least).
    pub(crate) fn one<T: Clone + Send + Sync + ToToml + 'static>(
        &mut self,
        key: Opt,
        file: Option<(Vec<String>, Source)>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let (mut values, source) = self.merge(key, file, parse)?;
        let value = values
            .pop()
            .ok_or_else(|| ConfigError::new(format!("{}: no value and no default", key.flag())))?;
        self.record(key, value.to_toml(), source);
        Ok(value)
    }

    /// An option that may be unset.
    pub(crate) fn maybe<T: Clone + Send + Sync + ToToml + 'static>(
        &mut self,
        key: Opt,
        file: Option<(Vec<String>, Source)>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let (mut values, source) = self.merge(key, file, parse)?;
        let value = values.pop();
        self.record(key, value.to_toml(), source);
        Ok(value)
    }

    /// A repeatable option.
    pub(crate) fn list<T: Clone + Send + Sync + std::fmt::Display + 'static>(
        &mut self,
        key: Opt,
        file: Option<(Vec<String>, Source)>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        let (values, source) = self.merge(key, file, parse)?;
        self.record(key, values.to_toml(), source);
        Ok(values)
    }

    fn record(&mut self, key: Opt, value: Option<String>, source: Source) {
        self.origins.push(Origin {
            key,
            value,
            source,
            note: None,
        });
    }

    /// Replaces the printed value and source of `key` with what a check
    /// settled (a TLS file found through `DOCKER_CERT_PATH`, a capped gap).
    pub(crate) fn settle(&mut self, key: Opt, value: &impl ToToml, source: Source) {
        if let Some(origin) = self.origins.iter_mut().find(|o| o.key == key) {
            origin.value = value.to_toml();
            origin.source = source;
        }
    }

    /// Adds a note to `key`'s `--print-config` line.
    pub(crate) fn note(&mut self, key: Opt, note: &str) {
        if let Some(origin) = self.origins.iter_mut().find(|o| o.key == key) {
            origin.note = Some(note.to_string());
        }
    }

    pub(crate) fn source_of(&self, key: Opt) -> Source {
        self.origins
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.source.clone())
            .unwrap_or(Source::Default)
    }

    /// A refusal of `key`'s value, naming where it came from.
    pub(crate) fn error(&self, key: Opt, why: &str) -> ConfigError {
        ConfigError::new(format!("{}: {why}", self.source_of(key).culprit(key)))
    }
}

#[cfg(test)]
mod tests;
