//! systemd units: `kelpie-<name>.service` per app, or a template `kelpie-<name>@.service` and a
//! `kelpie-<name>.target` starting its N instances; a `.socket` for a Kelpie-owned port; a
//! `.timer` and a oneshot restart service for `cron_restart`.

use super::{common_warnings, cron, duration, unique_names, Export};
use anyhow::Result;
use kelpie_core::{AppSpec, ListenAddress};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Finds a program in `PATH`, giving its absolute path.
pub type PathLookup = dyn Fn(&str) -> Option<String>;

/// How other units refer to an exported app.
struct Unit {
    base: String,
    template: bool,
}

impl Unit {
    /// The unit to order after and pull in: the service, or the target of a template's
    /// instances (a target is ordered after what it wants, so after every instance).
    fn dependency(&self) -> String {
        if self.template {
            format!("{}.target", self.base)
        } else {
            format!("{}.service", self.base)
        }
    }
}

pub fn export(apps: &[AppSpec], lookup: &PathLookup) -> Result<Export> {
    let names = unique_names(apps, "systemd unit name", |n| {
        format!("kelpie-{}", kelpie_core::sanitize_log_name(n))
    })?;
    let units: BTreeMap<&str, Unit> = apps
        .iter()
        .zip(&names)
        .map(|(app, base)| {
            (
                app.name.as_str(),
                Unit {
                    base: base.clone(),
                    template: app.instances > 1,
                },
            )
        })
        .collect();
    let mut export = Export::default();
    for app in apps {
        let unit = &units[app.name.as_str()];
        app_units(app, unit, &units, lookup, &mut export);
    }
    Ok(export)
}

/// Every file of one app: its service (or template and target), its socket and its cron
/// timer, with the warnings for what does not carry over, in the order they are met.
fn app_units(
    app: &AppSpec,
    unit: &Unit,
    units: &BTreeMap<&str, Unit>,
    lookup: &PathLookup,
    export: &mut Export,
) {
    let warnings = &mut export.warnings;
    common_warnings(app, warnings);
    let service_name = if unit.template {
        format!("{}@.service", unit.base)
    } else {
        format!("{}.service", unit.base)
    };
    let mut text = header(app);
    if unit.template {
        let _ = writeln!(
            text,
            "# {} instances: start them all with `systemctl start {base}.target` (enabled with\n# `systemctl enable {base}.target`); one instance is `{base}@<index>.service`, its index %i.",
            app.instances,
            base = unit.base
        );
    }
    text.push_str(&output_comment(app, &unit.base, unit.template));
    let socket = unit_section(app, unit, units, &mut text, warnings);
    service_section(app, unit, lookup, &mut text, warnings);
    install_section(app, unit, &mut text);
    export.files.push((service_name, text));

    if unit.template {
        export
            .files
            .push((format!("{}.target", unit.base), target_unit(app, unit)));
    }
    if let Some((socket_name, socket_text)) = socket {
        export.files.push((socket_name, socket_text));
    }
    if let Some(expression) = &app.cron_restart {
        cron_units(app, unit, expression, lookup, export);
    }
}

