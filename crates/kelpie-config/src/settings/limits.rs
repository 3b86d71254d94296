//! Its limits and the account it runs as.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::{Export, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "max_memory_restart",
        value: "size",
        default: "unset",
        doc: "Restart the app gracefully when its process tree's resident memory goes over this. \
            See [`max_memory_restart`](#max_memory_restart).",
        flags: &["max-memory-restart"],
        ts: Some("string | number"),
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "max_cpu",
        value: "percent of one core",
        default: "unset",
        doc: "Restart the app when its process tree uses more CPU than this for `max_cpu_window`. \
            See [`max_cpu`](#max_cpu-and-max_cpu_window). Kelpie only.",
        flags: &["max-cpu"],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "max_cpu_window",
        value: "duration ≥ 1 s",
        default: "`10s`",
        doc: "How long CPU use must stay over `max_cpu`. Kelpie only.",
        flags: &["max-cpu-window"],
        export: Export::LeftOut(
            "a CPU limit throttles at once; there is no restart after a window over the limit",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "max_processes",
        value: "whole number 1 to 4194304",
        default: "unset",
        doc: "At most this many processes and threads in the app at once (cgroup `pids.max`): a \
            fork bomb stays inside it. See [`max_processes`](#max_processes). Kelpie only.",
        flags: &["max-processes"],
        export: Export::LeftOut(
            "the number of processes of a container is the node's setting (kubelet `podPidsLimit`, \
            Docker's `pids_limit` per service is not in the Compose file Kelpie writes)",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "nice",
        value: "whole number -20 to 19",
        default: "unset",
        doc: "Scheduling priority of the app's processes. See [`nice`](#nice). Kelpie only.",
        flags: &["nice"],
        export: Export::LeftOut(
            "a container's share of CPU comes from its CPU request, not its niceness",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "uid",
        aliases: &["user"],
        value: "name or number",
        default: "unset",
        doc: "Run the app as this user. See [`uid` and `gid`](#uid-and-gid).",
        flags: &["uid", "user"],
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "gid",
        aliases: &["group"],
        value: "name or number",
        default: "the user's group",
        doc: "Run the app with this group.",
        flags: &["gid", "group"],
        export: Export::Carried,
        ..OPTIONAL
    },
];
