//! Its logs.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::engines::LOGS;
use super::{Export, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "out_file",
        aliases: &["out", "output", "out_log"],
        value: "path",
        default: "`<name>-out.log` in Kelpie's log directory",
        doc: "Where stdout goes. Relative to `cwd`; `~` is expanded. `/dev/null` or `NULL` \
            discards it.",
        flags: &["output"],
        ts: Some("string"),
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "error_file",
        aliases: &["error", "err", "err_file", "err_log"],
        value: "path",
        default: "`<name>-error.log` in Kelpie's log directory",
        doc: "Where stderr goes. Relative to `cwd`; `~` is expanded. `/dev/null` or `NULL` \
            discards it.",
        flags: &["error"],
        ts: Some("string"),
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "pid_file",
        aliases: &["pid"],
        value: "path",
        default: "unset",
        doc: "Each instance's pid is written there (the number alone, mode 0644) while it runs, \
            replaced at each restart and removed when it stops, for the tools that read pid \
            files. As PM2 names it: a path ending in `.pid` gets the instance's id (`api.pid` → \
            `api-0.pid`, `api-1.pid`..., even for one instance in fork mode); another path is \
            used as it is. Relative to `cwd`. A path that is an existing directory (`pid: \
            \"./data/logs/\"`) is not written: as with PM2, whose write fails there (`EISDIR`), \
            the app runs without a pid file, and the daemon's log says why (`jlist`'s \
            `pm_pid_path` shows the directory, as PM2's does). PM2 also writes one per app under \
            `~/.pm2/pids` unasked; Kelpie only where asked (`kelpie pid <app>` prints them).",
        flags: &["pid"],
        export: Export::LeftOut(
            "the app is the container's main process; its pid is not written to a file",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "merge_logs",
        aliases: &["combine_logs"],
        value: "boolean",
        default: "`false`",
        doc: "One log file for all instances instead of a `-<id>` suffix per instance. As PM2 \
            names them, the out, error and combined files of a cluster app, or of an app that \
            sets `instances` (even `1`, even in fork mode), get the `-<id>` suffix \
            (`api-out-0.log`) unless `merge_logs`; an app that sets neither writes `api-out.log`.",
        flags: &["merge-logs"],
        ts: Some("boolean"),
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_file",
        aliases: &["log"],
        value: "path or boolean",
        default: "unset",
        doc: "A combined file with stdout and stderr together, in addition to `out_file` and \
            `error_file` (as in PM2). `true` means `<name>.log` in Kelpie's log directory; \
            `false` means none. A path is resolved like `out_file`.",
        flags: &["log"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_date_format",
        value: "string",
        default: "unset",
        doc:
            "Prefix each line with the time in this dayjs-style format, e.g. `YYYY-MM-DD HH:mm:ss \
            Z` (PM2's format strings).",
        flags: &["log-date-format"],
        ts: Some("string"),
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "time",
        value: "boolean",
        default: "`false`",
        doc: "`true` sets `log_date_format` to `YYYY-MM-DDTHH:mm:ss`, replacing a custom one (as \
            in PM2). `false` changes nothing.",
        flags: &["time"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_type",
        value: "`raw` or `json`",
        default: "`raw`",
        doc: "`json` writes one JSON object per line (`message`, `timestamp`, `type`, \
            `process_id`, `app_name`). Another string (`format`, seen in real files) writes raw \
            lines, as PM2 does, with a warning.",
        flags: &["log-type"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "disable_logs",
        value: "boolean",
        default: "`false`",
        doc: "Discard the app's output: no log files, nothing kept for `kelpie logs`.",
        flags: &["disable-logs"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_max_size",
        value: "size",
        default: "from `kelpie.toml`, else `10M`",
        doc: "Rotate a log file when it reaches this size. `0` means never by size. Kelpie only.",
        flags: &["log-max-size"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_retain",
        value: "whole number ≥ 0",
        default: "from `kelpie.toml`, else `10`",
        doc: "Rotated files kept per log file; older ones are deleted. Kelpie only.",
        flags: &["log-retain"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_compress",
        value: "boolean",
        default: "from `kelpie.toml`, else `true`",
        doc: "Gzip rotated files. Kelpie only.",
        flags: &["no-log-compress"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
    Setting {
        name: "log_rotate_interval",
        value: "`daily`, `hourly`, `never` or duration",
        default: "from `kelpie.toml`, else `daily`",
        doc: "Rotate at each boundary of this period in local time (`daily` is at midnight). \
            `never` or `0` means never by time; otherwise at least 1 minute. Kelpie only.",
        flags: &["log-rotate-interval"],
        export: Export::LeftOut(LOGS),
        ..OPTIONAL
    },
];