/// The service's `[Unit]` section: ordering after the network, the app's socket and its
/// dependencies, and the start limit. Gives the app's socket unit, if it has one, since the
/// section requires it.
fn unit_section(
    app: &AppSpec,
    unit: &Unit,
    units: &BTreeMap<&str, Unit>,
    text: &mut String,
    warnings: &mut Vec<String>,
) -> Option<(String, String)> {
    let name = &app.name;
    text.push_str("\n[Unit]\n");
    let _ = writeln!(text, "Description=Kelpie app {name}");
    let mut after = vec!["network.target".to_string()];
    let mut wants = Vec::new();
    for dep in &app.depends_on {
        match units.get(dep.as_str()) {
            Some(dep_unit) => {
                after.push(dep_unit.dependency());
                wants.push(dep_unit.dependency());
            }
            None => warnings.push(format!(
                "app `{name}`: field `depends_on`: `{dep}` is not in the exported apps, so no unit orders after it"
            )),
        }
    }
    let socket = socket_unit(app, unit, warnings);
    if let Some((socket_name, _)) = &socket {
        let reference = if unit.template {
            socket_name.replace("@.socket", "@%i.socket")
        } else {
            socket_name.clone()
        };
        after.push(reference.clone());
        text.push_str(&format!("Requires={reference}\n"));
    }
    let _ = writeln!(text, "After={}", after.join(" "));
    if !wants.is_empty() {
        if app
            .depends_on
            .iter()
            .any(|d| units.contains_key(d.as_str()))
        {
            text.push_str(
                "# depends_on: started after these are up (ready for Type=notify); systemd does not wait for health.\n",
            );
        }
        let _ = writeln!(text, "Wants={}", wants.join(" "));
    }
    // Kelpie marks an app errored after `max_restarts` runs shorter than `min_uptime` in a
    // row; systemd's start limit (starts within an interval) is the nearest rule.
    let burst = u64::from(app.max_restarts) + 1;
    let window = (app.min_uptime_ms + app.restart_delay_ms) * burst;
    text.push_str(
        "# Approximates max_restarts/min_uptime: give up after this many starts in this window.\n",
    );
    let _ = writeln!(text, "StartLimitIntervalSec={}", duration(window.max(1000)));
    let _ = writeln!(text, "StartLimitBurst={burst}");
    socket
}

/// The service's `[Service]` section: type, command, environment, restart policy, limits,
/// watchdog and output.
fn service_section(
    app: &AppSpec,
    unit: &Unit,
    lookup: &PathLookup,
    text: &mut String,
    warnings: &mut Vec<String>,
) {
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
    environment_lines(app, unit, text, warnings);
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
}

