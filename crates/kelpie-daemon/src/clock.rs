//! The daemon's clock, as `kelpie-core` wants it.

use kelpie_core::Now;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where the monotonic clock counts from: the daemon's start.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn origin() -> Instant {
    *ORIGIN.get_or_init(|| {
        // The in-process tests' paused clocks start when their runtime does, which may be
        // before the first call here: an origin a minute back keeps their times after it.
        #[cfg(test)]
        return Instant::now()
            .checked_sub(std::time::Duration::from_secs(60))
            .unwrap_or_else(Instant::now);
        #[cfg(not(test))]
        Instant::now()
    })
}

/// Go on with the clock of the program this daemon replaced in place (`kelpie update`), which
/// had counted `ms`: monotonic marks handed over stay meaningful. Call before the first `now()`.
pub(crate) fn continue_from(ms: u64) {
    let start = Instant::now()
        .checked_sub(std::time::Duration::from_millis(ms))
        .unwrap_or_else(Instant::now);
    let _ = ORIGIN.set(start);
}

/// Milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> u64 {
    #[cfg(test)]
    if let Some(wall) = test_wall::now() {
        return wall.as_millisecond().max(0) as u64;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall-clock time, for schedules (`cron_restart`).
pub(crate) fn wall() -> jiff::Timestamp {
    #[cfg(test)]
    if let Some(wall) = test_wall::now() {
        return wall;
    }
    jiff::Timestamp::now()
}

/// Now, on both clocks. The monotonic one is tokio's, so that the instance's decisions follow
/// its timers (and a paused clock in the in-process tests); it is the system's in the daemon.
pub(crate) fn now() -> Now {
    let mono = tokio::time::Instant::now().into_std();
    Now {
        mono_ms: mono.saturating_duration_since(origin()).as_millis() as u64,
        wall_ms: wall_ms(),
    }
}

/// Keeps the in-process tests' paused clock where it is while the daemon waits for one of its
/// own threads (the persister writing `state.json`, the log writer): tokio moves a paused clock
/// on to its next timer as soon as its runtime has nothing to run, and it cannot know that such
/// a thread is about to answer, so a test would see an answer arrive at the time of whatever
/// timer came next. Held until dropped. In the daemon, nothing (a unit struct).
pub(crate) struct Held {
    /// Dropping it ends the blocking task that holds the clock.
    #[cfg(test)]
    _release: Option<std::sync::mpsc::Sender<()>>,
}

/// Hold the paused clock until the returned value is dropped (see [`Held`]).
#[cfg(not(test))]
#[inline]
pub(crate) fn hold() -> Held {
    Held {}
}

/// Hold the paused clock until the returned value is dropped: tokio does not move a paused
/// clock while a blocking task runs, and this one runs until the value is dropped.
#[cfg(test)]
pub(crate) fn hold() -> Held {
    if tokio::runtime::Handle::try_current().is_err() {
        return Held { _release: None };
    }
    let (release, released) = std::sync::mpsc::channel::<()>();
    #[expect(
        clippy::disallowed_methods,
        reason = "held by the returned value: ends when it is dropped"
    )]
    tokio::task::spawn_blocking(move || {
        // Returns once the sender is dropped.
        let _ = released.recv();
    });
    Held {
        _release: Some(release),
    }
}

/// A random number drawn once per daemon: with the pid, names what must be unique across
/// daemons that may share a pid (each the pid 1 of its own namespace).
pub(crate) fn daemon_tag() -> u64 {
    use std::hash::BuildHasher;
    static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // std seeds each RandomState from the system's randomness: no dependency needed for this.
    *TAG.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()))
}

/// The in-process tests' wall clock: it starts where the test says and moves with tokio's
/// paused clock, on the test's thread only (its runtime is single-threaded).
#[cfg(test)]
pub(crate) mod test_wall {
    use std::cell::Cell;

    thread_local! {
        static START: Cell<Option<(jiff::Timestamp, tokio::time::Instant)>> = const { Cell::new(None) };
    }

    /// From now on (on this thread), the wall clock reads `at`, and moves as tokio's clock does.
    pub(crate) fn set(at: jiff::Timestamp) {
        START.with(|start| start.set(Some((at, tokio::time::Instant::now()))));
    }

    /// The test's wall-clock time, if this thread set one.
    pub(super) fn now() -> Option<jiff::Timestamp> {
        let (at, since) = START.with(Cell::get)?;
        let elapsed = jiff::SignedDuration::try_from(since.elapsed()).ok()?;
        at.checked_add(elapsed).ok()
    }
}
