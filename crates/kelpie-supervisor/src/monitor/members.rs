//! The processes of each instance's tree ([`Members`]): found again every `FIND_EVERY` (its
//! cgroup's, or the main process and its descendants), their `/proc/<pid>/stat` kept open and
//! read each second.

use super::counters::CgroupReading;
use super::{IdMap, IdSet};
use super::{Target, FIND_EVERY};
use kelpie_sys::cgroup::Cgroup;
use kelpie_sys::ProcessEntry;
use std::time::Instant;

/// At most [`crate::descriptors::cache_size`] `/proc/<pid>/stat` files are kept open; beyond,
/// they are opened for each reading.
/// The processes of each instance's tree, and their `/proc/<pid>/stat` kept open.
#[derive(Default)]
pub(super) struct Members {
    /// Each instance's processes.
    pids: IdMap<u32, Vec<u32>>,
    /// Each instance's main process, and when its tree was looked up.
    found: IdMap<u32, Found>,
    /// Each process's stat file, and the reading it was last read at.
    stats: IdMap<u32, (kelpie_sys::StatFile, u64)>,
    buffer: Vec<u8>,
    readings: u64,
}

/// When an instance's tree was looked up, and whether it may have changed since.
struct Found {
    /// Its main process then.
    pid: u32,
    at: Instant,
    /// It ran at a reading since, which read the processes known then: it may have started one
    /// that reading missed (a child that then allocated and went to sleep).
    ran_since: bool,
}

impl Members {
    /// Read every process of the trees of `targets` that no cgroup reading covers; returns
    /// them, and each instance's processes. Blocking (small /proc reads). Costs O(processes
    /// of the apps).
    pub(super) fn sample(
        &mut self,
        targets: &[Target],
        covered: &IdMap<u32, CgroupReading>,
        idle: &IdSet<u32>,
        now: Instant,
    ) -> (Vec<ProcessEntry>, &IdMap<u32, Vec<u32>>) {
        self.readings += 1;
        let reading = self.readings;
        let wanted: IdSet<u32> = targets
            .iter()
            .map(|t| t.pm_id)
            .filter(|pm_id| !covered.contains_key(pm_id))
            .collect();
        self.pids.retain(|pm_id, _| wanted.contains(pm_id));
        self.found.retain(|pm_id, _| wanted.contains(pm_id));
        crate::room::shrink_if_sparse(&mut self.pids);
        crate::room::shrink_if_sparse(&mut self.found);
        let mut entries = Vec::new();
        let max_open = crate::descriptors::cache_size_now();
        for target in targets.iter().filter(|t| wanted.contains(&t.pm_id)) {
            let pids = self.pids.entry(target.pm_id).or_default();
            let found = self.found.entry(target.pm_id).or_insert(Found {
                pid: target.pid,
                at: now,
                ran_since: false,
            });
            let (stats, buffer) = (&mut self.stats, &mut self.buffer);
            let idle = idle.contains(&target.pm_id);
            if idle && found.pid == target.pid && !pids.is_empty() && !found.ran_since {
                // Did not run (so did not fork either): its files stay open, nothing is read.
                for pid in pids.iter() {
                    if let Some((_, read_at)) = stats.get_mut(pid) {
                        *read_at = reading;
                    }
                }
                continue;
            }
            // An instance that ran is read with the tree found within FIND_EVERY; the first
            // reading that finds it idle afterwards looks its tree up again, so that a process
            // it started meanwhile is read before it is left alone (a child that allocated
            // and sleeps was left unread until every app is read again, ~30 s).
            let stale = now.duration_since(found.at) >= FIND_EVERY;
            if found.pid != target.pid || pids.is_empty() || stale || idle {
                if found.pid != target.pid {
                    pids.clear();
                }
                *pids = find_tree(target, pids);
                *found = Found {
                    pid: target.pid,
                    at: now,
                    ran_since: false,
                };
            } else {
                found.ran_since = true;
            }
            pids.retain(|pid| {
                let kept = stats.get_mut(pid).map(|(stat, read_at)| {
                    *read_at = reading;
                    stat.read(buffer)
                });
                let sample = match kept {
                    Some(sample) => sample,
                    None if stats.len() < max_open => {
                        kelpie_sys::StatFile::open(*pid).and_then(|stat| {
                            let sample = stat.read(buffer);
                            stats.insert(*pid, (stat, reading));
                            sample
                        })
                    }
                    None => kelpie_sys::sample_process(*pid),
                };
                match sample {
                    Some(sample) => {
                        entries.push(ProcessEntry { pid: *pid, sample });
                        true
                    }
                    None => {
                        stats.remove(pid);
                        false
                    }
                }
            });
        }
        // Files of processes no tree had this time are closed.
        self.stats.retain(|_, (_, read_at)| *read_at == reading);
        crate::room::shrink_if_sparse(&mut self.stats);
        (entries, &self.pids)
    }
}