/// `Type=`: notify when the app tells readiness or feeds a watchdog, else simple.
fn type_lines(app: &AppSpec, text: &mut String, warnings: &mut Vec<String>) {
    let name = &app.name;
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

/// `Environment=` lines: the app's env and its instance variable (`%i` in a template).
fn environment_lines(app: &AppSpec, unit: &Unit, text: &mut String, warnings: &mut Vec<String>) {
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
        // The template's `%i` is a specifier to expand, not text to escape.
        let value = if unit.template && key == &app.instance_var {
            "%i".to_string()
        } else {
            env_escape(value)
        };
        let _ = writeln!(text, "Environment=\"{key}={value}\"");
    }
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

/// The service's `[Install]` section: started at boot by the multi-user target, or by the
/// app's own target for a template.
fn install_section(app: &AppSpec, unit: &Unit, text: &mut String) {
    text.push_str("\n[Install]\n");
    if !app.autostart {
        text.push_str("# autostart: false: not started at boot unless enabled by hand.\n");
    }
    if unit.template {
        let _ = writeln!(text, "WantedBy={}.target", unit.base);
    } else {
        text.push_str("WantedBy=multi-user.target\n");
    }
}

/// `kelpie-<name>.target`, which wants each of a template's N instances.
fn target_unit(app: &AppSpec, unit: &Unit) -> String {
    let instances: Vec<String> = (0..app.instances)
        .map(|i| format!("{}@{i}.service", unit.base))
        .collect();
    let mut target = header(app);
    target.push_str("\n[Unit]\n");
    let _ = writeln!(
        target,
        "Description=Kelpie app {name} ({} instances)",
        app.instances,
        name = app.name
    );
    let _ = writeln!(target, "Wants={}", instances.join(" "));
    target.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    target
}

fn header(app: &AppSpec) -> String {
    let mut text = String::from("# Generated by `kelpie export systemd`");
    if let Some(file) = &app.source_file {
        let _ = write!(text, " from {file}");
    }
    let _ = write!(text, ": app `{}`", app.name);
    if app.namespace != kelpie_core::DEFAULT_NAMESPACE {
        let _ = write!(text, " (namespace `{}`)", app.namespace);
    }
    if let Some(profile) = &app.env_profile {
        let _ = write!(text, ", env `{profile}`");
    }
    text.push_str(".\n");
    text
}

/// `kelpie-<name>.socket` (or a `@.socket` template whose instances each bind the port with
/// SO_REUSEPORT, the kernel spreading connections, since systemd cannot hand one socket to
/// several services) for a port Kelpie owns.
fn socket_unit(app: &AppSpec, unit: &Unit, warnings: &mut Vec<String>) -> Option<(String, String)> {
    let listen = app.listen.as_ref()?;
    let name = &app.name;
    let address = match listen {
        ListenAddress::Tcp { host: None, port } => port.to_string(),
        ListenAddress::Tcp {
            host: Some(h),
            port,
        } if h.contains(':') => format!("[{h}]:{port}"),
        ListenAddress::Tcp {
            host: Some(h),
            port,
        } => format!("{h}:{port}"),
        ListenAddress::Unix { path } => {
            if unit.template {
                warnings.push(format!(
                    "app `{name}`: field `port` (`{listen}`): a Unix socket cannot be shared by template instances; no .socket unit is written"
                ));
                return None;
            }
            path.clone()
        }
    };
    if app.runs_on_node() {
        warnings.push(format!(
            "app `{name}`: field `port`: under socket activation a Node app must listen on the passed descriptor (`server.listen({{ fd: 3 }})`); Kelpie's cluster shim is not there"
        ));
    }
    let socket_name = if unit.template {
        format!("{}@.socket", unit.base)
    } else {
        format!("{}.socket", unit.base)
    };
    let mut text = header(app);
    text.push_str("# The port Kelpie owned: the socket is passed as fd 3 (LISTEN_FDS=1).\n");
    text.push_str("\n[Socket]\n");
    let _ = writeln!(text, "ListenStream={address}");
    if unit.template {
        text.push_str("ReusePort=true\n");
    }
    text.push_str("\n[Install]\nWantedBy=sockets.target\n");
    Some((socket_name, text))
}

/// `kelpie-<name>-restart.timer` and the oneshot service it starts, which restarts the app's
/// running units only (`try-restart`), as Kelpie restarts only running instances.
fn cron_units(
    app: &AppSpec,
    unit: &Unit,
    expression: &str,
    lookup: &PathLookup,
    export: &mut Export,
) {
    let name = &app.name;
    let calendars = match cron::on_calendar(expression, app.cron_timezone.as_deref()) {
        Ok(calendars) => calendars,
        Err(e) => {
            export.warnings.push(format!(
                "app `{name}`: field `cron_restart`: {e}; no timer is written"
            ));
            return;
        }
    };
    let restart = format!("{}-restart", unit.base);
    let target = if unit.template {
        format!("{}@*.service", unit.base)
    } else {
        format!("{}.service", unit.base)
    };
    let systemctl = lookup("systemctl").unwrap_or_else(|| "/usr/bin/systemctl".to_string());
    let mut service = header(app);
    let _ = writeln!(
        service,
        "# cron_restart `{expression}`: started by {restart}.timer."
    );
    service.push_str("\n[Unit]\n");
    let _ = writeln!(
        service,
        "Description=Restart Kelpie app {name} (cron_restart)"
    );
    service.push_str("\n[Service]\nType=oneshot\n");
    let _ = writeln!(
        service,
        "ExecStart={} try-restart {}",
        exec_arg(&systemctl),
        exec_arg(&target)
    );
    export.files.push((format!("{restart}.service"), service));

    let mut timer = header(app);
    let _ = writeln!(timer, "# cron_restart `{expression}`.");
    timer.push_str("\n[Unit]\n");
    let _ = writeln!(timer, "Description=Restart schedule of Kelpie app {name}");
    timer.push_str("\n[Timer]\n");
    for calendar in calendars {
        let _ = writeln!(timer, "OnCalendar={calendar}");
    }
    let _ = writeln!(timer, "Unit={restart}.service");
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    export.files.push((format!("{restart}.timer"), timer));
}

/// Where the unit's output goes, for the comment at its top: the journal, files, or nowhere.
fn output_comment(app: &AppSpec, base: &str, template: bool) -> String {
    if app.disable_logs {
        return "# Output is discarded (disable_logs).\n".into();
    }
    let journal = format!(
        "the journal (`journalctl -u {base}{}`)",
        if template { "@*" } else { "" }
    );
    let place = |file: &Option<String>| match file.as_deref() {
        Some("/dev/null") => "nowhere".to_string(),
        Some(path) => path.to_string(),
        None => journal.clone(),
    };
    let (out, err) = (place(&app.out_file), place(&app.error_file));
    if out == err {
        format!("# Output goes to {out}.\n")
    } else {
        format!("# Output goes to {out}; errors to {err}.\n")
    }
}

/// Output settings: Kelpie's own files become `append:` files; default files (Kelpie's home)
/// become the journal.
fn log_lines(app: &AppSpec, text: &mut String, warnings: &mut Vec<String>) {
    let name = &app.name;
    let target = |file: &Option<String>| match file.as_deref() {
        Some("/dev/null") => Some("null".to_string()),
        Some(path) => Some(format!("append:{}", path.replace('%', "%%"))),
        None => None,
    };
    if app.disable_logs {
        text.push_str("StandardOutput=null\nStandardError=null\n");
    } else {
        if let Some(out) = target(&app.out_file) {
            let _ = writeln!(text, "StandardOutput={out}");
        }
        if let Some(err) = target(&app.error_file) {
            let _ = writeln!(text, "StandardError={err}");
        }
    }
    if app.log_file.is_some() {
        warnings.push(format!(
            "app `{name}`: field `log_file` is not exported: the journal holds both streams (`journalctl -u`)"
        ));
    }
    if app.log_rotation != kelpie_core::LogRotation::default() {
        warnings.push(format!(
            "app `{name}`: log rotation fields are not exported: journald (or logrotate for append: files) rotates"
        ));
    }
}

/// The command line with absolute paths: systemd runs `ExecStart=` without a shell or the
/// user's `PATH`.
fn exec_argv(app: &AppSpec, lookup: &PathLookup, warnings: &mut Vec<String>) -> Vec<String> {
    let mut argv = app.command_line();
    if let Some(first) = argv.first_mut() {
        if !first.starts_with('/') {
            match lookup(first) {
                Some(path) => *first = path,
                None => warnings.push(format!(
                    "app `{}`: `{first}` is not in PATH here; ExecStart= keeps the bare name, which systemd looks up in its own fixed path",
                    app.name
                )),
            }
        }
    }
    argv
}

fn valid_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `%` starts a specifier in every unit setting.
fn env_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out
}

