//! systemd units: `kelpie-<name>.service` per app, or a template `kelpie-<name>@.service` and a
//! `kelpie-<name>.target` starting its N instances; a `.socket` for a Kelpie-owned port; a
//! `.timer` and a oneshot restart service for `cron_restart`.
//!
//! Here: the files of each app, in the order they are met. Their parts, in `systemd/`: the
//! `[Unit]` and `[Install]` sections and a template's target (`unit`), the `[Service]` section
//! (`service`), the command and values as systemd reads them (`command`), where the output goes
//! (`output`), the `.socket` (`socket`) and the cron `.timer` (`timer`). A periodic job
//! (`autorestart: false` with `cron_restart`) is a `Type=oneshot` service started by its own
//! `.timer`, not at boot.

mod command;
mod output;
mod runtime;
mod service;
mod socket;
mod timer;
mod unit;

use super::{unique_names, Export};
use anyhow::Result;
use kelpie_core::AppSpec;
use output::output_comment;
use runtime::{needs_kelpie_runtime, runtime_service};
use service::service_section;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use timer::{cron_units, job_timer};
use unit::{install_section, target_unit, unit_section};

/// Finds a program in `PATH`, giving its absolute path.
pub(crate) type PathLookup = dyn Fn(&str) -> Option<String>;

/// The exported apps' units, by app name.
type Units<'a> = BTreeMap<&'a str, Unit>;

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

/// Warnings for the values systemd does not express, so they are never dropped without a word.
fn common_warnings(app: &AppSpec, warnings: &mut Vec<String>) {
    let name = &app.name;
    if !app.watch.is_empty() {
        warnings.push(format!(
            "app `{name}`: field `watch` is not exported: restarting on file changes is a development feature with no equivalent"
        ));
    }
    if let Some(pattern) = &app.ready_pattern {
        warnings.push(format!(
            "app `{name}`: field `ready_pattern` (`{pattern}`) is not exported: readiness from an output line has no equivalent"
        ));
    }
    if app.shutdown_with_message {
        warnings.push(format!(
            "app `{name}`: field `shutdown_with_message` is not exported: there is no Node IPC channel; the app gets `kill_signal`"
        ));
    }
    if app.exp_backoff_restart_delay_ms.is_some() {
        warnings.push(format!(
            "app `{name}`: field `exp_backoff_restart_delay` is not exported: the engine's own restart backoff applies"
        ));
    }
    if app.log_date_format.is_some() || app.log_type != kelpie_core::LogType::Raw {
        warnings.push(format!(
            "app `{name}`: fields `log_date_format`/`log_type` are not exported: the engine's log collector stamps and formats lines"
        ));
    }
}

/// The apps' units. `kelpie` is this program's path, for the units that run `kelpie runtime`.
pub(super) fn export(
    apps: &[AppSpec],
    lookup: &PathLookup,
    kelpie: &str,
    env_dir: &str,
) -> Result<Export> {
    let names = unique_names(apps, "systemd unit name", |n| {
        format!("kelpie-{}", kelpie_core::sanitize_log_name(n))
    })?;
    let units: Units = apps
        .iter()
        .zip(&names)
        .map(|(app, base)| {
            (
                app.name.as_str(),
                Unit {
                    base: base.clone(),
                    // Under `kelpie runtime`, one service runs every instance.
                    template: app.instances > 1 && !needs_kelpie_runtime(app),
                },
            )
        })
        .collect();
    let mut export = Export::default();
    for app in apps {
        let unit = &units[app.name.as_str()];
        if needs_kelpie_runtime(app) {
            let mut text = header(app);
            runtime_service(app, unit, &units, kelpie, &mut text, &mut export.warnings);
            install_section(app, unit, &mut text);
            export.files.push((format!("{}.service", unit.base), text));
        } else {
            app_units(app, unit, &units, lookup, env_dir, &mut export);
        }
    }
    Ok(export)
}

/// Every file of one app: its service (or template and target), its socket and its cron
/// timer, with the warnings for what does not carry over, in the order they are met.
fn app_units(
    app: &AppSpec,
    unit: &Unit,
    units: &Units,
    lookup: &PathLookup,
    env_dir: &str,
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
    let env_file = format!("{}.env", unit.base);
    let env_path = format!("{}/{env_file}", env_dir.trim_end_matches('/'));
    let secrets = service_section(app, unit, lookup, &env_path, &mut text, warnings);
    if !app.is_periodic_job() {
        // A periodic job is started by its timer, not at boot.
        install_section(app, unit, &mut text);
    }
    export.files.push((service_name, text));
    if let Some(secrets) = secrets {
        export.files.push((env_file.clone(), secrets));
        export.private.insert(env_file);
    }

    if unit.template {
        export
            .files
            .push((format!("{}.target", unit.base), target_unit(app, unit)));
    }
    if let Some((socket_name, socket_text)) = socket {
        export.files.push((socket_name, socket_text));
    }
    match &app.cron_restart {
        Some(expression) if app.is_periodic_job() => job_timer(app, unit, expression, export),
        Some(expression) => cron_units(app, unit, expression, lookup, export),
        None => {}
    }
}

pub(super) fn header(app: &AppSpec) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::{HealthCheck, HealthProbe, ListenAddress};

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
        let export =
            export(&[db(), api()], &lookup, "/usr/bin/kelpie", "/etc/kelpie").expect("export");
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
        let export = export(&[db()], &lookup, "/usr/bin/kelpie", "/etc/kelpie").expect("export");
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
        let export = export(&[app], &lookup, "/usr/bin/kelpie", "/etc/kelpie").expect("export");
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
}
