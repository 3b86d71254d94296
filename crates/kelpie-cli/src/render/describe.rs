//! `describe`: every detail of one instance, then its last exits.

pub(super) mod runtime;

use super::format::{bytes, short_duration, utc};
use kelpie_proto::ProcessInfo;
use std::io::Write;

/// Lines of stderr shown under each exit (`events --stderr` shows all that were kept).
const DESCRIBE_STDERR_LINES: usize = 5;

/// Write the description of one instance: its settings and state as aligned rows, then its
/// environment, log files, revision control, metrics and last exits.
pub(crate) fn write_describe(
    out: &mut impl Write,
    p: &ProcessInfo,
    show_secrets: bool,
) -> std::io::Result<()> {
    let spec = &p.spec;
    let mut rows = state_rows(p);
    rows.extend(launch_rows(p));
    rows.extend(policy_rows(spec));
    rows.extend(super::schedule::rows(p));
    rows.extend(context_rows(p));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    writeln!(out, "Describing app `{}` (id {})", spec.name, p.pm_id)?;
    for (key, value) in &rows {
        writeln!(out, "  {key:<width$}  {value}")?;
    }
    write_env(out, spec, show_secrets)?;
    write_log_files(out, p)?;
    write_revision_control(out, spec)?;
    write_metrics(out, p)?;
    write_code_metrics(out, p)?;
    write_events(out, p)
}