/// One word of `ExecStart=`: bare when it is plain, else double-quoted with C escapes. `$` is
/// doubled everywhere, since `$NAME` is expanded from the environment.
fn exec_arg(arg: &str) -> String {
    if arg == ";" {
        return "\\;".to_string();
    }
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c));
    if plain {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '$' => out.push_str("$$"),
            other => out.push_str(&env_escape(&other.to_string())),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::{HealthCheck, HealthProbe};

    fn lookup(program: &str) -> Option<String> {
        Some(format!("/usr/bin/{program}"))
    }

    fn api() -> AppSpec {
        let mut app = AppSpec {
            name: "api".into(),
            script: "/srv/api/server.py".into(),
            interpreter: Some("python3".into()),
            args: vec!["--greeting".into(), "hello world $USER 100%".into()],
            cwd: "/srv/api".into(),
            max_memory_restart: Some(200 * 1024 * 1024),
            max_cpu: Some(150),
            nice: Some(5),
            user: Some("www".into()),
            kill_signal: "SIGTERM".into(),
            kill_timeout_ms: 5000,
            restart_delay_ms: 1500,
            depends_on: vec!["db".into(), "elsewhere".into()],
            cron_restart: Some("0 3 * * *".into()),
            cron_timezone: Some("UTC".into()),
            listen: Some(ListenAddress::Tcp {
                host: None,
                port: 3000,
            }),
            health_check: Some(HealthCheck {
                probe: HealthProbe::Http {
                    url: "http://127.0.0.1:3000/health".into(),
                    status: None,
                },
                ..HealthCheck::default()
            }),
            ..AppSpec::default()
        };
        app.env.insert("QUOTE".into(), "say \"hi\"".into());
        app.env.insert("PORT".into(), "3000".into());
        app
    }

    fn db() -> AppSpec {
        AppSpec {
            name: "db".into(),
            script: "sleep".into(),
            args: vec!["1000".into()],
            cwd: "/tmp".into(),
            instances: 2,
            ..AppSpec::default()
        }
    }

    fn file<'a>(export: &'a Export, name: &str) -> &'a str {
        export
            .files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no {name} in {:?}", export.files))
    }

    #[test]
    fn a_single_instance_app_is_a_service_with_its_settings() {
        let export = export(&[db(), api()], &lookup).expect("export");
        let unit = file(&export, "kelpie-api.service");
        for line in [
            "ExecStart=/usr/bin/python3 /srv/api/server.py --greeting \"hello world $$USER 100%%\"",
            "WorkingDirectory=/srv/api",
            "Environment=\"QUOTE=say \\\"hi\\\"\"",
            "Environment=\"NODE_APP_INSTANCE=0\"",
            "Restart=always",
            "RestartSec=1500ms",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=5s",
            "MemoryMax=209715200",
            "CPUQuota=150%",
            "Nice=5",
            "User=www",
            "Requires=kelpie-api.socket",
            "After=network.target kelpie-db.target kelpie-api.socket",
            "Wants=kelpie-db.target",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line}\n{unit}");
        }
        assert!(file(&export, "kelpie-api.socket").contains("\nListenStream=3000\n"));
        let timer = file(&export, "kelpie-api-restart.timer");
        assert!(
            timer.contains("\nOnCalendar=*-*-* 03:00:00 UTC\n"),
            "{timer}"
        );
        assert!(file(&export, "kelpie-api-restart.service")
            .contains("\nExecStart=/usr/bin/systemctl try-restart kelpie-api.service\n"));
        let warned = export.warnings.join("\n");
        assert!(warned.contains("`elsewhere` is not in the exported apps"));
        assert!(warned.contains("field `health_check` is not exported"));
        assert!(warned.contains("CPUQuota=150%"));
    }

    #[test]
    fn several_instances_are_a_template_and_a_target() {
        let export = export(&[db()], &lookup).expect("export");
        let unit = file(&export, "kelpie-db@.service");
        assert!(unit.contains("\nExecStart=/usr/bin/sleep 1000\n"), "{unit}");
        assert!(unit.contains("\nEnvironment=\"NODE_APP_INSTANCE=%i\"\n"));
        assert!(unit.contains("\nWantedBy=kelpie-db.target\n"));
        let target = file(&export, "kelpie-db.target");
        assert!(target.contains("\nWants=kelpie-db@0.service kelpie-db@1.service\n"));
    }

    #[test]
    fn readiness_and_watchdog_make_a_notify_service() {
        let app = AppSpec {
            name: "n".into(),
            script: "/bin/true".into(),
            wait_ready: true,
            watchdog_ms: Some(30_000),
            autorestart: false,
            ..AppSpec::default()
        };
        let export = export(&[app], &lookup).expect("export");
        let unit = file(&export, "kelpie-n.service");
        for line in [
            "Type=notify",
            "WatchdogSec=30s",
            "Restart=no",
            "TimeoutStartSec=3s",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line}\n{unit}");
        }
    }

    #[test]
    fn exec_words_are_quoted_only_when_needed() {
        assert_eq!(exec_arg("/a/b.js"), "/a/b.js");
        assert_eq!(exec_arg("a b"), "\"a b\"");
        assert_eq!(exec_arg(""), "\"\"");
        assert_eq!(exec_arg("x\\y\"$"), "\"x\\\\y\\\"$$\"");
        assert_eq!(exec_arg(";"), "\\;");
    }
}
