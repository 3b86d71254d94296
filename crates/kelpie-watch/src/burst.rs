//! A burst of changes an app's watch gathers, and when it is due to be sent (see "Bursts" in
//! the module's documentation).

#[cfg(target_os = "linux")]
use super::table::App;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A burst in progress.
pub(super) struct Burst {
    pub(super) first_path: PathBuf,
    pub(super) changes: usize,
    pub(super) first: Instant,
    pub(super) last: Instant,
}

impl Burst {
    /// Count a change at `path` in the burst of `slot`, starting one if there is none.
    pub(super) fn record_in(slot: &mut Option<Burst>, path: &Path, now: Instant) {
        match slot {
            Some(burst) => {
                burst.changes += 1;
                burst.last = now;
            }
            None => {
                *slot = Some(Burst {
                    first_path: path.to_path_buf(),
                    changes: 1,
                    first: now,
                    last: now,
                })
            }
        }
    }

    /// When the burst of `slot` is due: `delay` after its last change, at the latest `hold`
    /// after its first.
    pub(super) fn deadline_of(
        slot: Option<&Burst>,
        delay: Duration,
        hold: Duration,
    ) -> Option<Instant> {
        slot.map(|burst| (burst.last + delay).min(burst.first + hold))
    }
}

#[cfg(target_os = "linux")]
impl App {
    pub(super) fn record(&mut self, path: &Path, now: Instant) {
        Burst::record_in(&mut self.burst, path, now);
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        Burst::deadline_of(self.burst.as_ref(), self.delay, self.hold)
    }
}
