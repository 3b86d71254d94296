//! When the state goes to disk: with a command, before its answer (the answer waits for the
//! write); after a change no command caused (a crash, a restart), at most 100 ms later, or ten
//! times as long as the last write took when that is longer (a state of thousands of apps
//! takes milliseconds to write: the persister then spends at most a tenth of its time on
//! them, instead of writing the whole table every 100 ms while they start). Under
//! `kelpie runtime` nothing is written (its apps live as long as it does), nor once the daemon
//! is exiting (the state on disk stays the one from before the apps were stopped, so the next
//! daemon starts them again).

use super::apps::Apps;
use crate::maybe::until;
use crate::persist::{Ack, Persister};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// State changes not caused by a command (a crash, a restart) are written at most this often.
const PERSIST_DEBOUNCE: Duration = Duration::from_millis(100);
/// ... and at most this share of the time: the wait is this many times the last write.
const WRITE_COST_FACTOR: u32 = 10;

/// The state's way to disk.
pub(super) struct Persistence {
    /// Writes `state.json`, the dump and the configuration store, in order, off the async
    /// thread.
    persister: Persister,
    /// When the changes not written yet are due.
    due: Option<Instant>,
    /// Whether the state is written: not under `kelpie runtime`, nor once exiting.
    writes: bool,
}

impl Persistence {
    /// `writes`: whether the state is written at all.
    pub(super) fn new(persister: Persister, writes: bool) -> Persistence {
        Persistence {
            persister,
            due: None,
            writes,
        }
    }

    /// The table changed without a command: written within [`PERSIST_DEBOUNCE`].
    pub(super) fn changed(&mut self) {
        if self.writes && self.due.is_none() {
            let wait = PERSIST_DEBOUNCE.max(self.persister.last_write() * WRITE_COST_FACTOR);
            self.due = Some(Instant::now() + wait);
        }
    }

    /// Ready when the changes not written yet are due; never when there are none.
    pub(super) fn due(&self) -> impl Future<Output = ()> + 'static {
        until(self.due)
    }

    /// Write `apps` now; `ack` hears when it is on disk (at once when nothing is written).
    pub(super) fn write(&mut self, apps: &Apps, ack: Option<Ack>) {
        self.due = None;
        if !self.writes {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(()));
            }
            return;
        }
        self.persister.write_state(apps.state_file(), ack);
    }

    /// The daemon is exiting: what is on disk now stays.
    pub(super) fn keep_what_is_on_disk(&mut self) {
        self.writes = false;
        self.due = None;
    }

    /// The thread that writes the other files (dump, configuration store).
    pub(super) fn persister(&self) -> &Persister {
        &self.persister
    }
}
