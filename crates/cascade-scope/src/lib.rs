//! Which images the janitor may ever remove.
//!
//! A Docker host running the cascade router also runs workloads that are not
//! ours (databases, log stores, other apps). The only thing that separates
//! our garbage from their images is a label, so this crate owns the one rule
//! everything else relies on:
//!
//! # The scope invariant `[tag:scope_invariant]`
//!
//! An image is in scope, and may be removed, only if **both** hold:
//!
//! 1. it is *dangling*: it has no repository tag at all; and
//! 2. it carries **every** label of the configured [`Scope`], each with
//!    **exactly** the configured value (byte for byte, case-sensitive).
//!
//! The rule is applied twice: once by the engine, through the filters
//! [`Scope::docker_filters`] renders, and once more by us, on every candidate
//! the engine returns, through [`Scope::check`]. An engine that ignores or
//! mis-applies a filter therefore cannot widen the scope. Every place that
//! relies on this rule says `[ref:scope_invariant]`.
//!
//! A [`Scope`] cannot be built empty, so "no labels" can never turn into
//! "every dangling image".
//!
//! One name is not a tag for rule 1: the janitor's own removal name,
//! [`removal_name`] of the image's own ID. The janitor gives it only to an
//! image that passed this check, right before it removes the image by that
//! name, so that the engine removes the image only while that name is still
//! its only one (`[tag:removal_name]`). The name of another image's ID, or
//! any other name, is a tag like every other.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// The label the cascade router puts on every snapshot it commits.
pub const DEFAULT_LABEL: &str = "cascade.managed=true";

/// A validated `key=value` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    key: String,
    value: String,
}

/// Why a `key=value` string is not a usable label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label `{0}` has no `=`; write it as KEY=VALUE, e.g. {DEFAULT_LABEL}")]
    MissingEquals(String),
    #[error("label `{0}` has an empty key; write it as KEY=VALUE, e.g. {DEFAULT_LABEL}")]
    EmptyKey(String),
    #[error("label `{0}` has an empty value; write it as KEY=VALUE, e.g. {DEFAULT_LABEL}")]
    EmptyValue(String),
    #[error("label `{0}` has whitespace in its key; label keys cannot contain spaces")]
    WhitespaceInKey(String),
    #[error("label `{0}` contains a control character; remove it")]
    ControlCharacter(String),
}

impl Label {
    /// Builds a label from its parts, with the same rules as parsing `key=value`.
    pub fn new(key: &str, value: &str) -> Result<Label, LabelError> {
        format!("{key}={value}").parse()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for Label {
    type Err = LabelError;

    /// Splits at the first `=`: the key can never contain one, the value may.
    fn from_str(s: &str) -> Result<Label, LabelError> {
        let culprit = || s.to_string();
        if s.chars().any(char::is_control) {
            return Err(LabelError::ControlCharacter(s.escape_debug().to_string()));
        }
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| LabelError::MissingEquals(culprit()))?;
        if key.is_empty() {
            return Err(LabelError::EmptyKey(culprit()));
        }
        if key.chars().any(char::is_whitespace) {
            return Err(LabelError::WhitespaceInKey(culprit()));
        }
        if value.is_empty() {
            return Err(LabelError::EmptyValue(culprit()));
        }
        Ok(Label {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Why a set of labels is not a usable scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "no label given; the janitor needs at least one KEY=VALUE label to know which images are its own"
    )]
    Empty,
    #[error(
        "label key `{key}` is given twice with different values (`{first}` and `{second}`); no image can carry both, keep one"
    )]
    ConflictingValues {
        key: String,
        first: String,
        second: String,
    },
}

/// One or more labels, all of which an image must carry (AND), restricted
/// to dangling images. See `[ref:scope_invariant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Sorted by key, no duplicates, never empty.
    labels: Vec<Label>,
}

