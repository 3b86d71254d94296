//! The counting of a check ([`Verdicts`]), pure: when to probe, the start period, failures in a
//! row, and what is worth a report.

use super::HealthReport;
use kelpie_core::HealthCheck;
use std::time::Duration;
use tokio::time::Instant;

/// When a start period is set, the first probe comes this soon (or one interval, if shorter):
/// failures then cost nothing, and an early success ends the start period early.
const FIRST_PROBE_IN_START_PERIOD: Duration = Duration::from_secs(1);

/// Intervals are at least this long, so a zero in a config cannot make the loop spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The bookkeeping of one check, without IO: when to probe, which failures count, and which
/// outcomes are worth a report. Times are passed in so tests need no clock.
#[derive(Debug)]
pub(super) struct Verdicts {
    started: Instant,
    interval: Duration,
    failures: u32,
    /// End of the start period; `None` once it is over, by time or by a first success.
    grace_until: Option<Instant>,
    consecutive: u32,
    /// Whether the last report was `Healthy`, so that only changes are reported.
    healthy: bool,
}

impl Verdicts {
    pub(super) fn new(check: &HealthCheck, started: Instant) -> Self {
        Verdicts {
            started,
            interval: Duration::from_millis(check.interval_ms).max(MIN_INTERVAL),
            // `failures: 0` cannot mean "never": one failure is then enough.
            failures: check.failures.max(1),
            grace_until: (check.start_period_ms > 0)
                .then(|| started + Duration::from_millis(check.start_period_ms)),
            consecutive: 0,
            healthy: false,
        }
    }

    /// Without a start period the process gets one interval to come up (as with Docker), since
    /// every failure counts; with one, failures are free, so probing early can only help.
    pub(super) fn first_probe_at(&self) -> Instant {
        let delay = if self.grace_until.is_some() {
            self.interval.min(FIRST_PROBE_IN_START_PERIOD)
        } else {
            self.interval
        };
        self.started + delay
    }

    /// Probes start one interval apart; a probe that outlasted the interval is followed at once
    /// (never two at a time).
    pub(super) fn next_probe_at(&self, probe_started: Instant, probe_ended: Instant) -> Instant {
        (probe_started + self.interval).max(probe_ended)
    }

    pub(super) fn success(&mut self) -> Option<HealthReport> {
        // As in Docker: a success means the app is up, so later failures count even within the
        // start period.
        self.grace_until = None;
        self.consecutive = 0;
        let was_healthy = std::mem::replace(&mut self.healthy, true);
        (!was_healthy).then_some(HealthReport::Healthy)
    }

    /// A probe that started at `probe_started` failed. Failures of probes started within the
    /// start period are not counted nor reported.
    pub(super) fn failure(
        &mut self,
        probe_started: Instant,
        reason: String,
    ) -> Option<HealthReport> {
        if self.grace_until.is_some_and(|end| probe_started < end) {
            return None;
        }
        self.grace_until = None;
        self.healthy = false;
        self.consecutive = self.consecutive.saturating_add(1);
        Some(if self.consecutive >= self.failures {
            HealthReport::Unhealthy { reason }
        } else {
            HealthReport::Failing {
                consecutive: self.consecutive,
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::HealthProbe;

    fn check(interval_ms: u64, failures: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            probe: HealthProbe::Exec {
                command: "true".into(),
            },
            interval_ms,
            timeout_ms: 1_000,
            failures,
            start_period_ms,
        }
    }

    fn failing(consecutive: u32, reason: &str) -> Option<HealthReport> {
        Some(HealthReport::Failing {
            consecutive,
            reason: reason.into(),
        })
    }

    // --- counting, without IO ---

    #[test]
    fn healthy_is_reported_on_the_first_success_and_on_recoveries_only() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 3, 0), t0);
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.success(), None);
        assert_eq!(v.failure(t0, "a".into()), failing(1, "a"));
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.success(), None);
    }

    #[test]
    fn failures_in_a_row_end_unhealthy_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 3, 0), t0);
        assert_eq!(v.failure(t0, "a".into()), failing(1, "a"));
        assert_eq!(v.failure(t0, "b".into()), failing(2, "b"));
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.failure(t0, "c".into()), failing(1, "c"));
        assert_eq!(v.failure(t0, "d".into()), failing(2, "d"));
        assert_eq!(
            v.failure(t0, "e".into()),
            Some(HealthReport::Unhealthy { reason: "e".into() })
        );
    }

    #[test]
    fn zero_failures_means_one() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 0, 0), t0);
        assert_eq!(
            v.failure(t0, "x".into()),
            Some(HealthReport::Unhealthy { reason: "x".into() })
        );
    }

    #[test]
    fn failures_of_probes_started_in_the_start_period_are_not_counted() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 2, 1_000), t0);
        assert_eq!(v.failure(t0 + Duration::from_millis(100), "a".into()), None);
        assert_eq!(v.failure(t0 + Duration::from_millis(999), "b".into()), None);
        assert_eq!(
            v.failure(t0 + Duration::from_millis(1_000), "c".into()),
            failing(1, "c")
        );
        // Once counting has begun, an earlier probe start does not bring the grace back.
        assert_eq!(
            v.failure(t0 + Duration::from_millis(500), "d".into()),
            Some(HealthReport::Unhealthy { reason: "d".into() })
        );
    }

    #[test]
    fn a_success_ends_the_start_period_early() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 2, 10_000), t0);
        assert_eq!(v.failure(t0 + Duration::from_millis(100), "a".into()), None);
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(
            v.failure(t0 + Duration::from_millis(300), "b".into()),
            failing(1, "b")
        );
    }

    #[test]
    fn probes_are_scheduled_one_interval_apart_and_never_overlap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let plain = Verdicts::new(&check(5_000, 3, 0), t0);
        assert_eq!(plain.first_probe_at(), t0 + ms(5_000));
        let graced = Verdicts::new(&check(5_000, 3, 30_000), t0);
        assert_eq!(graced.first_probe_at(), t0 + FIRST_PROBE_IN_START_PERIOD);
        let short = Verdicts::new(&check(200, 3, 30_000), t0);
        assert_eq!(short.first_probe_at(), t0 + ms(200));
        assert_eq!(plain.next_probe_at(t0, t0 + ms(30)), t0 + ms(5_000));
        assert_eq!(plain.next_probe_at(t0, t0 + ms(6_000)), t0 + ms(6_000));
        let zero = Verdicts::new(&check(0, 3, 0), t0);
        assert_eq!(zero.first_probe_at(), t0 + MIN_INTERVAL);
    }
}
