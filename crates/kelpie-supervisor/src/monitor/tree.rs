//! Readings per tree ([`TreeSampler`]): a cgroup's counters, or the sum of the tree's processes
//! read from /proc, each counted once; CPU as the use since the previous reading.

use super::counters::CgroupReading;
use super::{IdMap, IdSet};
use super::{Reading, Target, SAMPLE_EVERY};
use kelpie_core::limits::Usage;
use kelpie_sys::ProcessEntry;
use std::time::Instant;

/// Turns cgroup readings and scans of `/proc` into per-tree readings; remembers CPU times, so
/// CPU is the use since the previous reading.
#[derive(Default)]
pub(super) struct TreeSampler {
    /// CPU ticks of each process (pid → its start time, its ticks) at the previous reading.
    ticks: IdMap<u32, (u64, u64)>,
    /// CPU microseconds of each instance's cgroup (pm_id, main pid) at the previous reading.
    cgroup_usec: IdMap<(u32, u32), u64>,
    /// Each instance's last reading from /proc (pm_id → main pid, usage), which still holds
    /// while it does not run.
    last: IdMap<u32, (u32, Usage)>,
    last_scan: Option<Instant>,
}

impl TreeSampler {
    /// Sum every target's tree from `processes` (read at `now`, when the system had been up
    /// `uptime_ticks`): the main process and the processes `members` lists for it (found by
    /// [`Members`]), each counted once. `idle` targets keep their last reading, with no CPU.
    pub(super) fn sample(
        &mut self,
        targets: &[Target],
        cgroups: &IdMap<u32, CgroupReading>,
        (processes, members, idle): (&[ProcessEntry], &IdMap<u32, Vec<u32>>, &IdSet<u32>),
        now: Instant,
        uptime_ticks: u64,
    ) -> Vec<Reading> {
        let hz = kelpie_sys::clock_ticks_per_second() as f64;
        let elapsed_secs = self
            .last_scan
            .map(|at| now.duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0)
            .unwrap_or(SAMPLE_EVERY.as_secs_f64());
        let elapsed_ticks = elapsed_secs * hz;
        let by_pid: IdMap<u32, &ProcessEntry> = processes.iter().map(|p| (p.pid, p)).collect();
        // Sized as before: filled again each second, never grown piecemeal.
        let mut ticks = IdMap::with_capacity_and_hasher(self.ticks.len(), Default::default());
        let mut cgroup_usec =
            IdMap::with_capacity_and_hasher(self.cgroup_usec.len(), Default::default());
        let mut last = IdMap::with_capacity_and_hasher(targets.len(), Default::default());
        let mut readings = Vec::with_capacity(targets.len());
        let mut seen = IdSet::default();
        for target in targets {
            if let Some(cgroup) = cgroups.get(&target.pm_id) {
                let key = (target.pm_id, target.pid);
                // The first reading of a process has nothing to compare with: 0 until the next.
                let used_usec = self
                    .cgroup_usec
                    .get(&key)
                    .map_or(0, |before| cgroup.cpu_usec.saturating_sub(*before));
                cgroup_usec.insert(key, cgroup.cpu_usec);
                let usage = Usage {
                    memory_bytes: cgroup.memory_bytes,
                    cpu_percent: (used_usec as f64 / 1e6 / elapsed_secs * 1000.0).round() / 10.0,
                    processes: cgroup.pids.len() as u32,
                };
                readings.push(Reading {
                    pm_id: target.pm_id,
                    pid: target.pid,
                    usage,
                    cpu_seconds: used_usec as f64 / 1e6,
                });
                continue;
            }
            if idle.contains(&target.pm_id) {
                if let Some((pid, usage)) = self.last.get(&target.pm_id) {
                    if *pid == target.pid {
                        // Its processes' CPU times did not move: keep them for the next reading.
                        for pid in members.get(&target.pm_id).into_iter().flatten() {
                            if let Some(kept) = self.ticks.get(pid) {
                                ticks.insert(*pid, *kept);
                            }
                        }
                        let usage = Usage {
                            cpu_percent: 0.0,
                            ..*usage
                        };
                        last.insert(target.pm_id, (target.pid, usage));
                        readings.push(Reading {
                            pm_id: target.pm_id,
                            pid: target.pid,
                            usage,
                            cpu_seconds: 0.0,
                        });
                        continue;
                    }
                }
            }
            if !by_pid.contains_key(&target.pid) {
                continue;
            }
            let mut usage = Usage::default();
            let mut cpu_ticks = 0.0;
            seen.clear();
            let tree = members.get(&target.pm_id).into_iter().flatten();
            for &pid in std::iter::once(&target.pid).chain(tree) {
                let Some(process) = by_pid.get(&pid).filter(|_| seen.insert(pid)) else {
                    continue;
                };
                let sample = &process.sample;
                usage.processes += 1;
                usage.memory_bytes += sample.rss_bytes;
                let before = self
                    .ticks
                    .get(&pid)
                    .filter(|(start, _)| *start == sample.start_ticks);
                cpu_ticks += match before {
                    Some((_, before)) => sample.cpu_ticks.saturating_sub(*before) as f64,
                    // Not seen before: born since the last scan (all its time counts), or seen
                    // for the first time (its average over the interval).
                    None => {
                        let age = uptime_ticks.saturating_sub(sample.start_ticks) as f64;
                        if age <= elapsed_ticks {
                            sample.cpu_ticks as f64
                        } else {
                            sample.cpu_ticks as f64 * elapsed_ticks / age
                        }
                    }
                };
                ticks.insert(pid, (sample.start_ticks, sample.cpu_ticks));
            }
            usage.cpu_percent = (cpu_ticks / elapsed_ticks * 1000.0).round() / 10.0;
            last.insert(target.pm_id, (target.pid, usage));
            readings.push(Reading {
                pm_id: target.pm_id,
                pid: target.pid,
                usage,
                cpu_seconds: cpu_ticks / hz,
            });
        }
        self.ticks = ticks;
        self.cgroup_usec = cgroup_usec;
        self.last = last;
        self.last_scan = Some(now);
        readings
    }

