//! `--print-config`: the effective configuration as a TOML file that would
//! reproduce it, each line saying where its value came from, each value
//! written as TOML by its type ([`ToToml`]). Paths are printed, never what
//! the files hold; an engine URL with credentials never gets this far (it
//! is refused).

use std::fmt::Display;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use cascade_cleanup::Concurrency;
use clap::ValueEnum;

use crate::cli::{LogFormat, Output, Progress};
use crate::opt::Opt;
use crate::{Settings, Source};

/// One line of `--print-config`.
#[derive(Debug)]
pub struct Origin {
    pub key: Opt,
    /// The value as TOML, or `None` for an unset optional value.
    pub value: Option<String>,
    pub source: Source,
    pub note: Option<String>,
}

impl Settings {
    /// The text `--print-config` prints.
    pub fn render(&self) -> String {
        let command = self.command.name();
        let mut out = format!(
            "# cascade-janitor {command}: effective configuration (flag > env > file > default)\n"
        );
        match &self.config_file {
            Some((path, source)) => {
                out += &format!("# config file: {} ({source})\n", path.display());
            }
            None => out += "# config file: none\n",
        }
        let width = self
            .origins
            .iter()
            .map(|o| o.key.name().len() + o.value.as_deref().map_or(0, str::len))
            .max()
            .unwrap_or(0)
            + 3;
        for origin in &self.origins {
            let line = match &origin.value {
                Some(value) => format!("{} = {value}", origin.key),
                None => format!("# {} not set (off)", origin.key),
            };
            let note = origin
                .note
                .as_ref()
                .map(|n| format!(", {n}"))
                .unwrap_or_default();
            out += &format!("{line:<width$}  # {}{note}\n", origin.source);
        }
        for ignored in &self.ignored_keys {
            out += &format!("# ignored from the config file: {ignored}\n");
        }
        for name in &self.ignored_variables {
            out += &format!("# ignored variable (a Kubernetes service link): {name}\n");
        }
        out
    }
}

pub fn show_str(s: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

pub fn show_duration(d: &Duration) -> String {
    show_str(&humantime::format_duration(*d).to_string())
}

/// A value as TOML for `--print-config`; `None` for an unset optional value.
pub trait ToToml {
    fn to_toml(&self) -> Option<String>;
}

macro_rules! to_toml {
    ($($ty:ty => $show:expr,)*) => {$(
        impl ToToml for $ty {
            fn to_toml(&self) -> Option<String> {
                let show: fn(&$ty) -> String = $show;
                Some(show(self))
            }
        }
    )*};
}

to_toml! {
    Duration => show_duration,
    bool => bool::to_string,
    NonZeroU32 => NonZeroU32::to_string,
    PathBuf => |path| show_str(&path.display().to_string()),
    SocketAddr => |addr| show_str(&addr.to_string()),
    // `4`, or `"auto"` (a TOML string).
    Concurrency => |c| match c {
        Concurrency::Fixed(n) => n.to_string(),
        adaptive => show_str(&adaptive.to_string()),
    },
    LogFormat => show_enum,
    Output => show_enum,
    Progress => show_enum,
}

impl<T: ToToml> ToToml for Option<T> {
    fn to_toml(&self) -> Option<String> {
        self.as_ref().and_then(ToToml::to_toml)
    }
}

/// An array of strings, each value as it displays.
impl<T: Display> ToToml for Vec<T> {
    fn to_toml(&self) -> Option<String> {
        let shown: Vec<String> = self.iter().map(|v| show_str(&v.to_string())).collect();
        Some(format!("[{}]", shown.join(", ")))
    }
}

/// A `clap::ValueEnum` by the name its flag takes.
fn show_enum<T: ValueEnum>(value: &T) -> String {
    let name = value.to_possible_value().map(|v| v.get_name().to_string());
    show_str(name.as_deref().unwrap_or("?"))
}
