//! The instance's clocks: the state machine's single timer (a restart's delay, `kill_timeout`,
//! `listen_timeout`), the `cron_restart` schedule and the watchdog.

use crate::maybe::until;
use kelpie_core::cron::CronSchedule;
use kelpie_core::{AppSpec, Cause, Why};
use std::time::Duration;
use tokio::time::Instant;

/// The instance's timers, and when each fires next.
pub(super) struct Timers {
    /// The state machine's timer ([`kelpie_core::Effect::ArmTimer`]).
    machine: Option<Instant>,
    /// The app's `cron_restart`, if it has one.
    cron: Option<CronTimer>,
    /// When the current process must have sent `WATCHDOG=1` again.
    watchdog_at: Option<Instant>,
}

/// Which timer fired.
pub(super) enum TimerWake {
    /// The state machine's ([`kelpie_core::Input::TimerFired`]).
    Machine,
    /// The `cron_restart` schedule.
    Cron,
    /// The process stopped sending `WATCHDOG=1`.
    WatchdogLate,
}

/// The `cron_restart` schedule and its next firing.
struct CronTimer {
    schedule: CronSchedule,
    zone: jiff::tz::TimeZone,
    /// When the timer wakes the task (monotonic).
    next: Option<Instant>,
    /// The wall-clock time it stands for: the timer may wake early if the clock was set back.
    target: Option<jiff::Timestamp>,
}

impl Timers {
    /// Nothing armed but `spec`'s cron schedule.
    pub(super) fn new(spec: &AppSpec) -> Self {
        Timers {
            machine: None,
            cron: cron_timer(spec),
            watchdog_at: None,
        }
    }

    /// Wait until a timer fires; the state machine's and the watchdog are then disarmed.
    ///
    /// One sleep, until the earliest of the three: every idle instance's task holds room for
    /// the timer it waits on, and a tokio sleep is about 150 bytes. Timers due at the same
    /// instant fire one per call, the state machine's first.
    pub(super) async fn wake(&mut self) -> TimerWake {
        let cron_at = self.cron.as_ref().and_then(|c| c.next);
        let earliest = [self.machine, cron_at, self.watchdog_at]
            .into_iter()
            .flatten()
            .min();
        until(earliest).await;
        if self.machine.is_some() && self.machine == earliest {
            self.machine = None;
            TimerWake::Machine
        } else if cron_at.is_some() && cron_at == earliest {
            TimerWake::Cron
        } else {
            self.watchdog_at = None;
            TimerWake::WatchdogLate
        }
    }

    /// Arm the state machine's timer to fire in `ms` (replacing any armed one).
    pub(super) fn arm(&mut self, ms: u64) {
        self.arm_in(Duration::from_millis(ms));
    }

    /// Arm the state machine's timer to fire after `wait`.
    pub(super) fn arm_in(&mut self, wait: Duration) {
        self.machine = Some(Instant::now() + wait);
    }

    /// Disarm the state machine's timer.
    pub(super) fn cancel(&mut self) {
        self.machine = None;
    }

    /// Whether the state machine's timer is armed.
    pub(super) fn armed(&self) -> bool {
        self.machine.is_some()
    }

    /// Disarm the state machine's timer, and say how long it had left to wait, if it was armed.
    pub(super) fn take_left(&mut self) -> Option<Duration> {
        let at = self.machine.take()?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// When the cron schedule fires next (ms since the Unix epoch), if the app has one.
    pub(super) fn next_run_ms(&self) -> Option<u64> {
        let target = self.cron.as_ref()?.target?;
        u64::try_from(target.as_millisecond()).ok()
    }

    /// Use `spec`'s cron schedule from now on.
    pub(super) fn reschedule(&mut self, spec: &AppSpec) {
        self.cron = cron_timer(spec);
    }

    /// A new process: its watchdog is armed by its first `WATCHDOG=1`.
    pub(super) fn new_process(&mut self) {
        self.watchdog_at = None;
    }

    /// The process sent `WATCHDOG=1`: it must send the next one within `watchdog`.
    pub(super) fn watchdog_fed(&mut self, spec: &AppSpec) {
        if let Some(ms) = spec.watchdog_ms {
            self.watchdog_at = Some(Instant::now() + Duration::from_millis(ms));
        }
    }

    /// The cron schedule fired: why to restart the process (if one runs; a stopped app stays
    /// stopped), with the next firing armed. `None` when the wall clock went back since the
    /// timer was armed: it waits on for the real time.
    pub(super) fn cron_fired(&mut self, spec: &AppSpec) -> Option<Why> {
        let cron = self.cron.as_mut()?;
        let now = crate::clock::wall();
        if let Some(target) = cron.target.filter(|target| now < *target) {
            let left = Duration::try_from(now.duration_until(target)).unwrap_or_default();
            cron.next = Some(Instant::now() + left);
            return None;
        }
        let after = cron.target.map_or(now, |target| target.max(now));
        (cron.next, cron.target) = next_firing(&cron.schedule, &cron.zone, after);
        let detail = format!(
            "cron_restart `{}` ({})",
            spec.cron_restart.as_deref().unwrap_or_default(),
            zone_name(&cron.zone)
        );
        Some(Why {
            cause: Cause::Cron,
            detail,
            from_start: false,
        })
    }
}

/// Why a process whose watchdog fired is restarted.
pub(super) fn watchdog_late(spec: &AppSpec) -> Why {
    let limit = spec.watchdog_ms.unwrap_or_default();
    Why {
        cause: Cause::Watchdog,
        detail: format!("no WATCHDOG=1 within watchdog ({})", seconds(limit)),
        from_start: false,
    }
}

/// The app's cron schedule, armed for its next firing; `None` without one (a schedule that
/// does not parse was refused when the app was configured, and is logged here).
fn cron_timer(spec: &AppSpec) -> Option<CronTimer> {
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
fn seconds(ms: u64) -> String {
    format!("{} s", ms as f64 / 1000.0)
}
