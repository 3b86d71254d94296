//! The daemon's clock, as `kelpie-core` wants it.
//!
//! The in-process tests of the crates above (the daemon's instance and supervisor tests) run on
//! tokio's paused clock. What they need of this clock ([`paused_tests`]: a wall clock they set,
//! an origin before their runtime's start, and [`hold`] keeping the paused clock while a thread
//! answers) is switched on at run time by their fixtures, not compiled in by `cfg(test)`, which
//! a crate sees only in its own tests. In the daemon the switch is off: one relaxed load in
//! [`hold`] and in the wall clock, and nothing else.

use kelpie_core::Now;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Whether an in-process test with a paused clock runs in this process ([`paused_tests`]).
static PAUSED_TESTS: AtomicBool = AtomicBool::new(false);

/// For the in-process tests of a paused tokio clock, called by their fixtures before anything
/// reads the clock: from now on in this process, [`hold`] keeps a paused clock while a thread
/// answers, the wall clock is the one a test sets ([`test_wall`]), and the monotonic clock
/// counts from a minute back (a paused clock starts when its runtime does, which may be before
/// the first reading here). Never called by the daemon.
pub fn paused_tests() {
    PAUSED_TESTS.store(true, Ordering::Relaxed);
    continue_from(60_000);
}

fn paused_tests_on() -> bool {
    PAUSED_TESTS.load(Ordering::Relaxed)
}

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
    if let Some(wall) = test_wall::now() {
        return wall.as_millisecond().max(0) as u64;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall-clock time, for schedules (`cron_restart`).
pub fn wall() -> jiff::Timestamp {
    if let Some(wall) = test_wall::now() {
        return wall;
    }
    jiff::Timestamp::now()
}

/// Now, on both clocks. The monotonic one is tokio's, so that the instance's decisions follow
/// its timers (and a paused clock in the in-process tests); it is the system's in the daemon.
pub fn now() -> Now {
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
/// timer came next. Held until dropped. In the daemon, nothing (`None`).
pub struct Held {
    /// Dropping it ends the blocking task that holds the clock.
    _release: Option<std::sync::mpsc::Sender<()>>,
}

/// Hold the paused clock until the returned value is dropped: tokio does not move a paused
/// clock while a blocking task runs, and this one runs until the value is dropped. Unless
/// [`paused_tests`] was called, nothing is held.
#[inline]
pub fn hold() -> Held {
    if !paused_tests_on() || tokio::runtime::Handle::try_current().is_err() {
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
pub fn daemon_tag() -> u64 {
    use std::hash::BuildHasher;
    static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // std seeds each RandomState from the system's randomness: no dependency needed for this.
    *TAG.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()))
}

/// The in-process tests' wall clock: it starts where the test says and moves with tokio's
/// paused clock, on the test's thread only (its runtime is single-threaded). Read only once
/// [`paused_tests`] was called.
pub mod test_wall {
    use std::cell::Cell;

    thread_local! {
        static START: Cell<Option<(jiff::Timestamp, tokio::time::Instant)>> = const { Cell::new(None) };
    }

    /// From now on (on this thread), the wall clock reads `at`, and moves as tokio's clock does.
    pub fn set(at: jiff::Timestamp) {
        super::paused_tests();
        START.with(|start| start.set(Some((at, tokio::time::Instant::now()))));
    }

    /// The test's wall-clock time, if this thread set one.
    pub(super) fn now() -> Option<jiff::Timestamp> {
        if !super::paused_tests_on() {
            return None;
        }
        let (at, since) = START.with(Cell::get)?;
        let elapsed = jiff::SignedDuration::try_from(since.elapsed()).ok()?;
        at.checked_add(elapsed).ok()
    }
}
