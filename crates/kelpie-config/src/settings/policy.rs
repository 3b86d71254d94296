//! How it runs, restarts and stops.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::engines::{
    carried, compose_exit_codes, compose_starts_every_service, deployment_exit_codes,
    deployment_restarts, kubernetes_stop_signal, RESTART_POLICY,
};
use super::{Export, OnRestart, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "instances",
        value: "number or `\"max\"`",
        default: "`1`",
        doc: "Number of processes. `\"max\"` and `0` mean one per CPU; `-N` means the number of \
            CPUs minus N (at least 1), so `-1` leaves one CPU free. At most 9999 (also for \
            `scale`).",
        flags: &["instances"],
        ts: Some("number | string"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "exec_mode",
        value: "`fork`, `fork_mode`, `cluster`, `cluster_mode`",
        default: "`fork`; `cluster` when `instances` is set (any value, flag or field) and the \
            interpreter is `node` or `bun`, as in PM2",
        doc: "How instances run. Both run one process per instance; in `cluster` mode they share \
            the app's listening sockets (see [Ports and cluster mode](#ports-and-cluster-mode)). \
            `cluster` works with any interpreter; apps other than Node need `port` or \
            `reuse_port` to share a port.",
        ts: Some("'fork' | 'cluster' | 'fork_mode' | 'cluster_mode'"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "autorestart",
        value: "boolean",
        default: "`true`",
        doc: "Restart the app when it exits on its own. `--no-autorestart` on `restart` or \
            `reload` (or on `start` of an app in the list) turns it off for the apps named, as \
            PM2's do, and it stays off (`save` keeps it); `restart` of the ecosystem file, or \
            `delete` then `start`, turns it back on.",
        flags: &["no-autorestart"],
        restart: OnRestart::Applied,
        ts: Some("boolean"),
        export: Export::Each {
            kubernetes: deployment_restarts,
            compose: carried,
        },
        ..OPTIONAL
    },
    Setting {
        name: "autostart",
        value: "boolean",
        default: "`true`",
        doc: "Start the app when registered; `false` registers it as stopped.",
        flags: &["no-autostart"],
        export: Export::Each {
            kubernetes: carried,
            compose: compose_starts_every_service,
        },
        ..OPTIONAL
    },
    Setting {
        name: "min_uptime",
        value: "duration",
        default: "`1000` ms",
        doc: "A run shorter than this counts as an unstable restart.",
        flags: &["min-uptime"],
        ts: Some("string | number"),
        export: Export::LeftOut(RESTART_POLICY),
        ..OPTIONAL
    },
    Setting {
        name: "max_restarts",
        value: "whole number ≥ 0",
        default: "`16`",
        doc: "Unstable restarts in a row before the app is marked errored.",
        flags: &["max-restarts"],
        ts: Some("number"),
        export: Export::LeftOut(RESTART_POLICY),
        ..OPTIONAL
    },
    Setting {
        name: "restart_delay",
        value: "duration",
        default: "`0`",
        doc: "Pause before each automatic restart.",
        flags: &["restart-delay"],
        ts: Some("number"),
        export: Export::LeftOut(RESTART_POLICY),
        ..OPTIONAL
    },
    Setting {
        name: "exp_backoff_restart_delay",
        value: "duration",
        default: "unset",
        doc: "Initial pause of an exponential backoff between restarts; overrides `restart_delay`.",
        flags: &["exp-backoff-restart-delay"],
        export: Export::LeftOut(RESTART_POLICY),
        ..OPTIONAL
    },
    Setting {
        name: "stop_exit_codes",
        value: "number or list of numbers",
        default: "`[]`",
        doc: "Exit codes after which the app is not restarted.",
        flags: &["stop-exit-codes"],
        export: Export::Each {
            kubernetes: deployment_exit_codes,
            compose: compose_exit_codes,
        },
        ..OPTIONAL
    },
    Setting {
        name: "kill_timeout",
        value: "duration",
        default: "`1600` ms",
        doc: "Time between the stop signal and SIGKILL.",
        flags: &["kill-timeout"],
        ts: Some("number"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "kill_signal",
        aliases: &["stop_signal"],
        value: "signal name",
        default: "`SIGINT`",
        doc: "Signal sent to stop the app. `TERM`, `sigterm` and `SIGTERM` are the same. Only \
            signals that terminate a process by default are accepted (`SIGINT`, `SIGTERM`, \
            `SIGQUIT`, `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGKILL`, `SIGABRT`, `SIGALRM`, …); \
            `SIGCONT`, `SIGSTOP`, `SIGCHLD` and the like are refused.",
        flags: &["kill-signal"],
        export: Export::Each {
            kubernetes: kubernetes_stop_signal,
            compose: carried,
        },
        ..OPTIONAL
    },
];
