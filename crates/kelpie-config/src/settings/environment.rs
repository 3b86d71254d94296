//! Its environment and its port.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::{Export, OnRestart, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "env",
        value: "object",
        default: "`{}`",
        doc: "Environment variables. Strings are used as is, numbers and booleans become their \
            text, `null` becomes `null`, nested objects and lists become JSON (like PM2). `jlist` \
            shows numbers and booleans with their type (`\"PORT\": 3000`), as PM2 does.",
        ts: Some("Record<string, string | number | boolean> | string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "env_<profile>",
        family: true,
        value: "object",
        default: "—",
        doc: "Merged over `env` when started with `--env <profile>`. Validated even when not \
            selected.",
        // Resolved into `env` when the file is loaded: an export carries `env`.
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "env_file",
        value: "string or list",
        default: "—",
        doc: "Dotenv files (`NAME=value` lines) whose variables the app gets, under its `env` \
            ([below](#env_file-dotenv-files)). Not in PM2. Flag: `--env-file PATH` (repeatable).",
        flags: &["env-file"],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "filter_env",
        value: "boolean, string or list",
        default: "`false`",
        doc: "Inherited (shell) variables the app does not get: `true` for none of them, a string \
            for the variable of that exact name, a list for every variable whose name contains \
            one of its texts (as PM2). Applies to the environment of every start, `restart \
            --update-env` included; the app's own `env` is never filtered. Flag: `--filter-env \
            TEXT` (repeatable, a list). PM2's `true` filters nothing (it reads a length from it); \
            Kelpie's does what its documentation says.",
        flags: &["filter-env"],
        restart: OnRestart::Kept,
        // A container inherits no shell: what `filter_env` leaves out is never there to begin with.
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "port",
        value: "number 1–65535, or `host:port`, `[v6]:port`, `unix:/path`, `/path`",
        default: "—",
        doc: "Address Kelpie listens on for the app, shared by its instances. Also sets `PORT` \
            (the port number, or the socket's path), overriding `env.PORT`. A Node server takes \
            the socket unchanged, also below npm or a command line (`npm start`); see [Ports and \
            cluster mode](#ports-and-cluster-mode) and [cluster.md](cluster.md).",
        flags: &["port"],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "reuse_port",
        value: "boolean",
        default: "`false`",
        doc: "The instances bind the port themselves with `SO_REUSEPORT`; Kelpie does not listen \
            and `port` only sets `PORT`. TCP only. Kelpie only.",
        flags: &["reuse-port"],
        export: Export::Carried,
        ..OPTIONAL
    },
];
