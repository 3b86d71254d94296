//! Every app setting, declared once: one row per field an app object may hold, with what every
//! other part of Kelpie needs to know of it (uv's `#[option]` metadata is the model). The rows
//! are in `settings/`, one file per group of fields, in docs/configuration.md's order.
//!
//! Made from the table: the fields Kelpie supports and PM2's other spellings of them
//! (`fields.rs`); the start flags `restart` and `reload` accept with a note (the CLI's
//! `StartOnlyFlags`); what `kelpie export` does with each field; docs/configuration.md's field
//! table and the typed fields of the Node package's `StartOptions` (`npm/kelpie/lib/index.d.ts`),
//! both written from [`reference_table`] and [`typescript_fields`] and compared with them by
//! `settings/tests.rs`. Checked against it: the flags of [`ScriptOptions`] (clap's derive needs
//! a struct: each flag a row names must set that row's field, and no other flag may exist), the
//! readers of `readers/` (`RawApp::get` refuses a name no row has; a test fails on a row no reader
//! reads), the flags `restart` takes (the CLI's tests) and the flag tables of the reference.
//!
//! Adding a setting: its row in `settings/`; its flag in `options.rs`, if it has one; its reader
//! in `readers/` and its field in `kelpie_core::AppSpec`; then
//! `KELPIE_UPDATE_GENERATED=1 cargo test -p kelpie-config --lib settings` writes its reference
//! row (and its TypeScript type, if it has one). A test names whatever is missing.
//!
//! [`ScriptOptions`]: crate::ScriptOptions

mod engines;
mod environment;
mod limits;
mod log_files;
mod policy;
mod program;
mod running;
#[cfg(test)]
mod tests;
mod triggers;

use kelpie_core::AppSpec;

/// One setting: a field of an app object, or a family of fields (`env_<profile>`).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The field's name in a file (snake_case; every field is read in camelCase too).
    pub name: &'static str,
    /// PM2's other names of the field, read as it.
    pub aliases: &'static [&'static str],
    /// A family of fields (`env_<profile>`) rather than one name: documented with the fields,
    /// but no field name of its own (`normalize.rs` reads it).
    pub family: bool,
    /// What a file may write there (the reference's "Type" column, Markdown).
    pub value: &'static str,
    /// What it is when not written (the reference's "Default" column, Markdown).
    pub default: &'static str,
    /// What it does (the reference's "Meaning" column, Markdown).
    pub doc: &'static str,
    /// The long spellings of the `kelpie start` flags that set it (without `--`; visible
    /// aliases included); none for a field only a file sets.
    pub flags: &'static [&'static str],
    /// What `restart` and `reload` do with those flags.
    pub restart: OnRestart,
    /// Its type in the Node package's `StartOptions`, for the fields typed there (the others
    /// are `unknown`, through the interface's index signature).
    pub ts: Option<&'static str>,
    /// How `kelpie export` carries it into a container engine's objects.
    pub export: Export,
}

/// What `restart` and `reload` do with a setting's start flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestart {
    /// Not taken (PM2's options are removed with a note: the CLI's `other_verbs.rs`).
    NotTaken,
    /// Accepted with a one-line note, and not applied: the app keeps what it was started with
    /// (PM2's restart takes these flags).
    Kept,
    /// Applied to the app before it restarts (a `Request::Change`), as PM2's restart does.
    Applied,
}

/// Why a container engine leaves a setting out for this app; `None` when it carries it over.
pub type Rule = fn(&AppSpec) -> Option<&'static str>;

/// What `kelpie export` does with a setting the file wrote.
#[derive(Debug, Clone, Copy)]
pub enum Export {
    /// Both engines carry it over.
    Carried,
    /// Both engines leave it out, for this reason.
    LeftOut(&'static str),
    /// Both engines carry it over or not by the same rule.
    Rule(Rule),
    /// Each engine has its own rule.
    Each {
        /// Kubernetes' rule.
        kubernetes: Rule,
        /// Compose's rule.
        compose: Rule,
    },
    /// Not said (the base of a row, [`OPTIONAL`]): a test fails on a row that leaves it so.
    Undecided,
}

/// A container engine of `kelpie export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Kubernetes objects.
    Kubernetes,
    /// A Compose file.
    Compose,
}

/// What an exporter says of a setting it cannot carry over and has no rule for.
pub const NO_RULE: &str = "Kelpie does not know how to carry it over";

