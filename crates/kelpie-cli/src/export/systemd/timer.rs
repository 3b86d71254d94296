//! `cron_restart` as a `.timer`: for a long-running app, with the oneshot service it starts,
//! which restarts the app's running units; for a periodic job (`autorestart: false`), one
//! that starts the job's own `Type=oneshot` service at each tick.

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

/// `kelpie-<name>.timer` for a periodic job: it starts the job's `Type=oneshot` service (or, for
/// several instances, the target that wants them) at each tick of `expression`.
pub(super) fn job_timer(app: &AppSpec, unit: &Unit, expression: &str, export: &mut Export) {
    let name = &app.name;
    let calendars = match cron::on_calendar(expression, app.cron_timezone.as_deref()) {
        Ok(calendars) => calendars,
        Err(e) => {
            export.warnings.push(format!(
                "app `{name}`: field `cron_restart`: {e}; no timer is written, so the job never runs"
            ));
            return;
        }
    };
    let mut timer = header(app);
    let _ = writeln!(
        timer,
        "# A periodic job (autorestart: false, cron_restart `{expression}`): each tick starts\n# {} (Type=oneshot). Enable with `systemctl enable --now {}.timer`.",
        unit.dependency(),
        unit.base
    );
    timer.push_str("\n[Unit]\n");
    let _ = writeln!(timer, "Description=Schedule of Kelpie job {name}");
    timer.push_str("\n[Timer]\n");
    for calendar in calendars {
        let _ = writeln!(timer, "OnCalendar={calendar}");
    }
    if unit.template {
        let _ = writeln!(timer, "Unit={}", unit.dependency());
    }
    timer.push_str(
        "# On time to the second, as Kelpie runs it (systemd's default lets a timer drift a minute).\n",
    );
    timer.push_str("AccuracySec=1s\n");
    timer.push_str(
        "# Persistent=false: a run missed while the machine was off is not caught up at boot,\n# as Kelpie never catches up a tick it missed (true would run it once at boot).\n",
    );
    timer.push_str("Persistent=false\n");
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    export.files.push((format!("{}.timer", unit.base), timer));
    export.warnings.push(format!(
        "app `{name}`: periodic job: a run still going at the next tick is left to finish (systemd does not start an active oneshot service again), where Kelpie restarts it"
    ));
}
