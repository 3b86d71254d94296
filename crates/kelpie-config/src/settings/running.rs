//! Readiness, stopping by message, the instances' variables, what Kelpie shows.
//!
//! Rows of the settings table (`super::SETTINGS`), in docs/configuration.md's order.

use super::engines::{carried, one_replica_only, NODE_AGENT};
use super::{Export, OnRestart, Setting, OPTIONAL};

pub(super) const ROWS: &[Setting] = &[
    Setting {
        name: "wait_ready",
        value: "boolean",
        default: "`false`",
        doc: "Wait for an explicit ready signal from each starting instance: \
            `process.send('ready')` (Node) or `READY=1` on `NOTIFY_SOCKET` (any language).",
        flags: &["wait-ready"],
        ts: Some("boolean"),
        export: Export::Each {
            kubernetes: carried,
            compose: |_| {
                Some("Compose has no readiness signal; `depends_on` waits for the health check")
            },
        },
        ..OPTIONAL
    },
    Setting {
        name: "ready_pattern",
        value: "regular expression",
        default: "unset",
        doc: "A line of output matching this means the instance is ready. Checked when loaded \
            (Rust `regex` syntax). Kelpie only.",
        flags: &["ready-pattern"],
        export: Export::LeftOut(
            "readiness from an output line has no equivalent; the probes decide",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "listen_timeout",
        value: "duration",
        default: "`3000` ms",
        doc: "How long a starting instance may take to become ready (see \
            [cluster.md](cluster.md#readiness) for what ready means; a Node app is ready at least \
            once its main module has run, so `start` answers then). A reload waits for a new \
            process that still runs up to 30 s, or this when longer \
            ([cluster.md](cluster.md#reload)).",
        flags: &["listen-timeout"],
        ts: Some("number"),
        export: Export::Each {
            kubernetes: carried,
            compose: |_| {
                Some("Compose has no start timeout; the health check's `start_period` gives the app time")
            },
        },
        ..OPTIONAL
    },
    Setting {
        name: "shutdown_with_message",
        value: "boolean",
        default: "`false`",
        doc: "Stop the app by sending `shutdown` over the Node IPC channel instead of \
            `kill_signal`. As in PM2, `PM2_KILL_USE_MESSAGE=true` in the daemon's environment \
            (the command that starts it) does this for every Node app.",
        flags: &["shutdown-with-message"],
        export: Export::LeftOut(
            "there is no Node IPC channel in a container; the app gets the stop signal",
        ),
        ..OPTIONAL
    },
    Setting {
        name: "instance_var",
        value: "variable name",
        default: "`NODE_APP_INSTANCE`",
        doc:
            "Variable holding the instance's index (0, 1, …); `jlist` shows it under this name in \
            `pm2_env`, as PM2 does.",
        flags: &["instance-var"],
        // The exporters set it with one replica and warn with several, written or not: code that
        // runs only in instance 0 is worth a word even when the file keeps PM2's default name.
        export: Export::Carried,
        ..OPTIONAL
    },
    Setting {
        name: "increment_var",
        value: "variable name",
        default: "unset",
        doc: "A variable of `env` that each instance gets incremented by its index (`PORT: 8000` \
            gives 8000, 8001, …); `jlist` shows the instance's value as a number, in `pm2_env` \
            and its `env`, as PM2 does.",
        export: Export::Rule(one_replica_only),
        ..OPTIONAL
    },
    Setting {
        name: "vizion",
        value: "boolean",
        default: "`true`",
        doc: "Show the git metadata of the app's directory (`cwd`), as PM2's \"vizion\": `jlist` \
            and `prettylist` carry `pm2_env.vizion` and, when the directory is in a git \
            repository, `pm2_env.versioning` (`type`, `url`, `repo_path`, `branch`, `revision`, \
            `update_time`, `remotes`, `remote`); `describe` shows a \"Revision control\" section. \
            Read from the repository's files (no `git` needed) each time the list is asked for, \
            so it always tells the commit checked out now. `false` (or `--no-vizion`) leaves it \
            out. See \
            [differences-from-pm2.md](differences-from-pm2.md#commands-targets-and-listings).",
        flags: &["no-vizion"],
        restart: OnRestart::Kept,
        export: Export::LeftOut(NODE_AGENT),
        ..OPTIONAL
    },
    Setting {
        name: "pmx",
        value: "boolean",
        default: "`true`",
        doc: "A Node app gets the runtime metrics PM2's agent gives every app (`Heap Size`, `Used \
            Heap Size`, `Heap Usage`, `Event Loop Latency`, `Event Loop Latency p95`, `Active \
            handles`, `Active requests`, in `pm2_env.axm_monitor`; see \
            [observability.md](observability.md)) from Kelpie's Node shim, unless it uses \
            `@pm2/io`, which sends its own. `false` (or `--no-pmx`) turns them off.",
        flags: &["no-pmx"],
        restart: OnRestart::Kept,
        export: Export::LeftOut(NODE_AGENT),
        ..OPTIONAL
    },
];
