//! The service's `[Unit]` section (ordering, dependencies, the start limit) and `[Install]`
//! section, and the target that starts a template's instances.

use super::super::duration;
use super::socket::socket_unit;
use super::{header, Unit, Units};
use kelpie_core::AppSpec;
use std::fmt::Write as _;

/// The service's `[Unit]` section: ordering after the network, the app's socket and its
/// dependencies, and the start limit. Gives the app's socket unit, if it has one, since the
/// section requires it.
pub(super) fn unit_section(
    app: &AppSpec,
    unit: &Unit,
    units: &Units,
    text: &mut String,
    warnings: &mut Vec<String>,
) -> Option<(String, String)> {
    let name = &app.name;
    text.push_str("\n[Unit]\n");
    let _ = writeln!(text, "Description=Kelpie app {name}");
    let socket = socket_unit(app, unit, warnings);
    let mut socket_reference = Vec::new();
    if let Some((socket_name, _)) = &socket {
        let reference = if unit.template {
            socket_name.replace("@.socket", "@%i.socket")
        } else {
            socket_name.clone()
        };
        text.push_str(&format!("Requires={reference}\n"));
        socket_reference.push(reference);
    }
    dependency_lines(app, units, &socket_reference, text, warnings);
    if app.is_periodic_job() {
        text.push_str("# A periodic job: its timer may start it often; no start limit.\n");
        text.push_str("StartLimitIntervalSec=0\n");
        return socket;
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

/// The service's `[Install]` section: started at boot by the multi-user target, or by the
/// app's own target for a template.
pub(super) fn install_section(app: &AppSpec, unit: &Unit, text: &mut String) {
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

/// `After=` the network, `also_after` and the app's dependencies, and `Wants=` the dependencies
/// (each the service, or the target of a template); a dependency outside the export is a
/// warning.
pub(super) fn dependency_lines(
    app: &AppSpec,
    units: &Units,
    also_after: &[String],
    text: &mut String,
    warnings: &mut Vec<String>,
) {
    let name = &app.name;
    let mut wants = Vec::new();
    for dep in &app.depends_on {
        match units.get(dep.as_str()) {
            Some(dep_unit) => wants.push(dep_unit.dependency()),
            None => warnings.push(format!(
                "app `{name}`: field `depends_on`: `{dep}` is not in the exported apps, so no unit orders after it"
            )),
        }
    }
    let mut after = vec!["network.target".to_string()];
    after.extend(wants.iter().cloned());
    after.extend(also_after.iter().cloned());
    let _ = writeln!(text, "After={}", after.join(" "));
    if !wants.is_empty() {
        text.push_str(
            "# depends_on: started after these are up (ready for Type=notify); systemd does not wait for health.\n",
        );
        let _ = writeln!(text, "Wants={}", wants.join(" "));
    }
}

/// `kelpie-<name>.target`, which wants each of a template's N instances.
pub(super) fn target_unit(app: &AppSpec, unit: &Unit) -> String {
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
