//! The daemon's clock, as `kelpie-core` wants it.

use kelpie_core::Now;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where the monotonic clock counts from: the daemon's start.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Go on with the clock of the program this daemon replaced in place (`kelpie update`), which
/// had counted `ms`: monotonic marks handed over stay meaningful. Call before the first `now()`.
pub fn continue_from(ms: u64) {
    let start = Instant::now()
        .checked_sub(std::time::Duration::from_millis(ms))
        .unwrap_or_else(Instant::now);
    let _ = ORIGIN.set(start);
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, on both clocks.
pub fn now() -> Now {
    Now {
        mono_ms: origin().elapsed().as_millis() as u64,
        wall_ms: wall_ms(),
    }
}

/// A random number drawn once per daemon: with the pid, names what must be unique across
/// daemons that may share a pid (each the pid 1 of its own namespace).
pub fn daemon_tag() -> u64 {
    use std::hash::BuildHasher;
    static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // std seeds each RandomState from the system's randomness: no dependency needed for this.
    *TAG.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()))
}
