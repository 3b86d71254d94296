//! When the state goes to disk: with a command, before its answer (the answer waits for the
//! write); after a change no command caused that a new daemon would act on (an app that
//! stopped wanting to run: it errored, it finished), at most 100 ms later; after one it would
//! not (a crash loop's restart: a new pid, its counters), at most 5 s later. Either wait
//! is ten times as long as the last write took when that is longer (a state of thousands of
//! apps takes milliseconds to write: the persister then spends at most a tenth of its time on
//! them, instead of writing the whole table every 100 ms while they start).
//!
//! Why a restart can wait: what a new daemon needs of a running instance is that it runs, and
//! that was on disk already. A process whose pid is not on disk yet is found all the same by
//! a daemon that follows one that died (its keeper hands it over, or the look in /proc for the
//! home's processes finds it: `supervisor/unrecorded.rs`), and a daemon that ends on purpose
//! writes the state first (`shutdown.rs`). What waits is the counters' last 5 s after a
//! crash of the daemon. Writing each restart cost a crash loop of 30 apps ten state writes a
//! second (a fifth of a millisecond of CPU per restart); writing them once a second still
//! cost a crash loop of 30 Node apps (15 restarts a second) 0.12 ms of CPU per restart (the
//! whole table serialised, written, synced, the heap trimmed), every 5 s 0.02. Under
//! `kelpie runtime` nothing is written (its apps live as long as it does), nor once the daemon
//! is exiting (the state on disk stays the one from before the apps were stopped, so the next
//! daemon starts them again).

use super::apps::Apps;
use crate::maybe::until;
use crate::persist::{Ack, Persister};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// State changes not caused by a command that a new daemon would act on (an app that stopped
/// wanting to run) are written at most this often.
pub(super) const PERSIST_DEBOUNCE: Duration = Duration::from_millis(100);
/// Those it would not act on (a restart: a new pid, the counters) at most this often.
pub(super) const PERSIST_LAZILY: Duration = Duration::from_secs(5);
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

/// How long a change waits to be written: `debounce`, or [`WRITE_COST_FACTOR`] times what the
/// last write took (on the real clock), whichever is longer.
pub(super) fn write_wait(debounce: Duration, last_write: Duration) -> Duration {
    debounce.max(last_write * WRITE_COST_FACTOR)
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

    /// The table changed without a command, in a way a new daemon would act on: written within
    /// [`PERSIST_DEBOUNCE`].
    pub(super) fn changed(&mut self) {
        self.due_within(PERSIST_DEBOUNCE);
    }

    /// The table changed without a command, in a way a new daemon would not act on (see the
    /// module's note): written within [`PERSIST_LAZILY`], or with an earlier change.
    pub(super) fn changed_lazily(&mut self) {
        self.due_within(PERSIST_LAZILY);
    }

    fn due_within(&mut self, debounce: Duration) {
        if !self.writes {
            return;
        }
        let at = Instant::now() + write_wait(debounce, self.persister.last_write());
        if self.due.is_none_or(|due| at < due) {
            self.due = Some(at);
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
