//! Reaping orphans when Kelpie is a container's init (`kelpie runtime`).
//!
//! As pid 1 (or a child subreaper) Kelpie inherits every process whose parent died, and must
//! reap them or they stay zombies. But its own children are waited for by tokio (each instance
//! task's `Child::wait`, which calls `waitpid(pid)` for that pid): a `waitpid(-1)` here would
//! steal those exit statuses, and the instance would never learn how its process ended.
//!
//! So the two are told apart by *who forked them*: every fork of the daemon goes through
//! [`spawning`], which holds a shared gate across the fork and records the child (pid and start
//! time) before letting go. The reaper thread, woken by SIGCHLD, lists the zombies whose parent
//! is us (one pass over /proc), then, under the exclusive gate (so no fork is half-recorded),
//! reaps by pid each one that is not recorded: an orphan. Recorded children are left for tokio.
//! Pid reuse cannot confuse it: a record is (pid, start time), and records whose process is no
//! longer our child are dropped on each pass.
//!
//! Outside `kelpie runtime` the gate is never enabled and [`spawning`] costs an atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

/// Whether the reaper runs (children must then be recorded).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Held shared by each fork until its child is recorded, exclusively by a reaping pass.
static GATE: RwLock<()> = RwLock::new(());
/// The daemon's own children: pid → start time (clock ticks after boot).
static OURS: Mutex<Option<HashMap<u32, u64>>> = Mutex::new(None);

/// A pass also runs this often without a SIGCHLD, in case one was coalesced away mid-pass.
const PASS_EVERY: Duration = Duration::from_secs(2);

/// Held across a fork; [`Spawning::record`] notes the child before it is let go.
pub struct Spawning {
    gate: Option<RwLockReadGuard<'static, ()>>,
}

/// Call before forking a process the daemon will wait for, and keep the result until the
/// child is recorded with [`Spawning::record`] (or the spawn failed).
pub fn spawning() -> Spawning {
    if !ENABLED.load(Ordering::Acquire) {
        return Spawning { gate: None };
    }
    // A poisoned gate only means a reaping pass panicked; the lock itself is still sound.
    let gate = GATE.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    Spawning { gate: Some(gate) }
}

impl Spawning {
    /// This fork's child is `pid` (`None`: the spawn failed): tokio will reap it, the reaper
    /// must not. Lets the gate go.
    pub fn record(self, pid: Option<u32>) {
        let Some(pid) = pid.filter(|_| self.gate.is_some()) else {
            return;
        };
        // The child cannot have been reaped yet (the reaper waits for the gate, its waiter has
        // not started), so /proc still has it, zombie or not.
        let Some(sample) = kelpie_sys::sample_process(pid) else {
            return;
        };
        let mut ours = OURS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        ours.get_or_insert_with(HashMap::new)
            .insert(pid, sample.start_ticks);
    }
}

/// The running reaper: wake it on SIGCHLD.
#[derive(Clone)]
pub struct Reaper {
    wake: std::sync::mpsc::Sender<()>,
}

impl Reaper {
    /// Become a subreaper unless we are pid 1, record forks from now on, and start the thread.
    pub fn start() -> std::io::Result<Reaper> {
        if std::process::id() != 1 {
            match kelpie_sys::adopt_orphans() {
                // The portable backend: an app's orphans go to the system's init, which reaps
                // them; only those of our own children are left for the passes below.
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                    crate::daemon_log!("reaper: {e}; orphaned processes go to the system's init")
                }
                other => other?,
            }
        }
        ENABLED.store(true, Ordering::Release);
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("kelpie-reaper".into())
            .spawn(move || loop {
                match woken.recv_timeout(PASS_EVERY) {
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        // Many SIGCHLDs in a burst: one pass sees all their zombies.
                        while woken.try_recv().is_ok() {}
                        reap_orphans();
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(Reaper { wake })
    }

    /// A child changed state: look for orphans to reap.
    pub fn wake(&self) {
        let _ = self.wake.send(());
    }
}

/// One pass: reap every zombie child of ours that no fork of ours recorded. Returns how many.
fn reap_orphans() -> usize {
    let me = std::process::id();
    let Ok(processes) = kelpie_sys::scan_processes() else {
        return 0;
    };
    let zombies: Vec<(u32, u64)> = processes
        .iter()
        .filter(|p| p.sample.ppid == me && p.sample.zombie)
        .map(|p| (p.pid, p.sample.start_ticks))
        .collect();
    let _gate = GATE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut ours = OURS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ours = ours.get_or_insert_with(HashMap::new);
    // Records of children tokio has reaped (no longer ours, or the pid now is another process).
    ours.retain(|pid, start| {
        kelpie_sys::sample_process(*pid).is_some_and(|s| s.ppid == me && s.start_ticks == *start)
    });
    crate::room::shrink_if_sparse(ours);
    let mut reaped = 0;
    for (pid, start) in zombies {
        // A record under this pid means a fork of ours has it (whatever the start time: the
        // listed zombie may have been tokio's, reaped since, its pid reused by a new child).
        if ours.contains_key(&pid) {
            continue;
        }
        // Still the unrecorded zombie we listed, then: only we reap those, so it is still there.
        let same = kelpie_sys::sample_process(pid)
            .is_some_and(|s| s.zombie && s.ppid == me && s.start_ticks == start);
        if same && matches!(kelpie_sys::reap_child(pid), Ok(true)) {
            reaped += 1;
        }
    }
    reaped
}