impl Scope {
    /// Builds a scope; duplicates are folded, an empty list or one key with
    /// two values is refused.
    pub fn new(labels: impl IntoIterator<Item = Label>) -> Result<Scope, ScopeError> {
        let mut by_key: BTreeMap<String, Label> = BTreeMap::new();
        for label in labels {
            match by_key.get(&label.key) {
                Some(existing) if existing.value != label.value => {
                    return Err(ScopeError::ConflictingValues {
                        key: label.key.clone(),
                        first: existing.value.clone(),
                        second: label.value.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    by_key.insert(label.key.clone(), label);
                }
            }
        }
        if by_key.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(Scope {
            labels: by_key.into_values().collect(),
        })
    }

    /// The labels of this scope, sorted by key; never empty.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The `filters` argument of `GET /images/json`: dangling only, and every
    /// label (the engine ANDs them). `[ref:scope_invariant]`
    pub fn docker_filters(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([
            ("dangling".to_string(), vec!["true".to_string()]),
            ("label".to_string(), self.label_filters()),
        ])
    }

    /// The `label` filter values only (`key=value` each), for queries that
    /// want every labelled image, tagged or not, such as `doctor`.
    pub fn label_filters(&self) -> Vec<String> {
        self.labels.iter().map(Label::to_string).collect()
    }

    /// Our own check of one candidate the engine returned, independent of the
    /// engine's filtering. `Ok` means the image is within
    /// `[ref:scope_invariant]`; anything else names the first reason it is not.
    pub fn check(&self, image: &ImageFacts<'_>) -> Result<(), OutOfScope> {
        if let Some(tag) = real_tags(image.id, image.repo_tags).next() {
            return Err(OutOfScope::Tagged { tag: tag.clone() });
        }
        self.check_labels(image.labels)
    }

    /// Rule 2 alone: every label of the scope, with exactly its value.
    pub fn check_labels(&self, labels: &HashMap<String, String>) -> Result<(), OutOfScope> {
        for label in &self.labels {
            match labels.get(&label.key) {
                None => {
                    return Err(OutOfScope::LabelMissing {
                        key: label.key.clone(),
                    });
                }
                Some(found) if *found != label.value => {
                    return Err(OutOfScope::LabelValueMismatch {
                        key: label.key.clone(),
                        expected: label.value.clone(),
                        found: found.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl Default for Scope {
    /// `cascade.managed=true`, the label the router sets.
    fn default() -> Scope {
        let label = DEFAULT_LABEL.parse().expect("the default label is valid");
        Scope {
            labels: vec![label],
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label_filters().join(","))
    }
}

/// What [`Scope::check`] needs to know about an image, as the engine listed it.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts<'a> {
    /// The image's ID as the engine lists it (`sha256:` and hex).
    pub id: &'a str,
    pub labels: &'a HashMap<String, String>,
    pub repo_tags: &'a [String],
}

/// Why an image the engine returned is outside `[ref:scope_invariant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfScope {
    #[error("image is tagged `{tag}`, not dangling")]
    Tagged { tag: String },
    #[error("image lacks label `{key}`")]
    LabelMissing { key: String },
    #[error("label `{key}` is `{found}`, not `{expected}`")]
    LabelValueMismatch {
        key: String,
        expected: String,
        found: String,
    },
}

/// True when image `id` has no real tag: its `repo_tags` hold only the
/// engine's placeholders and the janitor's own removal name for `id`.
pub fn is_untagged(id: &str, repo_tags: &[String]) -> bool {
    real_tags(id, repo_tags).next().is_none()
}

/// The tags of image `id` that count as tags for `[ref:scope_invariant]`.
fn real_tags<'a>(id: &'a str, repo_tags: &'a [String]) -> impl Iterator<Item = &'a String> {
    repo_tags
        .iter()
        .filter(move |t| !is_placeholder_tag(t) && !is_removal_name(id, t))
}

/// Docker 20.10 lists a dangling image with `RepoTags ["<none>:<none>"]`;
/// newer engines and Podman send an empty list (Podman before 5.7: `null`,
/// read as empty). Both mean "no tag".
fn is_placeholder_tag(tag: &str) -> bool {
    tag == "<none>:<none>"
}

/// The repository of the janitor's removal names. Fully qualified
/// (`localhost/`), so Podman does not resolve it through its short-name
/// search, and Docker does not take it for a Docker Hub name.
pub const REMOVAL_REPOSITORY: &str = "localhost/cascade-janitor-removing";

/// The janitor's removal name of image `id`, `[tag:removal_name]`:
/// `localhost/cascade-janitor-removing:<hex>`, one name per image, so two
/// janitors removing the same image use the same name. `None` when what
/// follows `sha256:` cannot be a tag (a word character, then up to 127
/// word characters, `.` or `-`): such an image is not removed by name.
pub fn removal_name(id: &str) -> Option<String> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = (1..=128).contains(&hex.len())
        && hex.bytes().next().is_some_and(word)
        && hex.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    valid.then(|| format!("{REMOVAL_REPOSITORY}:{hex}"))
}

/// True when `tag` is the janitor's removal name of image `id` (as Docker
/// lists it, or fully qualified as Podman does: the same string here).
pub fn is_removal_name(id: &str, tag: &str) -> bool {
    removal_name(id).is_some_and(|name| name == tag)
}

/// True when `name` is a removal name of any image (events name the image
/// they are about by its tag: the janitor's own tags start no early sweep).
pub fn is_any_removal_name(name: &str) -> bool {
    name.strip_prefix(REMOVAL_REPOSITORY)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|hex| removal_name(hex).is_some())
}

#[cfg(test)]
mod tests;
