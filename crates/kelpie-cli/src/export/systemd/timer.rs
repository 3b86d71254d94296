//! `cron_restart` as a `.timer` and the oneshot service it starts, which restarts the app's
//! running units.

use super::super::{cron, Export};
use super::command::exec_arg;
use super::{header, PathLookup, Unit};
use kelpie_core::AppSpec;
use std::fmt::Write as _;

/// `kelpie-<name>-restart.timer` and the oneshot service it starts, which restarts the app's
/// running units only (`try-restart`), as Kelpie restarts only running instances.
pub(super) fn cron_units(
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
