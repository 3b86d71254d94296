//! A service that runs one app under `kelpie runtime`, for the apps systemd alone cannot run
//! unchanged: a Node server whose port Kelpie owns, and a Node cluster app of several
//! instances. Under Kelpie their code calls `listen(8080)` and Kelpie's preloaded shim hands
//! every instance the one shared socket; under socket activation the app would have to take
//! fd 3 itself, and a template's instances would each fail with EADDRINUSE. `kelpie runtime`
//! brings the shared port and the shim, and with them everything else Kelpie does for the app
//! (restarts, memory and CPU limits, cron, health checks, watch, log files), so the unit says
//! only how systemd starts and stops the runtime.

use super::super::duration;
use super::command::{exec_arg, PROGRAMS_RUNNING_NODE};
use super::unit::dependency_lines;
use super::{Unit, Units};
use kelpie_core::AppSpec;
use std::fmt::Write as _;

/// Time the runtime gets beyond the app's own `kill_timeout` to stop it and exit, before
/// systemd kills what is left.
const STOP_MARGIN_MS: u64 = 5_000;

/// Whether the app needs Kelpie's shim to share its port, so its unit runs `kelpie runtime`:
/// a Node app (by interpreter, or a command line starting with a Node launcher such as `npm`)
/// whose port Kelpie owns, or a Node cluster app of several instances (the ports its code
/// listens on are shared).
pub(super) fn needs_kelpie_runtime(app: &AppSpec) -> bool {
    let node_program = app.command_line().first().is_some_and(|program| {
        let base = program.rsplit('/').next().unwrap_or(program);
        PROGRAMS_RUNNING_NODE.contains(&base)
    });
    let owned_port = app.listen.is_some() && (app.runs_on_node() || node_program);
    owned_port || (app.shares_node_ports() && app.instances > 1)
}

/// `kelpie-<name>.service` running `kelpie runtime <file> --only <name> [--env <profile>]` with
/// a home of its own in systemd's state directory.
pub(super) fn runtime_service(
    app: &AppSpec,
    unit: &Unit,
    units: &Units,
    kelpie: &str,
    text: &mut String,
    warnings: &mut Vec<String>,
) {
    let name = &app.name;
    let file = app.source_file.as_deref().unwrap_or("ecosystem.config.js");
    let state = &unit.base;
    let _ = writeln!(
        text,
        "# Runs under `kelpie runtime`, which reads {file} at each start: the app's instances share\n# its port through Kelpie's shim, unchanged, as under `kelpie start`. Kelpie applies the app's\n# restarts, limits, schedule, health checks and log files; its output goes to the journal\n# (`journalctl -u {state}`). `KELPIE_HOME=/var/lib/{state} kelpie list` shows its instances\n# (a user unit's home is under ~/.local/state)."
    );
    text.push_str("\n[Unit]\n");
    let _ = writeln!(text, "Description=Kelpie app {name} (kelpie runtime)");
    dependency_lines(app, units, &[], text, warnings);

    text.push_str("\n[Service]\nType=simple\n");
    let mut argv = vec![kelpie.to_string(), "runtime".into(), file.to_string()];
    argv.extend(["--only".into(), name.clone()]);
    if let Some(profile) = &app.env_profile {
        argv.extend(["--env".into(), profile.clone()]);
    }
    let command: Vec<String> = argv.iter().map(|a| exec_arg(a)).collect();
    let _ = writeln!(text, "ExecStart={}", command.join(" "));
    if let Some(dir) = std::path::Path::new(file).parent() {
        let _ = writeln!(
            text,
            "WorkingDirectory={}",
            exec_arg(&dir.display().to_string())
        );
    }
    text.push_str("# Kelpie's home (its state, sockets and log files) for this app alone.\n");
    let _ = writeln!(text, "StateDirectory={state}");
    let _ = writeln!(text, "Environment=\"KELPIE_HOME=%S/{state}\"");
    text.push_str(
        "# The runtime restarts the app itself; systemd restarts the runtime if it fails.\n",
    );
    text.push_str("Restart=on-failure\nRestartSec=1s\n");
    text.push_str(
        "# The runtime stops the app as Kelpie does (kill_signal, then kill_timeout), then exits;\n# only what is left after that is killed.\n",
    );
    text.push_str("KillMode=mixed\nKillSignal=SIGTERM\n");
    let _ = writeln!(
        text,
        "TimeoutStopSec={}",
        duration(app.kill_timeout_ms + STOP_MARGIN_MS)
    );
    if app.user.is_some() || app.group.is_some() {
        text.push_str("# uid/gid: the runtime starts as root and runs the app as the file says.\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::{ExecMode, ListenAddress};

    fn app(interpreter: Option<&str>, script: &str, instances: u32, port: bool) -> AppSpec {
        AppSpec {
            name: "web".into(),
            script: script.into(),
            interpreter: interpreter.map(str::to_string),
            instances,
            exec_mode: if instances > 1 {
                ExecMode::Cluster
            } else {
                ExecMode::Fork
            },
            listen: port.then_some(ListenAddress::Tcp {
                host: None,
                port: 8080,
            }),
            ..AppSpec::default()
        }
    }

    #[test]
    fn only_node_servers_sharing_a_port_need_the_runtime() {
        // Node (by interpreter or launcher) on a Kelpie-owned port: the shim takes `listen()`.
        assert!(needs_kelpie_runtime(&app(Some("node"), "/a/s.js", 1, true)));
        assert!(needs_kelpie_runtime(&app(None, "/usr/bin/npm", 1, true)));
        // A Node cluster of several instances shares the ports its code listens on.
        assert!(needs_kelpie_runtime(&app(
            Some("node"),
            "/a/s.js",
            2,
            false
        )));
        // Others take systemd's socket (fd 3) as they take Kelpie's, or need no shared port.
        assert!(!needs_kelpie_runtime(&app(
            Some("python3"),
            "/a/s.py",
            2,
            true
        )));
        assert!(!needs_kelpie_runtime(&app(
            Some("node"),
            "/a/s.js",
            1,
            false
        )));
    }
}
