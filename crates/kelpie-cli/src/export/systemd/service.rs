//! The service's `[Service]` section: type, command, environment, restart policy, limits,
//! watchdog and output.

use super::super::duration;
use super::command::{env_escape, exec_arg, exec_argv, valid_env_name};
use super::output::log_lines;
use super::{PathLookup, Unit};
use kelpie_core::AppSpec;
use std::fmt::Write as _;

/// The service's `[Service]` section: type, command, environment, restart policy, limits,
/// watchdog and output. The app's secret variables go to the text returned, the
/// `EnvironmentFile=` at `env_path` (written 0600), not into the unit (0644, and shown by
/// `systemctl show` to every user).
pub(super) fn service_section(
    app: &AppSpec,
    unit: &Unit,
    lookup: &PathLookup,
    env_path: &str,
    text: &mut String,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let name = &app.name;
    text.push_str("\n[Service]\n");
    type_lines(app, text, warnings);
    let argv = exec_argv(app, lookup, warnings);
    let _ = writeln!(
        text,
        "ExecStart={}",
        argv.iter()
            .map(|a| exec_arg(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(text, "WorkingDirectory={}", exec_arg(&app.cwd));
    let secrets = environment_lines(app, unit, env_path, text, warnings);
    restart_lines(app, text);
    limit_lines(app, text, warnings);
    if let Some(ms) = app.watchdog_ms {
        let _ = writeln!(text, "WatchdogSec={}", duration(ms));
    }
    log_lines(app, text, warnings);
    if app.health_check.is_some() {
        text.push_str(
            "# health_check is not exported: systemd has no probes (the app can use WatchdogSec=).\n",
        );
        warnings.push(format!(
            "app `{name}`: field `health_check` is not exported: systemd has no health probes (the app can use the watchdog)"
        ));
    }
    secrets
}

/// `Type=`: oneshot for a periodic job (started by its timer, done when it exits), notify when
/// the app tells readiness or feeds a watchdog, else simple.
fn type_lines(app: &AppSpec, text: &mut String, warnings: &mut Vec<String>) {
    let name = &app.name;
    if app.is_periodic_job() {
        text.push_str("Type=oneshot\n");
        if app.wait_ready || app.watchdog_ms.is_some() {
            warnings.push(format!(
                "app `{name}`: fields `wait_ready` and `watchdog` are not exported for a periodic job: its oneshot service is done when it exits"
            ));
        }
        return;
    }
    let notify = app.wait_ready || app.watchdog_ms.is_some();
    let _ = writeln!(text, "Type={}", if notify { "notify" } else { "simple" });
    if notify {
        // Kelpie takes notifications from any process of the app (a shell wrapper's child).
        text.push_str("NotifyAccess=all\n");
        let _ = writeln!(text, "TimeoutStartSec={}", duration(app.listen_timeout_ms));
        if !app.wait_ready {
            warnings.push(format!(
                "app `{name}`: field `watchdog`: the unit is Type=notify, so the app must send READY=1 as well as WATCHDOG=1, and the watchdog runs from the start"
            ));
        } else if app.runs_on_node() {
            warnings.push(format!(
                "app `{name}`: field `wait_ready`: `process.send('ready')` has no equivalent; the app must send READY=1 on NOTIFY_SOCKET"
            ));
        }
    }
}

/// `Environment=` lines: the app's env and its instance variable (`%i` in a template); the
/// secret ones (Kelpie's one rule, `kelpie_view::secrets`) in the returned `EnvironmentFile=`
/// text instead, named by an `EnvironmentFile=` line.
fn environment_lines(
    app: &AppSpec,
    unit: &Unit,
    env_path: &str,
    text: &mut String,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let mut secrets = String::new();
    let name = &app.name;
    let mut env = app.env.clone();
    env.insert(
        app.instance_var.clone(),
        if unit.template { "%i" } else { "0" }.to_string(),
    );
    if unit.template {
        if let Some(var) = &app.increment_var {
            warnings.push(format!(
                "app `{name}`: field `increment_var` (`{var}`) is not exported: every instance of the template gets the same {var}"
            ));
        }
    }
    for (key, value) in &env {
        if !valid_env_name(key) {
            warnings.push(format!(
                "app `{name}`: env `{key}` is not a valid variable name for systemd and is left out"
            ));
            continue;
        }
        if kelpie_view::secrets::is_secret(key, value) {
            let _ = writeln!(secrets, "{key}=\"{}\"", env_file_escape(value));
            continue;
        }
        // The template's `%i` is a specifier to expand, not text to escape.
        let value = if unit.template && key == &app.instance_var {
            "%i".to_string()
        } else {
            env_escape(value)
        };
        let _ = writeln!(text, "Environment=\"{key}={value}\"");
    }
    if secrets.is_empty() {
        return None;
    }
    let _ = writeln!(
        text,
        "# The app's secrets, in a file readable by root alone (0600).\nEnvironmentFile={}",
        env_path.replace('%', "%%")
    );
    warnings.push(format!(
        "app `{}`: its secret variables are in {env_path} (0600), not in the unit: install that file there",
        app.name
    ));
    Some(format!(
        "# Generated by `kelpie export systemd`: the secrets of app `{}`, read by its unit's\n# EnvironmentFile=. Keep it 0600 and out of version control.\n{secrets}",
        app.name
    ))
}

/// A value inside double quotes of an `EnvironmentFile=`: systemd takes `\\`, `\"`, `` \` ``
/// and `\$` there as the character itself, and every other character (a newline too) as it is.
fn env_file_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `Restart=` and its exit codes, the restart delay, and how the app is stopped.
fn restart_lines(app: &AppSpec, text: &mut String) {
    if app.autorestart {
        let clean_exit_is_done = app.stop_exit_codes.contains(&0);
        let _ = writeln!(
            text,
            "Restart={}",
            if clean_exit_is_done {
                "on-failure"
            } else {
                "always"
            }
        );
        let others: Vec<String> = app
            .stop_exit_codes
            .iter()
            .filter(|c| **c != 0)
            .map(|c| c.to_string())
            .collect();
        if !others.is_empty() {
            let _ = writeln!(text, "RestartPreventExitStatus={}", others.join(" "));
        }
    } else {
        text.push_str("Restart=no\n");
    }
    let _ = writeln!(text, "RestartSec={}", duration(app.restart_delay_ms));
    let _ = writeln!(text, "KillSignal={}", app.kill_signal);
    let _ = writeln!(text, "TimeoutStopSec={}", duration(app.kill_timeout_ms));
}

/// Resource limits and who the app runs as: memory, CPU, niceness, user and group.
fn limit_lines(app: &AppSpec, text: &mut String, warnings: &mut Vec<String>) {
    let name = &app.name;
    if let Some(bytes) = app.max_memory_restart {
        text.push_str("# max_memory_restart: the cgroup's hard limit; over it the kernel kills and Restart= restarts.\n");
        let _ = writeln!(text, "MemoryMax={bytes}");
    }
    if let Some(percent) = app.max_cpu {
        warnings.push(format!(
            "app `{name}`: field `max_cpu` becomes CPUQuota={percent}%: systemd caps the CPU instead of restarting the app"
        ));
        let _ = writeln!(text, "CPUQuota={percent}%");
    }
    if let Some(nice) = app.nice {
        let _ = writeln!(text, "Nice={nice}");
    }
    if let Some(user) = &app.user {
        let _ = writeln!(text, "User={user}");
    }
    if let Some(group) = &app.group {
        let _ = writeln!(text, "Group={group}");
    }
}