impl Export {
    /// Why `engine` leaves the setting out for `app`; `None` when it carries it over.
    pub fn left_out(&self, engine: Engine, app: &AppSpec) -> Option<&'static str> {
        match (*self, engine) {
            (Export::Carried, _) => None,
            (Export::LeftOut(why), _) => Some(why),
            (Export::Rule(rule), _)
            | (
                Export::Each {
                    kubernetes: rule, ..
                },
                Engine::Kubernetes,
            )
            | (Export::Each { compose: rule, .. }, Engine::Compose) => rule(app),
            (Export::Undecided, _) => Some(NO_RULE),
        }
    }
}

/// The base of every row: what a row that does not say has (no alias, no flag, not taken by
/// `restart`, not typed in the Node package). A row always says its name, value, default, doc
/// and export (`settings/tests.rs` fails on one that does not).
const OPTIONAL: Setting = Setting {
    name: "",
    aliases: &[],
    family: false,
    value: "",
    default: "",
    doc: "",
    flags: &[],
    restart: OnRestart::NotTaken,
    ts: None,
    export: Export::Undecided,
};

/// PM2 fields that are valid in PM2 but not implemented by Kelpie yet: accepted with a warning so
/// existing ecosystem files keep working (listed in docs/configuration.md, "PM2 fields not
/// supported yet"). A field Kelpie comes to support leaves this list for a row of the table.
pub(crate) const NOT_SUPPORTED: &[&str] = &[
    "watch_options",
    "treekill",
    "username",
    "post_update",
    "force",
    "execute_command",
    "automation",
    "trace",
    "disable_trace",
    "v8",
    "event_loop_inspector",
    "deep_monitoring",
    "io",
    "write",
    "windows_hide",
    "kill_retry_time",
    "name_prefix",
    "install_url",
];

/// The rows, by group, in docs/configuration.md's order.
const GROUPS: &[&[Setting]] = &[
    program::ROWS,
    environment::ROWS,
    policy::ROWS,
    log_files::ROWS,
    limits::ROWS,
    triggers::ROWS,
    running::ROWS,
];

/// Every row, in docs/configuration.md's order.
pub fn all() -> impl Iterator<Item = &'static Setting> {
    GROUPS.iter().flat_map(|rows| rows.iter())
}

/// The fields (every row but the families), in docs/configuration.md's order.
pub fn fields() -> impl Iterator<Item = &'static Setting> {
    all().filter(|s| !s.family)
}

/// The field of this (canonical) name.
pub fn find(name: &str) -> Option<&'static Setting> {
    fields().find(|s| s.name == name)
}

/// PM2's other names of fields, each with the name it stands for.
pub(crate) fn aliases() -> impl Iterator<Item = (&'static str, &'static str)> {
    fields().flat_map(|s| s.aliases.iter().map(move |alias| (*alias, s.name)))
}

/// The flags (long spellings, without `--`) `restart` and `reload` accept with a note, without
/// applying them: the flags of the rows that say [`OnRestart::Kept`].
pub fn kept_on_restart() -> impl Iterator<Item = &'static str> {
    fields()
        .filter(|s| s.restart == OnRestart::Kept)
        .flat_map(|s| s.flags.iter().copied())
}

/// docs/configuration.md's field table, header included, one line each, from the rows.
pub fn reference_table() -> String {
    let mut table =
        String::from("| Field (aliases) | Type | Default | Meaning |\n|---|---|---|---|\n");
    for s in all() {
        let aliases: Vec<String> = s.aliases.iter().map(|a| format!("`{a}`")).collect();
        let field = if aliases.is_empty() {
            format!("`{}`", s.name)
        } else {
            format!("`{}` ({})", s.name, aliases.join(", "))
        };
        table.push_str(&format!(
            "| {field} | {} | {} | {} |\n",
            s.value, s.default, s.doc
        ));
    }
    table
}

/// The typed fields of the Node package's `StartOptions`, one line each as index.d.ts writes
/// them (indented for the interface): each typed field under its name and PM2's other names.
pub fn typescript_fields() -> String {
    let mut lines = String::new();
    for s in fields() {
        let Some(ts) = s.ts else { continue };
        for name in std::iter::once(&s.name).chain(s.aliases) {
            lines.push_str(&format!("    {name}?: {ts};\n"));
        }
    }
    lines
}
