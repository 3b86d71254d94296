//! Page faults and context switches of each instance's main process ([`Activity`]), read on
//! the sampling thread at a tenth of its rate: a process's stat and status cost about 17 µs
//! together (the stat is most often the one the reading has just read, and is not read again),
//! so with 10 000 busy apps this is under 2 % of a core, and idle apps cost nothing (a process
//! that used no CPU time since it was last read neither faulted nor switched). Kept for
//! `describe`, `jlist` and `/metrics`, which read the last figures and never /proc themselves
//! (a scrape of 500 apps would cost as much again as it does).

use super::{IdMap, IdSet, Target};
use kelpie_sys::{ProcessCounters, ProcessEntry, ProcessSample};
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
    ///
    /// `processes`: what this reading read of `/proc/<pid>/stat` (the faults are taken from
    /// there rather than read again).
    pub(super) fn read(
        &mut self,
        targets: &[Target],
        (ran, processes): (&IdSet<u32>, &[ProcessEntry]),
        reading: u64,
        shared: &SharedCounters,
    ) {
        let mut to_read = Vec::new();
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
            to_read.push((target.pm_id, target.pid));
        }
        if to_read.is_empty() {
            return;
        }
        // Their stat as this reading read it, found in one pass over what it read (a process
        // of an app whose cgroup gave its memory was not read: its stat is read here).
        let due_pids: IdSet<u32> = to_read.iter().map(|(_, pid)| *pid).collect();
        let stats: IdMap<u32, &ProcessSample> = processes
            .iter()
            .filter(|entry| due_pids.contains(&entry.pid))
            .map(|entry| (entry.pid, &entry.sample))
            .collect();
        let mut fresh = Vec::new();
        for (pm_id, pid) in to_read {
            let stat = stats.get(&pid).copied();
            if let Some(counters) = kelpie_sys::read_counters(pid, stat, &mut self.buffer) {
                fresh.push((pm_id, (pid, counters)));
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
        activity.read(std::slice::from_ref(&me), (&idle, &[]), 1, &shared);
        let first = shared.lock().expect("lock")[&4];
        assert_eq!(first.0, me.pid);
        assert!(first.1.minor_faults > 0);
        // Idle ever since: never read again, however long.
        shared.lock().expect("lock").clear();
        activity.read(
            std::slice::from_ref(&me),
            (&idle, &[]),
            1 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(shared.lock().expect("lock").is_empty());
        // It ran: read at the next due reading, not before.
        let busy = IdSet::from_iter([4]);
        activity.read(
            std::slice::from_ref(&me),
            (&busy, &[]),
            2 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(shared.lock().expect("lock").contains_key(&4));
        shared.lock().expect("lock").clear();
        activity.read(
            std::slice::from_ref(&me),
            (&busy, &[]),
            3 + 5 * COUNTERS_EVERY,
            &shared,
        );
        assert!(
            shared.lock().expect("lock").is_empty(),
            "read again too soon"
        );
        // A new process whose stat the reading read: its faults are taken from there.
        let next = Target {
            pid: 1,
            ..me.clone()
        };
        let read = ProcessEntry {
            pid: 1,
            sample: ProcessSample {
                minor_faults: 12_345,
                major_faults: 6,
                ..kelpie_sys::sample_process(1).expect("pid 1's stat")
            },
        };
        activity.read(
            std::slice::from_ref(&next),
            (&busy, &[read]),
            4 + 5 * COUNTERS_EVERY,
            &shared,
        );
        let counters = shared.lock().expect("lock")[&4];
        assert_eq!(counters.0, 1);
        assert_eq!(
            (counters.1.minor_faults, counters.1.major_faults),
            (12_345, 6)
        );
        activity.keep_only(&[], &shared);
        assert!(activity.read_at.is_empty());
    }
}