/// One row of the aligned table: its key and its value.
type Row = (&'static str, String);

/// The value, or `-` when there is none.
fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

/// The rows of what the instance is and how it runs now: identity, process, resources, health.
fn state_rows(p: &ProcessInfo) -> Vec<Row> {
    let spec = &p.spec;
    let state = &p.state;
    vec![
        ("status", state.status.as_str().into()),
        ("name", spec.name.clone()),
        ("namespace", spec.namespace.clone()),
        ("id", p.pm_id.to_string()),
        ("instance", p.instance.to_string()),
        ("pid", or_dash(state.pid.map(|x| x.to_string()))),
        ("restarts", state.restart_time.to_string()),
        ("last restart", last_restart(state)),
        ("unstable restarts", state.unstable_restarts.to_string()),
        (
            "uptime",
            if p.uptime_ms > 0 {
                short_duration(p.uptime_ms)
            } else {
                "0".into()
            },
        ),
        (
            "started at",
            if state.started_at_ms > 0 {
                utc(state.started_at_ms)
            } else {
                "-".into()
            },
        ),
        ("created at", utc(state.created_at_ms)),
        ("cpu", format!("{}%", p.cpu)),
        ("memory", bytes(p.memory)),
        ("page faults", runtime::faults(p)),
        ("context switches", runtime::switches(p)),
        (
            "health",
            match (state.health, &state.health_detail) {
                (Some(health), Some(detail)) => format!("{} ({detail})", health.as_str()),
                (Some(health), None) => health.as_str().into(),
                (None, _) => "-".into(),
            },
        ),
        (
            "app status",
            or_dash(
                p.status_text
                    .as_ref()
                    .map(|t| format!("{t} (STATUS= on NOTIFY_SOCKET)")),
            ),
        ),
    ]
}

/// The rows of how the app is launched: script, interpreter, directory, mode, port, readiness
/// and where its output goes.
fn launch_rows(p: &ProcessInfo) -> Vec<Row> {
    let spec = &p.spec;
    vec![
        ("script path", spec.script.clone()),
        ("script args", spec.args.join(" ")),
        ("interpreter", or_dash(spec.interpreter.clone())),
        ("interpreter args", spec.interpreter_args.join(" ")),
        ("exec cwd", spec.cwd.clone()),
        ("exec mode", spec.exec_mode.pm2_name().into()),
        ("instances", spec.instances.to_string()),
        (
            "port",
            match (&spec.listen, spec.reuse_port) {
                (Some(address), false) => format!("{address} (socket owned by kelpie)"),
                (Some(address), true) => format!("{address} (bound by the app, SO_REUSEPORT)"),
                (None, true) => "bound by the app (SO_REUSEPORT)".into(),
                (None, false) => "-".into(),
            },
        ),
        ("ready when", ready_when(spec)),
        ("out log path", p.out_log.clone()),
        ("error log path", p.err_log.clone()),
        (
            "combined log path",
            or_dash(
                p.log_files
                    .iter()
                    .find(|f| f.kind == "combined")
                    .map(|f| f.path.clone()),
            ),
        ),
        (
            "log format",
            match (spec.log_type, &spec.log_date_format) {
                (kelpie_core::LogType::Json, _) => "json".into(),
                (kelpie_core::LogType::Raw, Some(format)) => format!("raw, lines dated `{format}`"),
                (kelpie_core::LogType::Raw, None) => "raw".into(),
            },
        ),
    ]
}

/// The rows of when the app is restarted and stopped: restart policy, stop signal, limits,
/// cron, watch, health check and watchdog.
fn policy_rows(spec: &kelpie_core::AppSpec) -> Vec<Row> {
    vec![
        ("autorestart", spec.autorestart.to_string()),
        ("min uptime", format!("{} ms", spec.min_uptime_ms)),
        ("max restarts", spec.max_restarts.to_string()),
        ("restart delay", format!("{} ms", spec.restart_delay_ms)),
        (
            "exp backoff restart delay",
            or_dash(spec.exp_backoff_restart_delay_ms.map(|d| format!("{d} ms"))),
        ),
        (
            "stop exit codes",
            spec.stop_exit_codes
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("kill signal", spec.kill_signal.clone()),
        ("kill timeout", format!("{} ms", spec.kill_timeout_ms)),
        (
            "stop by",
            if spec.shutdown_with_message {
                "the `shutdown` message (Node), else the kill signal".into()
            } else {
                "the kill signal".into()
            },
        ),
        (
            "max memory restart",
            or_dash(
                spec.max_memory_restart
                    .map(|b| format!("{} (whole process tree)", bytes(b))),
            ),
        ),
        (
            "max processes",
            or_dash(spec.max_processes.map(|n| format!("{n} (cgroup pids.max)"))),
        ),
        (
            "max cpu",
            or_dash(spec.max_cpu.map(|c| {
                format!(
                    "{c}% for {} (whole process tree)",
                    setting_duration(spec.max_cpu_window_ms)
                )
            })),
        ),
        (
            "cron restart",
            or_dash(spec.cron_restart.as_ref().map(|c| {
                format!(
                    "`{c}` ({})",
                    spec.cron_timezone
                        .as_deref()
                        .unwrap_or("daemon's local time")
                )
            })),
        ),
        ("watch", watch(spec)),
        (
            "health check",
            or_dash(spec.health_check.as_ref().map(health_check)),
        ),
        (
            "watchdog",
            or_dash(
                spec.watchdog_ms
                    .map(|ms| format!("{} after the first WATCHDOG=1", setting_duration(ms))),
            ),
        ),
    ]
}

/// The rows of where the app comes from and runs as: dependencies, niceness, source file,
/// env profile, user, and the last error.
fn context_rows(p: &ProcessInfo) -> Vec<Row> {
    let spec = &p.spec;
    vec![
        (
            "depends on",
            or_dash(Some(spec.depends_on.join(", ")).filter(|d| !d.is_empty())),
        ),
        ("nice", or_dash(spec.nice.map(|n| n.to_string()))),
        ("ecosystem file", or_dash(spec.source_file.clone())),
        ("env profile", or_dash(spec.env_profile.clone())),
        (
            "user",
            match (&spec.user, &spec.group) {
                (None, None) => p.username.clone(),
                (user, group) => format!(
                    "{}{}",
                    user.as_deref().unwrap_or(&p.username),
                    group
                        .as_ref()
                        .map(|g| format!(" (group {g})"))
                        .unwrap_or_default()
                ),
            },
        ),
        ("last error", or_dash(p.state.last_error.clone())),
    ]
}

/// The environment from the config (secrets masked unless asked for); nothing when it is empty.
fn write_env(
    out: &mut impl Write,
    spec: &kelpie_core::AppSpec,
    show_secrets: bool,
) -> std::io::Result<()> {
    if spec.env.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "Environment from the config (the shell environment it inherited is not shown):"
    )?;
    for (key, value) in super::shown_env(&spec.env, show_secrets).iter() {
        writeln!(out, "  {key}={value}")?;
    }
    if !show_secrets && spec.env.iter().any(|(k, v)| super::is_secret(k, v)) {
        writeln!(
            out,
            "  ({} hides the values of names with TOKEN, SECRET, PASSWORD or KEY; --show-secrets shows them)",
            super::MASK
        )?;
    }
    Ok(())
}

/// Each log file with its health and how many lines it dropped.
fn write_log_files(out: &mut impl Write, p: &ProcessInfo) -> std::io::Result<()> {
    writeln!(out, "Log files:")?;
    if p.log_files.is_empty() {
        writeln!(out, "  none (output discarded)")?;
    }
    for file in &p.log_files {
        let health = match &file.error {
            Some(error) => format!("FAILING: {error}"),
            None => "ok".into(),
        };
        writeln!(
            out,
            "  {:<8} {}  ({health}; {} lines dropped)",
            file.kind, file.path, file.dropped_lines
        )?;
    }
    Ok(())
}

/// The metrics the app reported; nothing when it reported none.
fn write_metrics(out: &mut impl Write, p: &ProcessInfo) -> std::io::Result<()> {
    if p.metrics.is_empty() {
        return Ok(());
    }
    writeln!(out, "Metrics (X_KELPIE_METRIC= on NOTIFY_SOCKET):")?;
    let width = p.metrics.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in &p.metrics {
        writeln!(out, "  {name:<width$}  {value}")?;
    }
    Ok(())
}

/// What the app's PM2 SDK (`@pm2/io`) reports, as `pm2 show` lists it: its metrics with their
/// units ("Code metrics") and its actions (`kelpie trigger`); nothing for an app without one.
fn write_code_metrics(out: &mut impl Write, p: &ProcessInfo) -> std::io::Result<()> {
    let sdk = &p.sdk;
    if !sdk.monitor.is_empty() {
        // The runtime's first, each with what it means.
        writeln!(out, "Code metrics (@pm2/io):")?;
        runtime::write_code_metrics(out, &sdk.monitor)?;
        runtime::write_unavailable(out, &p.spec)?;
    }
    let actions: Vec<&str> = sdk
        .actions
        .iter()
        .filter_map(|a| a["action_name"].as_str())
        .collect();
    if !actions.is_empty() {
        writeln!(out, "Actions (kelpie trigger {} <action>):", p.spec.name)?;
        for action in actions {
            writeln!(out, "  {action}")?;
        }
    }
    Ok(())
}

/// The last exits and restarts with their cause, each with the end of its stderr.
fn write_events(out: &mut impl Write, p: &ProcessInfo) -> std::io::Result<()> {
    let state = &p.state;
    writeln!(
        out,
        "Events: exits and restarts, with their cause (newest last):"
    )?;
    if state.exits.is_empty() {
        writeln!(out, "  none")?;
    }
    for exit in &state.exits {
        let how = format!(
            "{}{}",
            super::events::how_it_ended(exit.code, exit.signal.as_deref()),
            super::events::oom_mark(exit.oom)
        );
        writeln!(
            out,
            "  {}  {:<8} {how:<14} uptime {:<6} {:<16} {}",
            utc(exit.at_ms),
            exit.cause.as_str(),
            short_duration(exit.uptime_ms),
            exit.action,
            exit.reason
        )?;
        if let Some(exception) = &exit.exception {
            super::events::write_exception(out, exception, DESCRIBE_STDERR_LINES, "      ")?;
        }
        let shown = exit.stderr_tail.len().min(DESCRIBE_STDERR_LINES);
        if shown < exit.stderr_tail.len() {
            writeln!(
                out,
                "      stderr | ({} more lines: kelpie events {} --stderr)",
                exit.stderr_tail.len() - shown,
                p.pm_id
            )?;
        }
        for line in &exit.stderr_tail[exit.stderr_tail.len() - shown..] {
            writeln!(out, "      stderr | {line}")?;
        }
    }
    Ok(())
}

/// PM2's "Revision control metadata": the git metadata of the app's directory, read now (so
/// it tells the commit checked out at this moment). Nothing when the directory is in no
/// repository.
fn write_revision_control(
    out: &mut impl Write,
    spec: &kelpie_core::AppSpec,
) -> std::io::Result<()> {
    if !spec.vizion {
        writeln!(out, "Revision control: not read (vizion off)")?;
        return Ok(());
    }
    let Some(found) = kelpie_view::versioning::read(std::path::Path::new(&spec.cwd)) else {
        return Ok(());
    };
    let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
    let rows = [
        ("revision control", found.kind.to_string()),
        ("remote url", opt(found.url.as_deref())),
        ("repository root", found.repo_path.clone()),
        ("last update", opt(found.update_time.as_deref())),
        ("revision", opt(found.revision.as_deref())),
        ("branch", found.branch.clone()),
    ];
    writeln!(out, "Revision control:")?;
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in &rows {
        writeln!(out, "  {key:<width$}  {value}")?;
    }
    Ok(())
}

/// What makes a new process of the app count as ready, for `describe`.
fn ready_when(spec: &kelpie_core::AppSpec) -> String {
    let mut sources = Vec::new();
    if spec.wait_ready {
        sources.push("READY=1 or process.send('ready')".to_string());
    }
    if let Some(pattern) = &spec.ready_pattern {
        sources.push(format!("a line matches /{pattern}/"));
    }
    if spec.reuse_port {
        sources.push("it listens on the port".to_string());
    }
    if sources.is_empty() && spec.runs_on_node() && spec.listen.is_some() && !spec.reuse_port {
        sources.push("its server listens on the shared socket".to_string());
    }
    if sources.is_empty() {
        return "at once".into();
    }
    format!(
        "{} (within {} ms)",
        sources.join(", or "),
        spec.listen_timeout_ms
    )
}

/// The cause and time of the last restart (automatic or not), for `describe`.
fn last_restart(state: &kelpie_core::InstanceState) -> String {
    state
        .exits
        .iter()
        .rev()
        .find(|e| e.action == "restart" || e.action == "reload" || e.action == "waiting restart")
        .map(|e| format!("{} at {}: {}", e.cause.as_str(), utc(e.at_ms), e.reason))
        .unwrap_or_else(|| "-".into())
}

/// What is watched, for `describe`.
fn watch(spec: &kelpie_core::AppSpec) -> String {
    if spec.watch.is_empty() {
        return "-".into();
    }
    let mut text = format!(
        "{} (restart {} after the last change",
        spec.watch.join(", "),
        setting_duration(spec.watch_delay_ms)
    );
    if !spec.ignore_watch.is_empty() {
        text.push_str(&format!("; ignoring {}", spec.ignore_watch.join(", ")));
    }
    text.push(')');
    text
}

/// A health check in a few words, for `describe`.
fn health_check(check: &kelpie_core::HealthCheck) -> String {
    let probe = match &check.probe {
        kelpie_core::HealthProbe::Http { url, status } => match status {
            Some(status) => format!("GET {url} answers {status}"),
            None => format!("GET {url} answers 2xx/3xx"),
        },
        kelpie_core::HealthProbe::Tcp { host, port } => format!("TCP {host}:{port} accepts"),
        kelpie_core::HealthProbe::Exec { command } => format!("`{command}` exits 0"),
    };
    format!(
        "{probe}; every {}, timeout {}, restart after {} failures{}",
        setting_duration(check.interval_ms),
        setting_duration(check.timeout_ms),
        check.failures,
        if check.start_period_ms > 0 {
            format!(
                ", not counted for {} after start",
                setting_duration(check.start_period_ms)
            )
        } else {
            String::new()
        }
    )
}

/// A configured duration, exactly: `500 ms`, `1.5 s`, `10 s`.
fn setting_duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        _ if ms.is_multiple_of(1000) => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", ms as f64 / 1000.0),
    }
}
