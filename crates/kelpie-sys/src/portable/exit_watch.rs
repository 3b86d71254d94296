//! Knowing when a process exits without a pidfd: what the portable backend gives
//! [`crate::watch_exit`]'s callers in its place, a descriptor that becomes readable once the
//! process has exited.
//!
//! Each watch is a pipe: the caller gets its read end, and one thread of this module holds the
//! write end until the process has exited, then closes it (the read end sees end-of-file:
//! readable, as a pidfd is). The thread wakes on every SIGCHLD and checks the daemon's
//! children it watches with `waitid(WNOWAIT)`, which leaves each status for its owner to
//! collect (and the pid, and its group's number, unused until then). A process that is not a
//! child (one an earlier daemon started) sends no SIGCHLD: it is polled, every
//! [`POLL_OTHERS`], and counts as exited once its pid is gone or names a process that started
//! at another time (the pid was reused). On macOS, kqueue's `EVFILT_PROC` watches those
//! without polling (`crate::macos::exit_event`).
//!
//! Costs against a pidfd: two descriptors per watch instead of one (the write end is the
//! thread's), and a `waitid` per watched child at each SIGCHLD (10 000 apps: ~5 ms of CPU per
//! exit).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often processes that are not children are looked at.
pub(crate) const POLL_OTHERS: Duration = Duration::from_millis(200);

/// A watched process and the write end that is closed when it exits.
struct Watch {
    /// Held open until the process has exited: closing it is what the watcher's caller sees.
    _write: OwnedFd,
    /// For a process that is not a child: when it started, to tell it from a later process
    /// given the same pid.
    started: Option<u64>,
}

#[derive(Default)]
struct Watched {
    children: HashMap<u32, Watch>,
    others: HashMap<u32, Watch>,
}

struct Watcher {
    watched: Mutex<Watched>,
    /// Written to (one byte, never blocking) to wake the thread: by the SIGCHLD handler, and
    /// when a process that is not a child is added. Kept open for the handler, which writes to
    /// its number.
    #[cfg_attr(
        target_os = "macos",
        expect(
            dead_code,
            reason = "macOS adds no process to poll: only the handler writes"
        )
    )]
    wake: OwnedFd,
}

static WATCHER: OnceLock<io::Result<Watcher>> = OnceLock::new();

fn watcher() -> io::Result<&'static Watcher> {
    match WATCHER.get_or_init(start) {
        Ok(watcher) => Ok(watcher),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot watch exits: {e}"))),
    }
}

fn start() -> io::Result<Watcher> {
    let (woken, wake) = crate::portable::pipe_pair(true)?;
    std::thread::Builder::new()
        .name("kelpie-exits".into())
        .spawn(move || run(&woken))?;
    // Last: from here the handler writes to `wake`'s number, which the watcher then keeps
    // open for the life of the process (a failure before would have closed it).
    crate::portable::on_sigchld(wake.as_fd())?;
    Ok(Watcher {
        watched: Mutex::new(Watched::default()),
        wake,
    })
}

/// A descriptor readable once `pid` has exited (close-on-exec, non-blocking).
pub(crate) fn watch_exit(pid: u32) -> io::Result<OwnedFd> {
    let watcher = watcher()?;
    let (read, write) = crate::portable::pipe_pair(true)?;
    let mut watched = lock(&watcher.watched);
    match child_state(pid) {
        // Ended already: the read end is readable at once.
        Some(true) => return Ok(read),
        Some(false) => {
            watched.children.insert(
                pid,
                Watch {
                    _write: write,
                    started: None,
                },
            );
        }
        None => {
            drop(watched);
            return watch_other(watcher, pid, read, write);
        }
    }
    Ok(read)
}

/// A process that is not a child: macOS watches it with kqueue (`macos/exit_event.rs`);
/// elsewhere the thread polls it. `read` and `write` are the watch's pipe.
#[cfg(target_os = "macos")]
fn watch_other(_: &Watcher, pid: u32, read: OwnedFd, _: OwnedFd) -> io::Result<OwnedFd> {
    Ok(crate::macos::exit_event::watch(pid)?.unwrap_or(read))
}