    /// Nothing ran since the last reading: the next one's CPU counts from `now`.
    pub(super) fn nothing_ran_until(&mut self, now: Instant) {
        self.last_scan = Some(now);
    }

    /// Nothing to sample: forget the previous scan, and the tables' room (sized for the
    /// instances there were: thousands after a bulk delete).
    pub(super) fn forget(&mut self) {
        *self = TreeSampler::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_sys::ProcessSample;
    use std::time::Duration;

    fn process(pid: u32, ppid: u32, pgrp: u32, rss_mb: u64, cpu_ticks: u64) -> ProcessEntry {
        ProcessEntry {
            pid,
            sample: ProcessSample {
                rss_bytes: rss_mb << 20,
                cpu_ticks,
                start_ticks: 1_000,
                pgrp,
                ppid,
                zombie: false,
                minor_faults: 0,
                major_faults: 0,
            },
        }
    }

    #[test]
    fn a_tree_counts_its_members_once_and_nothing_else() {
        let processes = [
            process(1, 0, 1, 10, 0),
            process(100, 1, 100, 30, 0),   // main
            process(101, 100, 100, 50, 0), // child
            process(102, 101, 102, 20, 0), // grandchild in its own group
            process(103, 1, 100, 5, 0),    // re-parented, still in the group
            process(200, 1, 200, 70, 0),   // another app
        ];
        let mut sampler = TreeSampler::default();
        let readings = sampler.sample(
            &[
                Target {
                    pm_id: 0,
                    pid: 100,
                    cgroup: None,
                },
                Target {
                    pm_id: 1,
                    pid: 200,
                    cgroup: None,
                },
            ],
            &IdMap::default(),
            (
                &processes,
                // As `Members` found them (the main process may be listed too).
                &IdMap::from_iter([(0, vec![100, 101, 102, 103, 100]), (1, vec![200])]),
                &IdSet::default(),
            ),
            Instant::now(),
            1_000_000,
        );
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].usage.memory_bytes, 105 << 20);
        assert_eq!(readings[0].usage.processes, 4);
        assert_eq!(readings[1].usage.memory_bytes, 70 << 20);
    }

    #[test]
    fn cpu_is_the_use_since_the_previous_scan_over_the_whole_tree() {
        let hz = kelpie_sys::clock_ticks_per_second();
        let mut sampler = TreeSampler::default();
        let tree = IdMap::from_iter([(0, vec![100, 101])]);
        let start = Instant::now();
        let target = [Target {
            pm_id: 0,
            pid: 100,
            cgroup: None,
        }];
        let first = [process(100, 1, 100, 1, 500), process(101, 100, 100, 1, 0)];
        sampler.sample(
            &target,
            &IdMap::default(),
            (&first, &tree, &IdSet::default()),
            start,
            100_000,
        );
        // One second later the main process used half a core and its child a full one.
        let second = [
            process(100, 1, 100, 1, 500 + hz / 2),
            process(101, 100, 100, 1, hz),
        ];
        let readings = sampler.sample(
            &target,
            &IdMap::default(),
            (&second, &tree, &IdSet::default()),
            start + Duration::from_secs(1),
            100_000 + hz,
        );
        assert_eq!(readings[0].usage.cpu_percent, 150.0);
    }

    #[test]
    fn an_instance_with_a_cgroup_is_read_from_its_counters_not_from_proc() {
        let mut sampler = TreeSampler::default();
        let start = Instant::now();
        let target = [Target {
            pm_id: 7,
            pid: 100,
            cgroup: Some("/sys/fs/cgroup/x".into()),
        }];
        let reading = |cpu_usec| {
            IdMap::from_iter([(
                7,
                CgroupReading {
                    memory_bytes: 300 << 20,
                    cpu_usec,
                    pids: vec![100, 101, 102],
                },
            )])
        };
        // No /proc scan at all: the cgroup says everything.
        let first = sampler.sample(
            &target,
            &reading(5_000_000),
            (&[], &IdMap::default(), &IdSet::default()),
            start,
            0,
        );
        assert_eq!(
            first[0].usage.cpu_percent, 0.0,
            "nothing to compare with yet"
        );
        let second = sampler.sample(
            &target,
            &reading(5_000_000 + 750_000),
            (&[], &IdMap::default(), &IdSet::default()),
            start + Duration::from_secs(1),
            0,
        );
        assert_eq!(
            second[0].usage,
            Usage {
                memory_bytes: 300 << 20,
                cpu_percent: 75.0,
                processes: 3,
            }
        );
    }

    #[test]
    fn a_missing_main_process_gives_no_reading() {
        let mut sampler = TreeSampler::default();
        let readings = sampler.sample(
            &[Target {
                pm_id: 0,
                pid: 4242,
                cgroup: None,
            }],
            &IdMap::default(),
            (
                &[process(1, 0, 1, 1, 0)],
                &IdMap::default(),
                &IdSet::default(),
            ),
            Instant::now(),
            1_000,
        );
        assert!(readings.is_empty());
    }

    #[test]
    fn an_idle_instance_keeps_its_reading_with_no_cpu() {
        let hz = kelpie_sys::clock_ticks_per_second();
        let mut sampler = TreeSampler::default();
        let start = Instant::now();
        let target = [Target {
            pm_id: 0,
            pid: 100,
            cgroup: Some("/sys/fs/cgroup/x".into()),
        }];
        let members = IdMap::from_iter([(0, vec![100])]);
        let first = [process(100, 1, 100, 30, 500)];
        let second = [process(100, 1, 100, 30, 500 + hz)];
        let read = |sampler: &mut TreeSampler, processes: &[ProcessEntry], idle, at| {
            sampler.sample(
                &target,
                &IdMap::default(),
                (processes, &members, &idle),
                start + Duration::from_secs(at),
                100_000 + at * hz,
            )
        };
        read(&mut sampler, &first, IdSet::default(), 0);
        let idle = read(&mut sampler, &[], IdSet::from_iter([0]), 1);
        assert_eq!(idle[0].usage.memory_bytes, 30 << 20);
        assert_eq!(idle[0].usage.cpu_percent, 0.0);
        // Read again later: the CPU since the last real reading, over the last second.
        let again = read(&mut sampler, &second, IdSet::default(), 2);
        assert_eq!(again[0].usage.cpu_percent, 100.0);
    }
}