/// The processes of `target`'s tree now: its cgroup's, or the main process, the members known
/// before, and their descendants.
fn find_tree(target: &Target, known: &[u32]) -> Vec<u32> {
    let mut found: Vec<u32> = target
        .cgroup
        .as_ref()
        .map(|path| Cgroup::at(path.clone()).pids())
        .unwrap_or_default();
    if found.is_empty() {
        let mut stack = vec![target.pid];
        stack.extend(known);
        let mut seen = IdSet::default();
        while let Some(pid) = stack.pop() {
            if seen.insert(pid) {
                found.push(pid);
                stack.extend(kelpie_sys::children_of(pid));
            }
        }
    } else if !found.contains(&target.pid) {
        found.push(target.pid);
    }
    found
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests drive time and tasks themselves"
)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tree_is_found_once_and_its_members_read_each_second_from_kept_files() {
        use std::os::unix::process::CommandExt;
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pgid = shell.id();
        let target = Target {
            pm_id: 3,
            pid: shell.id(),
            cgroup: None,
        };
        let mut members = Members::default();
        let start = Instant::now();
        let mut found = 0;
        while found < 3 && start.elapsed() < Duration::from_secs(5) {
            // A new target is looked for at each reading until it has members; here the
            // children may not be forked yet, so look again as a new tree.
            members = Members::default();
            let (processes, trees) = members.sample(
                std::slice::from_ref(&target),
                &IdMap::default(),
                &IdSet::default(),
                Instant::now(),
            );
            found = processes.len();
            assert_eq!(trees[&3].len(), found);
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
        let _ = shell.wait();
        assert_eq!(found, 3, "sh and its two sleeps");
        assert_eq!(members.stats.len(), 3, "each one's stat file is kept open");
        // Within FIND_EVERY, only the known members are read: the gone ones drop out.
        let (processes, _) = members.sample(
            std::slice::from_ref(&target),
            &IdMap::default(),
            &IdSet::default(),
            start + Duration::from_millis(1),
        );
        assert!(processes.len() < 3, "sh is gone: {processes:?}");
        // A cgroup reading covers an instance: nothing of its is read from /proc.
        let covered = IdMap::from_iter([(3, CgroupReading::default())]);
        let (processes, trees) = members.sample(
            std::slice::from_ref(&target),
            &covered,
            &IdSet::default(),
            Instant::now(),
        );
        assert!(processes.is_empty() && trees.is_empty());
        assert!(members.stats.is_empty(), "no file kept for it any more");
    }

    #[test]
    fn a_process_started_while_it_ran_is_read_once_it_is_idle() {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        // It starts its child when told, on its stdin.
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "read go; sleep 30 & wait"])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pgid = shell.id();
        let target = Target {
            pm_id: 5,
            pid: shell.id(),
            cgroup: None,
        };
        let mut members = Members::default();
        let start = Instant::now();
        let ran = IdSet::default();
        let idle = IdSet::from_iter([5]);
        let trees = |members: &mut Members, idle: &IdSet<u32>, at: Instant| {
            let (_, trees) =
                members.sample(std::slice::from_ref(&target), &IdMap::default(), idle, at);
            trees[&5].clone()
        };
        assert_eq!(trees(&mut members, &ran, start), vec![pgid], "sh alone");
        let _ = shell.stdin.as_mut().map(|stdin| stdin.write_all(b"go\n"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while kelpie_sys::children_of(pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let child = kelpie_sys::children_of(pgid);
        // It ran: read with the tree found a moment ago (looked up again every FIND_EVERY)...
        let while_running = trees(&mut members, &ran, start + Duration::from_secs(1));
        // ... and the first reading that finds it idle looks again: the child is read.
        let once_idle = trees(&mut members, &idle, start + Duration::from_secs(2));
        let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
        let _ = shell.wait();
        assert_eq!(child.len(), 1, "the child started");
        assert_eq!(
            while_running,
            vec![pgid],
            "found again only every FIND_EVERY"
        );
        assert!(
            once_idle.contains(&child[0]),
            "{once_idle:?} lacks {child:?}"
        );
        assert_eq!(
            trees(&mut members, &idle, start + Duration::from_secs(3)),
            once_idle,
            "idle since it was looked up: left as it was"
        );
    }
}
