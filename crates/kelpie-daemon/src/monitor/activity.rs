//! Page faults and context switches of each instance's main process ([`Activity`]), read on
//! the sampling thread at a tenth of its rate: a process's stat and status cost about 17 µs
//! together, so with 10 000 busy apps this is under 2 % of a core, and idle apps cost nothing
//! (a process that used no CPU time since it was last read neither faulted nor switched). Kept for `describe`, `jlist` and
//! `/metrics`, which read the last figures and never /proc themselves (a scrape of 500 apps
//! would cost as much again as it does).

use super::{IdMap, IdSet, Target};
use kelpie_sys::ProcessCounters;
use std::sync::{Arc, Mutex};

/// How often, in readings, the counters of an instance that ran meanwhile are read again (a
/// new process is read at its first reading).
pub(super) const COUNTERS_EVERY: u64 = 10;

/// The last counters of each instance: its main pid and what it said.
pub(super) type SharedCounters = Arc<Mutex<IdMap<u32, (u32, ProcessCounters)>>>;

/// What the sampling thread keeps between readings.
#[derive(Default)]
pub(super) struct Activity {
    /// Each instance's main pid and the reading its counters were last read at.
    read_at: IdMap<u32, (u32, u64)>,
    /// Instances whose process ran since their counters were read.
    ran: IdSet<u32>,
    buffer: String,
}

impl Activity {
    /// Note which of `targets` ran this second (`ran`: their reading counted CPU time), then
    /// read the counters that are due: a new process's, and those of processes that ran since
    /// their last, every [`COUNTERS_EVERY`].
    pub(super) fn read(
        &mut self,
        targets: &[Target],
        ran: &IdSet<u32>,
        reading: u64,
        shared: &SharedCounters,
    ) {
        let mut fresh = Vec::new();
        for target in targets {
            if ran.contains(&target.pm_id) {
                self.ran.insert(target.pm_id);
            }
            let due = match self.read_at.get(&target.pm_id) {
                Some((pid, at)) if *pid == target.pid => {
                    reading.saturating_sub(*at) >= COUNTERS_EVERY
                        && self.ran.contains(&target.pm_id)
                }
                _ => true,
            };
            if !due {
                continue;
            }
            self.read_at.insert(target.pm_id, (target.pid, reading));
            self.ran.remove(&target.pm_id);
            if let Some(counters) = kelpie_sys::read_counters(target.pid, &mut self.buffer) {
                fresh.push((target.pm_id, (target.pid, counters)));
            }
        }
        if fresh.is_empty() {
            return;
        }
        if let Ok(mut shared) = shared.lock() {
            shared.extend(fresh);
        }
    }

    /// The instances are now `targets`: forget the others.
    pub(super) fn keep_only(&mut self, targets: &[Target], shared: &SharedCounters) {
        let live: IdSet<u32> = targets.iter().map(|t| t.pm_id).collect();
        self.read_at.retain(|pm_id, _| live.contains(pm_id));
        self.ran.retain(|pm_id| live.contains(pm_id));
        crate::room::shrink_if_sparse(&mut self.read_at);
        crate::room::shrink_if_sparse(&mut self.ran);
        if let Ok(mut shared) = shared.lock() {
            shared.retain(|pm_id, _| live.contains(pm_id));
            crate::room::shrink_if_sparse(&mut *shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_process_is_read_at_once_and_an_idle_one_not_again() {
        let me = Target {
            pm_id: 4,
            pid: std::process::id(),
            cgroup: None,
        };
        let shared = SharedCounters::default();
        let mut activity = Activity::default();
        let idle = IdSet::default();
        activity.read(std::slice::from_ref(&me), &idle, 1, &shared);
        let first = shared.lock().expect("lock")[&4];
        assert_eq!(first.0, me.pid);
        assert!(first.1.minor_faults > 0);
        // Idle ever since: never read again, however long.
        shared.lock().expect("lock").clear();
        activity.read(
            std::slice::from_ref(&me),
            &idle,
            1 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(shared.lock().expect("lock").is_empty());
        // It ran: read at the next due reading, not before.
        let busy = IdSet::from_iter([4]);
        activity.read(
            std::slice::from_ref(&me),
            &busy,
            2 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(shared.lock().expect("lock").contains_key(&4));
        shared.lock().expect("lock").clear();
        activity.read(
            std::slice::from_ref(&me),
            &busy,
            3 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(
            shared.lock().expect("lock").is_empty(),
            "read again too soon"
        );
        activity.keep_only(&[], &shared);
        assert!(activity.read_at.is_empty());
    }
}
