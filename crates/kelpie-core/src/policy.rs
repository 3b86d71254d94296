//! PM2's numbers for exponential restart backoff.

/// Each backoff delay is the previous one times this.
pub const BACKOFF_GROWTH: f64 = 1.5;
/// Backoff never waits longer than this (ms).
pub const BACKOFF_CAP_MS: u64 = 15_000;
/// A run at least this long resets the backoff to its initial delay (ms).
pub const BACKOFF_RESET_AFTER_MS: u64 = 30_000;

/// The delay before the next restart under exponential backoff: `initial` the first time, then
/// ×1.5 of the previous delay, capped at 15 s (PM2's `God.handleExit`).
pub fn next_backoff_delay(initial_ms: u64, previous_ms: u64) -> u64 {
    if previous_ms == 0 {
        return initial_ms.min(BACKOFF_CAP_MS);
    }
    let grown = (previous_ms as f64 * BACKOFF_GROWTH).floor() as u64;
    grown.min(BACKOFF_CAP_MS)
}

/// Without a restart delay of its own, an app that keeps crashing before `min_uptime` is not
/// restarted at once each time (PM2 burns its 15 restarts in a few seconds that way): the
/// second unstable run in a row waits this long, and each next one 1.5× longer.
pub(crate) const CRASH_LOOP_INITIAL_MS: u64 = 100;
/// The longest wait of a crash loop's backoff (ms).
pub(crate) const CRASH_LOOP_CAP_MS: u64 = 5_000;

/// The wait before restarting an app with no restart delay of its own after its
/// `unstable_runs`-th unstable run in a row: none after the first (one crash is restarted at
/// once), then 100 ms growing by half, capped at 5 s.
pub(crate) fn crash_loop_delay(unstable_runs: u32) -> u64 {
    if unstable_runs < 2 {
        return 0;
    }
    let mut delay = CRASH_LOOP_INITIAL_MS;
    for _ in 2..unstable_runs {
        delay = ((delay as f64 * BACKOFF_GROWTH).floor() as u64).min(CRASH_LOOP_CAP_MS);
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loop_backs_off_from_its_second_unstable_run() {
        let delays: Vec<u64> = (0..8).map(crash_loop_delay).collect();
        assert_eq!(delays, [0, 0, 100, 150, 225, 337, 505, 757]);
        assert_eq!(crash_loop_delay(40), CRASH_LOOP_CAP_MS);
        // PM2's default max_restarts (15) now takes tens of seconds, not a few.
        let total: u64 = (1..15).map(crash_loop_delay).sum();
        assert!(total > 20_000, "{total}");
    }

    #[test]
    fn backoff_grows_by_half_and_caps_at_fifteen_seconds() {
        let mut delays = Vec::new();
        let mut prev = 0;
        for _ in 0..20 {
            prev = next_backoff_delay(100, prev);
            delays.push(prev);
        }
        assert_eq!(&delays[..5], &[100, 150, 225, 337, 505]);
        assert_eq!(*delays.last().expect("delays"), 15_000);
    }
}
