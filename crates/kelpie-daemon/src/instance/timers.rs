//! The instance's clocks besides restarts: health checks and the `cron_restart` schedule.

// One part of the instance task (instance/mod.rs), which shares its types and imports.
use super::*;

impl Instance {
    /// What the health check found: shown by `describe` and `list`; once it has failed
    /// `failures` times in a row, the process is restarted.
    pub(super) async fn on_health(&mut self, report: HealthReport) {
        match report {
            HealthReport::Healthy => {
                self.state.health = Some(kelpie_core::Health::Healthy);
                self.state.health_detail = None;
                self.publish();
            }
            HealthReport::Failing {
                consecutive,
                reason,
            } => {
                self.state.health_detail =
                    Some(format!("{consecutive} failed in a row, the last: {reason}"));
                self.publish();
            }
            HealthReport::Unhealthy { reason } => {
                self.health = None;
                self.state.health = Some(kelpie_core::Health::Unhealthy);
                let failures = self.spec.health_check.as_ref().map_or(1, |c| c.failures);
                self.state.health_detail = Some(reason.clone());
                self.publish();
                let why = Why {
                    cause: Cause::Health,
                    detail: format!("health check failed {failures} times in a row: {reason}"),
                };
                self.auto_restart(why, true, None).await;
            }
        }
    }

    /// The cron schedule fired: restart a running process (a stopped app stays stopped), and
    /// arm the next firing.
    pub(super) async fn on_cron(&mut self) {
        let Some(cron) = self.cron.as_mut() else {
            return;
        };
        let now = crate::clock::wall();
        if let Some(target) = cron.target.filter(|target| now < *target) {
            // The wall clock went back since the timer was armed: wait for the real time.
            let left = Duration::try_from(now.duration_until(target)).unwrap_or_default();
            cron.next = Some(Instant::now() + left);
            return;
        }
        let after = cron.target.map_or(now, |target| target.max(now));
        (cron.next, cron.target) = next_firing(&cron.schedule, &cron.zone, after);
        let detail = format!(
            "cron_restart `{}` ({})",
            self.spec.cron_restart.as_deref().unwrap_or_default(),
            zone_name(&cron.zone)
        );
        let why = Why {
            cause: Cause::Cron,
            detail,
        };
        self.auto_restart(why, true, None).await;
    }
}

/// The app's cron schedule, armed for its next firing; `None` without one (a schedule that
/// does not parse was refused when the app was configured, and is logged here).
pub(super) fn cron_timer(spec: &AppSpec) -> Option<CronTimer> {
    let expression = spec.cron_restart.as_deref()?;
    let parsed = CronSchedule::parse(expression).and_then(|schedule| {
        let zone = kelpie_core::cron::time_zone(spec.cron_timezone.as_deref())?;
        Ok((schedule, zone))
    });
    match parsed {
        Ok((schedule, zone)) => {
            let (next, target) = next_firing(&schedule, &zone, crate::clock::wall());
            Some(CronTimer {
                schedule,
                zone,
                next,
                target,
            })
        }
        Err(e) => {
            crate::daemon_log!("app `{}`: cron_restart ignored: {e}", spec.name);
            None
        }
    }
}

/// When `schedule` fires next after `after`: as an instant of the daemon's monotonic clock (to
/// sleep until), and as the wall-clock time it stands for.
fn next_firing(
    schedule: &CronSchedule,
    zone: &jiff::tz::TimeZone,
    after: jiff::Timestamp,
) -> (Option<Instant>, Option<jiff::Timestamp>) {
    let Some(next) = schedule.next_after(&after.to_zoned(zone.clone())) else {
        return (None, None);
    };
    let wait = crate::clock::wall().duration_until(next.timestamp());
    let wait = Duration::try_from(wait).unwrap_or_default();
    (Some(Instant::now() + wait), Some(next.timestamp()))
}

/// A zone's name for people (`Europe/Paris`, `UTC`), or its current offset.
fn zone_name(zone: &jiff::tz::TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => name.to_string(),
        None => zone.to_offset(crate::clock::wall()).to_string(),
    }
}

/// `1500` → `1.5 s`.
pub(super) fn seconds(ms: u64) -> String {
    format!("{} s", ms as f64 / 1000.0)
}
