//! The daemon's clock, as `kelpie-core` wants it.

use kelpie_core::Now;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
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
