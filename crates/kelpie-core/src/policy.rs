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

#[cfg(test)]
mod tests {
    use super::*;

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