#[cfg(not(target_os = "macos"))]
fn watch_other(watcher: &Watcher, pid: u32, read: OwnedFd, write: OwnedFd) -> io::Result<OwnedFd> {
    let Some(started) = alive_since(pid) else {
        return Ok(read);
    };
    lock(&watcher.watched).others.insert(
        pid,
        Watch {
            _write: write,
            started: Some(started),
        },
    );
    // The thread may be asleep with no timeout: it polls from now on.
    wake(&watcher.wake);
    Ok(read)
}

/// For a child: whether it has ended (`Some(true)`), without collecting it. `None`: not a child
/// of this process (or collected already).
fn child_state(pid: u32) -> Option<bool> {
    crate::child_has_ended(pid).ok()
}

#[cfg(not(target_os = "macos"))]
fn wake(fd: &OwnedFd) {
    // Full means a wake-up is pending already.
    let _ = rustix::io::write(fd, &[1]);
}

fn lock(watched: &Mutex<Watched>) -> std::sync::MutexGuard<'_, Watched> {
    // Nothing is left half-done under the lock: a poisoned one is still consistent.
    watched
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The thread: wait for a wake-up (or the poll's timeout), look again.
fn run(woken: &OwnedFd) {
    let Ok(watcher) = watcher() else { return };
    let mut drain = [0u8; 64];
    loop {
        let polling = !lock(&watcher.watched).others.is_empty();
        // Children are looked at every second besides, in case a SIGCHLD went to a handler
        // installed after ours that did not pass it on.
        let timeout = if polling {
            POLL_OTHERS
        } else {
            Duration::from_secs(1)
        };
        let _ = crate::wait_readable(woken.as_fd(), timeout);
        while matches!(rustix::io::read(woken, &mut drain), Ok(n) if n > 0) {}
        look(&mut lock(&watcher.watched));
    }
}

/// Close the write end of every watched process that has exited.
fn look(watched: &mut Watched) {
    // A child collected by someone else (`None`) has ended too.
    watched
        .children
        .retain(|pid, _| child_state(*pid) == Some(false));
    watched.others.retain(|pid, watch| {
        alive_since(*pid).is_some_and(|started| Some(started) == watch.started)
    });
}

/// When the process `pid` started, if it runs: a zombie has exited (its parent has not
/// collected it yet, which for an orphan is the system's init, late or never in a container).
fn alive_since(pid: u32) -> Option<u64> {
    crate::sample_process(pid)
        .filter(|sample| !sample.zombie)
        .map(|sample| sample.start_ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_s_watch_is_readable_once_it_exits_and_its_status_is_left_to_collect() {
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.2; exit 7"])
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let watch = watch_exit(pid).expect("watch");
        assert!(
            !crate::poll::readable_within(watch.as_fd(), Duration::from_millis(50)),
            "still running"
        );
        assert!(crate::poll::readable_within(
            watch.as_fd(),
            Duration::from_secs(10)
        ));
        let status = crate::try_wait_child(pid).expect("wait").expect("ended");
        assert_eq!(status.code(), Some(7), "the status was left to collect");
        drop(child);
    }

    #[test]
    fn a_process_that_is_not_a_child_is_seen_to_exit_by_polling() {
        // A grandchild: `sh` starts `sleep` in the background and exits at once.
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 0.5 >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("run");
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
        let watch = watch_exit(pid).expect("watch");
        assert!(!crate::poll::readable_within(
            watch.as_fd(),
            Duration::from_millis(50)
        ));
        assert!(crate::poll::readable_within(
            watch.as_fd(),
            Duration::from_secs(10)
        ));
        assert!(alive_since(pid).is_none());
    }

    #[test]
    fn a_process_that_ended_already_is_readable_at_once() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        while !crate::child_has_ended(pid).expect("waitid") {
            std::thread::sleep(Duration::from_millis(5));
        }
        let watch = watch_exit(pid).expect("watch");
        assert!(crate::poll::readable_within(
            watch.as_fd(),
            Duration::from_millis(0)
        ));
        child.wait().expect("collect");
    }
}
