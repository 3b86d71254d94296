//! A burst of changes an app's watch gathers, and when it is due to be sent (see "Bursts" in
//! the module's documentation).

use super::table::App;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A burst in progress.
pub(super) struct Burst {
    pub(super) first_path: PathBuf,
    pub(super) changes: usize,
    pub(super) first: Instant,
    pub(super) last: Instant,
}

impl App {
    pub(super) fn record(&mut self, path: &Path, now: Instant) {
        match &mut self.burst {
            Some(burst) => {
                burst.changes += 1;
                burst.last = now;
            }
            None => {
                self.burst = Some(Burst {
                    first_path: path.to_path_buf(),
                    changes: 1,
                    first: now,
                    last: now,
                })
            }
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.burst
            .as_ref()
            .map(|burst| (burst.last + self.delay).min(burst.first + self.hold))
    }
}
