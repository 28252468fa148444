//! `options!`: the table of `opt.rs` turned into everything that needs one
//! line per option, so that no option is spelt twice:
//!
//! - the [`Opt`](super::Opt) enum and its metadata (`name`, `id`,
//!   `commands`, `kind`, `in_file`, `default`), one `match` arm each;
//! - `Opt::arg`: the clap argument (`--key-with-dashes`, value name, help
//!   ending with its variable, action, parser, default);
//! - `FileConfig`: one serde field per file key, typed by its TOML kind,
//!   each `Spanned` for error messages (`deny_unknown_fields` refuses any
//!   other key);
//! - one method per option on [`Merger`](crate::merge::Merger), named like
//!   the key (`min_age()`), which merges flag > variable > file > default,
//!   parses with the option's parser and records the `--print-config` line.
//!
//! The value shapes: `one(T) = "default"` (a value, clap's default when
//! none is given), `maybe(T)` (unset when none is given), `switch` (a flag
//! without a value: `true`/`false` in a variable or the file), `choice(T) =
//! "default"` (a `clap::ValueEnum`), `list(T) = "default"` (repeatable and
//! comma-separated; an array in the file).

macro_rules! options {
    (
        all: { $($all:ident { $($all_body:tt)* })* }
        all_not_in_file: { $($cli:ident { $($cli_body:tt)* })* }
        run: { $($run:ident { $($run_body:tt)* })* }
        prune: { $($prune:ident { $($prune_body:tt)* })* }
    ) => {
        options!(@table
            $([all file] $all { $($all_body)* })*
            $([all cli] $cli { $($cli_body)* })*
            $([run file] $run { $($run_body)* })*
            $([prune file] $prune { $($prune_body)* })*
        );
        options!(@file_config
            $($all { $($all_body)* })*
            $($run { $($run_body)* })*
            $($prune { $($prune_body)* })*
        );
    };

    (@table $(
        [$commands:ident $place:ident] $variant:ident {
            key: $key:ident $(as $id:literal)?,
            toml: $kind:ident,
            value: $shape:ident $(($ty:ty))? $(= $default:expr)?,
            $(parse: $parse:expr,)?
            $(below_file: $below:literal,)?
            help: $help:literal,
            $(clap: { $($setting:ident($($setting_value:expr),*)),* $(,)? } $(,)?)?
        }
    )*) => {
        /// One option of the command line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Opt {
            $($variant,)*
        }

        impl Opt {
            /// Every option, in the order of `--help`.
            pub const ALL: [Opt; [$(Opt::$variant),*].len()] = [$(Opt::$variant),*];

            /// The long option name with `-` replaced by `_`: the file key.
            pub fn name(self) -> &'static str {
                match self { $(Opt::$variant => stringify!($key),)* }
            }

            /// clap's id (the file key unless the table says otherwise).
            pub fn id(self) -> &'static str {
                match self { $(Opt::$variant => options!(@id $key $($id)?),)* }
            }

            /// The commands that have it.
            pub fn commands(self) -> &'static [CommandName] {
                match self { $(Opt::$variant => options!(@commands $commands),)* }
            }

            /// Options that configure the configuration itself are no file keys.
            pub fn in_file(self) -> bool {
                match self { $(Opt::$variant => options!(@in_file $place),)* }
            }

            /// What TOML type its value has in the file.
            pub fn kind(self) -> Kind {
                match self { $(Opt::$variant => Kind::$kind,)* }
            }

            /// The default as text, as `--help` shows it (none: unset).
            pub fn default(self) -> Option<&'static str> {
                match self { $(Opt::$variant => options!(@maybe $($default)?),)* }
            }

            /// The variable read after the file, before the default
            /// (`DOCKER_HOST` for `docker_host`).
            pub fn below_file(self) -> Option<&'static str> {
                match self { $(Opt::$variant => options!(@maybe $($below)?),)* }
            }

            /// The help line without the variables.
            fn help_text(self) -> &'static str {
                match self { $(Opt::$variant => $help,)* }
            }

            /// The clap argument of this option.
            pub(crate) fn arg(self) -> clap::Arg {
                match self {
                    $(Opt::$variant => {
                        // The value name is the key in capitals (as clap's derive
                        // names it) unless the table's clap settings name one.
                        let arg = clap::Arg::new(self.id())
                            .long(options!(@spell $key, false))
                            .value_name(options!(@spell $key, true))
                            .help(self.help());
                        let arg = options!(@clap arg, $shape [$($ty)?] [$($parse)?] [$($default)?]);
                        // An option with a variable below the file names its
                        // default in its help, after that variable.
                        arg $($(.$setting($($setting_value),*))*)?
                            .hide_default_value(self.below_file().is_some())
                    })*
                }
            }
        }

        impl $crate::merge::Merger<'_> {
            $(
                #[doc = concat!(
                    "The value of `", stringify!($key), "`, recorded for `--print-config`."
                )]
                pub fn $key(&mut self)
                    -> Result<options!(@value $shape $($ty)?), $crate::ConfigError>
                {
                    let file = options!(@file self $place $key);
                    options!(@read self, Opt::$variant, file, $shape [$($ty)?] [$($parse)?])
                }
            )*
        }
    };

    (@file_config $(
        $variant:ident { key: $key:ident $(as $id:literal)?, toml: $kind:ident, $($rest:tt)* }
    )*) => {
        /// The file's values, each with where it stands in the text: one
        /// field per file key of the table.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $(pub $key: Option<toml::Spanned<options!(@toml $kind)>>,)*
        }
    };

    (@id $key:ident) => { stringify!($key) };
    (@id $key:ident $id:literal) => { $id };

    (@commands all) => { &[CommandName::Run, CommandName::Prune, CommandName::Doctor] };
    (@commands run) => { &[CommandName::Run] };
    (@commands prune) => { &[CommandName::Prune] };

    (@in_file file) => { true };
    (@in_file cli) => { false };

    (@maybe) => { None };
    (@maybe $value:expr) => { Some($value) };

    (@toml Str) => { String };
    (@toml Int) => { i64 };
    (@toml IntOrStr) => { $crate::file::IntOrStr };
    (@toml Bool) => { bool };
    (@toml List) => { $crate::file::Strings };

    // `--min-age` and `MIN_AGE` from `min_age`, at compile time.
    (@spell $key:ident, $upper:expr) => {{
        const BYTES: [u8; stringify!($key).len()] =
            $crate::opt::declare::respell(stringify!($key), $upper);
        const SPELT: &str = match std::str::from_utf8(&BYTES) {
            Ok(spelt) => spelt,
            Err(_) => panic!("option keys are ASCII"),
        };
        SPELT
    }};

    (@value one $ty:ty) => { $ty };
    (@value choice $ty:ty) => { $ty };
    (@value switch) => { bool };
    (@value maybe $ty:ty) => { Option<$ty> };
    (@value list $ty:ty) => { Vec<$ty> };

    (@clap $arg:ident, one [$ty:ty] [$parse:expr] [$default:expr]) => {
        $arg.action(clap::ArgAction::Set).value_parser($parse).default_value($default)
    };
    (@clap $arg:ident, choice [$ty:ty] [] [$default:expr]) => {
        $arg.action(clap::ArgAction::Set)
            .value_parser(clap::builder::EnumValueParser::<$ty>::new())
            .default_value($default)
    };
    (@clap $arg:ident, switch [] [] []) => {
        $arg.action(clap::ArgAction::SetTrue).value_parser(clap::value_parser!(bool))
    };
    (@clap $arg:ident, maybe [$ty:ty] [$parse:expr] []) => {
        $arg.action(clap::ArgAction::Set).value_parser($parse)
    };
    (@clap $arg:ident, list [$ty:ty] [$parse:expr] [$default:expr]) => {
        $arg.action(clap::ArgAction::Append)
            .value_parser($parse)
            .value_delimiter($crate::merge::LIST_DELIMITER)
            .default_value($default)
    };

    (@file $merger:ident file $key:ident) => { $merger.file_texts(|f| f.$key.as_ref()) };
    (@file $merger:ident cli $key:ident) => { None };

    (@read $m:ident, $opt:expr, $file:ident, one [$ty:ty] [$parse:expr]) => {
        $m.one($opt, $file, $parse)
    };
    (@read $m:ident, $opt:expr, $file:ident, choice [$ty:ty] []) => {
        $m.one($opt, $file, $crate::cli::value_enum::<$ty>)
    };
    (@read $m:ident, $opt:expr, $file:ident, switch [] []) => {
        $m.one($opt, $file, $crate::cli::parse_bool)
    };
    (@read $m:ident, $opt:expr, $file:ident, maybe [$ty:ty] [$parse:expr]) => {
        $m.maybe($opt, $file, $parse)
    };
    (@read $m:ident, $opt:expr, $file:ident, list [$ty:ty] [$parse:expr]) => {
        $m.list($opt, $file, $parse)
    };
}

pub(super) use options;

/// `name` with `_` as `-` (a long flag), or in capitals (a value name):
/// `N` is `name.len()`, so a `const` holds the result.
pub(super) const fn respell<const N: usize>(name: &str, upper: bool) -> [u8; N] {
    let bytes = name.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = match bytes[i] {
            b'_' if !upper => b'-',
            byte if upper => byte.to_ascii_uppercase(),
            byte => byte,
        };
        i += 1;
    }
    out
}
