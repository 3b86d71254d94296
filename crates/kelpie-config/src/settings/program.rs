//! What the app runs, and its name.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::{Export, OnRestart, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "name",
        value: "string",
        default: "script file name without extension",
        doc: "Name used to target the app. Must be unique within a file.",
        flags: &["name"],
        restart: OnRestart::Applied,
        ts: Some("string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "script",
        aliases: &["exec", "cmd", "command"],
        value: "string, **required**",
        default: "—",
        doc: "What to run; see [Scripts and interpreters](#scripts-and-interpreters).",
        ts: Some("string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "args",
        value: "string or list",
        default: "`[]`",
        doc: "Arguments after the script. A string is split like a shell would (quotes respected, \
            no expansion). List items may be strings, numbers or booleans.",
        ts: Some("string | string[]"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "interpreter",
        aliases: &["exec_interpreter"],
        value: "string",
        default: "by extension",
        doc: "Program that runs the script. `none` runs the script itself.",
        flags: &["interpreter"],
        ts: Some("string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "interpreter_args",
        aliases: &["node_args"],
        value: "string or list",
        default: "`[]`",
        doc: "Arguments for the interpreter, placed before the script.",
        flags: &["interpreter-args", "node-args"],
        restart: OnRestart::Applied,
        ts: Some("string | string[]"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "disable_source_map_support",
        value: "boolean",
        default: "`false`",
        doc: "Run a Node app without source maps. As PM2 7 does, Kelpie runs every Node app \
            (interpreter `node`, in fork and cluster mode) with Node's `--enable-source-maps`, so \
            the stack traces of a compiled app (TypeScript with `//# sourceMappingURL=`) name its \
            original files and lines. The flag is added to the command line only: `node_args` \
            stay as given, and it is not added when they already hold `--enable-source-maps` or \
            `--no-enable-source-maps`. PM2's `source_map_support: true` is accepted and asks for \
            the default; it does not win over `disable_source_map_support: true`.",
        flags: &["disable-source-map-support"],
        restart: OnRestart::Kept,
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "source_map_support",
        value: "boolean",
        default: "`true`",
        doc: "PM2's field: `true` asks for the default (source maps on); it does not win over \
            `disable_source_map_support: true`. `false` has no effect (use \
            `disable_source_map_support`). Flag: `--source-map-support`.",
        flags: &["source-map-support"],
        restart: OnRestart::Kept,
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "cwd",
        value: "string",
        default: "the file's directory",
        doc: "Working directory. Relative paths are resolved against the file's directory. `~` is \
            expanded. Must exist.",
        flags: &["cwd"],
        ts: Some("string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "namespace",
        value: "string",
        default: "`default`",
        doc: "Group of apps that can be targeted together.",
        flags: &["namespace"],
        ts: Some("string"),
        export: Export::LeftOut(
            "Kelpie's namespaces group apps for its commands; the objects carry only the app's \
            name",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "append_env_to_name",
        value: "boolean",
        default: "`false`",
        doc:
            "With `--env <env>`, the app is named `<name>-<env>` (as in PM2); without `--env`, no \
            effect. `--only` and `depends_on` use the names as written.",
        export: Export::Carried,
        ..OPTIONAL
    },
];
