//! What it reacts to besides its exits.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::engines::DEVELOPMENT;
use super::{Export, OnRestart, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "cron_restart",
        aliases: &["cron"],
        value: "cron expression",
        default: "unset",
        doc:
            "Restart the app on a schedule; with `autorestart: false`, a periodic job run at each \
            tick. See [`cron_restart`](#cron_restart-and-cron_timezone).",
        flags: &["cron-restart", "cron"],
        ts: Some("string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "cron_timezone",
        aliases: &["cron_tz"],
        value: "time zone name",
        default: "local time",
        doc: "Time zone `cron_restart` is read in. Kelpie only.",
        flags: &["cron-timezone", "cron-tz"],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "watch",
        value: "boolean, path or list of paths",
        default: "`false`",
        doc: "Restart the app when files change. See \
            [`watch`](#watch-ignore_watch-and-watch_delay).",
        flags: &["watch"],
        restart: OnRestart::Applied,
        ts: Some("boolean | string | string[]"),
        export: Export::LeftOut(DEVELOPMENT),
        ..OPTIONAL
    },
    Setting {
        name: "ignore_watch",
        value: "glob or list of globs",
        default: "`[]`",
        doc: "Paths not to watch.",
        flags: &["ignore-watch"],
        ts: Some("string | string[]"),
        export: Export::LeftOut(DEVELOPMENT),
        ..OPTIONAL
    },
    Setting {
        name: "watch_delay",
        value: "duration",
        default: "`500` ms",
        doc: "Quiet time after the last change before the restart.",
        flags: &["watch-delay"],
        export: Export::LeftOut(DEVELOPMENT),
        ..OPTIONAL
    },
    Setting {
        name: "health_check",
        value: "object",
        default: "unset",
        doc: "Probe each instance and restart it when it fails. See \
            [`health_check`](#health_check). Kelpie only.",
        flags: &[
            "health-http",
            "health-tcp",
            "health-exec",
            "health-status",
            "health-interval",
            "health-timeout",
            "health-failures",
            "health-start-period",
        ],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "http",
        value: "object",
        default: "unset",
        doc: "The HTTP health check of PM2 production templates: `{ port, path, expect_status, \
            interval }`. See [The `http` block](#the-http-block). Not read by PM2.",
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "watchdog",
        value: "duration; **a bare number is seconds**",
        default: "unset",
        doc: "Restart an instance that stops sending `WATCHDOG=1`. See [`watchdog`](#watchdog). \
            Kelpie only.",
        flags: &["watchdog"],
        export: Export::LeftOut(
            "there is no sd_notify watchdog in a container; liveness comes from the probes",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "depends_on",
        value: "app name or list",
        default: "`[]`",
        doc:
            "Apps that must be up before this one starts. See [`depends_on`](#depends_on). Kelpie \
            only.",
        flags: &["depends-on"],
        export: Export::Carried,
        ..OPTIONAL
    },
];
