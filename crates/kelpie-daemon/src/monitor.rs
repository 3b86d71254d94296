//! Resource use of every instance's whole process tree, sampled about once a second on a thread
//! of its own, at a cost that grows with the apps' processes and not with the machine's. With a
//! cgroup per process (see `cgroups.rs`) and the memory controller, the cgroup's own counters:
//! CPU time from `cpu.stat`, memory from `memory.current`. Otherwise the `/proc/<pid>/stat` of
//! each process of the tree, kept open and read again each second; which processes make up the
//! tree is found again every [`FIND_EVERY`] (and at once for a new process): the cgroup's
//! `cgroup.procs` where the process has a cgroup (it holds everything the app started, even what
//! left with `setsid`), else the children of the main process and of every member already
//! known, recursively. A member stays one after its parent exits (re-parented), for as long as
//! it lives. The supervisor shows the readings in `list` and checks them against each app's
//! limits every second.

use crate::cgroups::Cgroups;
use kelpie_core::limits::Usage;
use kelpie_sys::cgroup::Cgroup;
use kelpie_sys::ProcessEntry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often every tree is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How often the processes of each tree are found again (its known members are read every
/// [`SAMPLE_EVERY`]).
pub const FIND_EVERY: Duration = Duration::from_secs(5);

/// The daemon's code pages are unmapped a sample after each burst of work (the instances to
/// sample changed) and every this many samples (first at the 3rd, once start-up is over), so
/// that its resident memory counts the code it runs, not every page that ever ran once (see
/// [`kelpie_sys::forget_code_pages`]). Costs a read of /proc/self/smaps and a few dozen minor
/// faults.
const FORGET_CODE_EVERY: u64 = 30;

/// At most this many `/proc/<pid>/stat` files are kept open; beyond, they are opened for each
/// reading.
const MAX_OPEN_STATS: usize = 4096;

/// One instance to sample: its id and its main process (also its process group's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The instance.
    pub pm_id: u32,
    /// Its main process.
    pub pid: u32,
    /// The main process's cgroup, if it has one.
    pub cgroup: Option<PathBuf>,
}

/// What a process's cgroup says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupReading {
    /// `memory.current` (the memory controller).
    pub memory_bytes: u64,
    /// `cpu.stat`'s `usage_usec`.
    pub cpu_usec: u64,
    /// The pids in it.
    pub pids: Vec<u32>,
}

impl CgroupReading {
    /// Read the cgroup at `path`; `None` when it cannot tell the memory (no memory controller
    /// there) or cannot be read: the instance is then sampled from the /proc walk, which reads
    /// one file per process of the machine, where summing the cgroup's processes would read
    /// three per app (its list, its CPU, each process's memory) and cost more on most hosts.
    fn read(path: &std::path::Path) -> Option<CgroupReading> {
        let cgroup = Cgroup::at(path.to_path_buf());
        Some(CgroupReading {
            memory_bytes: cgroup.memory_bytes()?,
            cpu_usec: cgroup.cpu_usec()?,
            pids: cgroup.pids(),
        })
    }
}

/// A reading of one instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The instance.
    pub pm_id: u32,
    /// The main process it was taken for (the instance may have a new one by now).
    pub pid: u32,
    /// What its tree used.
    pub usage: Usage,
    /// CPU time its tree used since the previous reading (seconds).
    pub cpu_seconds: f64,
}

/// The supervisor's handle on the sampling thread.
#[derive(Clone)]
pub struct Monitor {
    targets: Arc<Mutex<Vec<Target>>>,
}

impl Monitor {
    /// Start sampling every `every`; readings go to `readings`. The thread ends when the
    /// receiver is dropped.
    pub fn start(
        every: Duration,
        cgroups: Cgroups,
        readings: mpsc::UnboundedSender<Vec<Reading>>,
    ) -> std::io::Result<Monitor> {
        let targets: Arc<Mutex<Vec<Target>>> = Arc::default();
        let shared = targets.clone();
        std::thread::Builder::new()
            .name("kelpie-monitor".into())
            .spawn(move || {
                let mut sampler = TreeSampler::default();
                let mut members = Members::default();
                let (mut ticks, mut changed_at, mut last_signature) = (0u64, 0u64, 0u64);
                loop {
                    std::thread::sleep(every);
                    ticks += 1;
                    cgroups.tidy();
                    // The baseline that tells a likely OOM kill (see `forensics.rs`).
                    crate::forensics::sample_system_oom_kills();
                    let current = match shared.lock() {
                        Ok(targets) => targets.clone(),
                        Err(_) => return,
                    };
                    // A burst of work (apps started, stopped, restarted) changes the targets.
                    let signature = targets_signature(&current);
                    if signature != last_signature {
                        last_signature = signature;
                        changed_at = ticks;
                    }
                    if ticks == changed_at + 1 || ticks % FORGET_CODE_EVERY == 3 {
                        kelpie_sys::forget_code_pages();
                        // And what the burst freed.
                        kelpie_sys::release_free_memory();
                    }
                    if current.is_empty() {
                        sampler.forget();
                        members = Members::default();
                        if readings.is_closed() {
                            return;
                        }
                        continue;
                    }
                    // Without the memory controller, trying each cgroup's memory.current would
                    // only cost a failed open per app and second.
                    let readable = cgroups.account_memory();
                    let cgroup_readings: HashMap<u32, CgroupReading> = current
                        .iter()
                        .filter(|_| readable)
                        .filter_map(|t| {
                            let path = t.cgroup.as_ref()?;
                            Some((t.pm_id, CgroupReading::read(path)?))
                        })
                        .collect();
                    let now = Instant::now();
                    let (processes, trees) = members.sample(&current, &cgroup_readings, now);
                    let batch = sampler.sample(
                        &current,
                        &cgroup_readings,
                        (&processes, &trees),
                        now,
                        uptime_ticks(),
                    );
                    if readings.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Monitor { targets })
    }

    /// The instances to sample from now on.
    pub fn set_targets(&self, targets: Vec<Target>) {
        if let Ok(mut current) = self.targets.lock() {
            *current = targets;
        }
    }
}

/// Tells when the set of instances (or their processes) changed.
fn targets_signature(targets: &[Target]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for target in targets {
        (target.pm_id, target.pid).hash(&mut hasher);
    }
    hasher.finish()
}

/// The processes of each instance's tree, and their `/proc/<pid>/stat` kept open.
#[derive(Default)]
struct Members {
    trees: HashMap<u32, Tree>,
    stats: HashMap<u32, kelpie_sys::StatFile>,
    buffer: Vec<u8>,
}

/// The processes of one instance's tree.
struct Tree {
    main: u32,
    pids: Vec<u32>,
    found_at: Instant,
}

impl Members {
    /// Read every process of the trees of `targets` that no cgroup reading covers. Blocking
    /// (small /proc reads).
    fn sample(
        &mut self,
        targets: &[Target],
        covered: &HashMap<u32, CgroupReading>,
        now: Instant,
    ) -> (Vec<ProcessEntry>, HashMap<u32, Vec<u32>>) {
        let wanted = |t: &&Target| !covered.contains_key(&t.pm_id);
        self.trees
            .retain(|pm_id, _| targets.iter().filter(wanted).any(|t| t.pm_id == *pm_id));
        let mut entries = Vec::new();
        for target in targets.iter().filter(wanted) {
            let tree = self.trees.entry(target.pm_id).or_insert_with(|| Tree {
                main: target.pid,
                pids: Vec::new(),
                found_at: now,
            });
            let stale = now.duration_since(tree.found_at) >= FIND_EVERY;
            if tree.main != target.pid || tree.pids.is_empty() || stale {
                if tree.main != target.pid {
                    tree.main = target.pid;
                    tree.pids.clear();
                }
                tree.pids = find_tree(target, &tree.pids);
                tree.found_at = now;
            }
            let (stats, buffer) = (&mut self.stats, &mut self.buffer);
            tree.pids.retain(|pid| {
                let sample = match stats.get(pid) {
                    Some(stat) => stat.read(buffer),
                    None if stats.len() < MAX_OPEN_STATS => kelpie_sys::StatFile::open(*pid)
                        .and_then(|stat| {
                            let sample = stat.read(buffer);
                            stats.insert(*pid, stat);
                            sample
                        }),
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
        let trees = &self.trees;
        self.stats
            .retain(|pid, _| trees.values().any(|tree| tree.pids.contains(pid)));
        let members = trees
            .iter()
            .map(|(pm_id, tree)| (*pm_id, tree.pids.clone()))
            .collect();
        (entries, members)
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
        let mut seen = HashSet::new();
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

/// Turns cgroup readings and scans of `/proc` into per-tree readings; remembers CPU times, so
/// CPU is the use since the previous reading.
#[derive(Default)]
pub struct TreeSampler {
    /// CPU ticks of each process (pid, start time) at the previous scan.
    ticks: HashMap<(u32, u64), u64>,
    /// CPU microseconds of each instance's cgroup (pm_id, main pid) at the previous reading.
    cgroup_usec: HashMap<(u32, u32), u64>,
    last_scan: Option<Instant>,
}

impl TreeSampler {
    /// Read every target's tree in `processes` (read at `now`, when the system had been up
    /// `uptime_ticks`): the main process, its descendants, the members of its process group,
    /// and the processes `members` lists for it (its cgroup's, those known since they left).
    pub fn sample(
        &mut self,
        targets: &[Target],
        cgroups: &HashMap<u32, CgroupReading>,
        (processes, members): (&[ProcessEntry], &HashMap<u32, Vec<u32>>),
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
        let by_pid: HashMap<u32, &ProcessEntry> = processes.iter().map(|p| (p.pid, p)).collect();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
        for process in processes {
            children
                .entry(process.sample.ppid)
                .or_default()
                .push(process.pid);
            groups
                .entry(process.sample.pgrp)
                .or_default()
                .push(process.pid);
        }
        let mut ticks = HashMap::new();
        let mut cgroup_usec = HashMap::new();
        let mut readings = Vec::with_capacity(targets.len());
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
            let Some(main) = by_pid.get(&target.pid) else {
                continue;
            };
            let mut usage = Usage::default();
            let mut cpu_ticks = 0.0;
            let mut seen = HashSet::new();
            // The main process's descendants, and its group's members that were re-parented
            // (a daemonizing child's own children go to init but stay in the group).
            let mut stack = vec![main.pid];
            stack.extend(groups.get(&target.pid).into_iter().flatten().copied());
            stack.extend(members.get(&target.pm_id).into_iter().flatten().copied());
            while let Some(pid) = stack.pop() {
                if !seen.insert(pid) {
                    continue;
                }
                let Some(process) = by_pid.get(&pid) else {
                    continue;
                };
                let sample = &process.sample;
                usage.processes += 1;
                usage.memory_bytes += sample.rss_bytes;
                let key = (pid, sample.start_ticks);
                cpu_ticks += match self.ticks.get(&key) {
                    Some(before) => sample.cpu_ticks.saturating_sub(*before) as f64,
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
                ticks.insert(key, sample.cpu_ticks);
                stack.extend(children.get(&pid).into_iter().flatten().copied());
            }
            usage.cpu_percent = (cpu_ticks / elapsed_ticks * 1000.0).round() / 10.0;
            readings.push(Reading {
                pm_id: target.pm_id,
                pid: target.pid,
                usage,
                cpu_seconds: cpu_ticks / hz,
            });
        }
        self.ticks = ticks;
        self.cgroup_usec = cgroup_usec;
        self.last_scan = Some(now);
        readings
    }

    /// Nothing to sample: forget the previous scan.
    pub fn forget(&mut self) {
        self.ticks.clear();
        self.cgroup_usec.clear();
        self.last_scan = None;
    }
}

/// Time since boot in clock ticks (the unit of process start times).
fn uptime_ticks() -> u64 {
    let seconds = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (seconds * kelpie_sys::clock_ticks_per_second() as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_sys::ProcessSample;

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
            },
        }
    }

    #[test]
    fn a_tree_counts_descendants_and_group_members_once() {
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
            &HashMap::new(),
            (&processes, &HashMap::new()),
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
        let start = Instant::now();
        let target = [Target {
            pm_id: 0,
            pid: 100,
            cgroup: None,
        }];
        let first = [process(100, 1, 100, 1, 500), process(101, 100, 100, 1, 0)];
        sampler.sample(
            &target,
            &HashMap::new(),
            (&first, &HashMap::new()),
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
            &HashMap::new(),
            (&second, &HashMap::new()),
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
            HashMap::from([(
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
            (&[], &HashMap::new()),
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
            (&[], &HashMap::new()),
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
            &HashMap::new(),
            (&[process(1, 0, 1, 1, 0)], &HashMap::new()),
            Instant::now(),
            1_000,
        );
        assert!(readings.is_empty());
    }

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
                &HashMap::new(),
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
            &HashMap::new(),
            start + Duration::from_millis(1),
        );
        assert!(processes.len() < 3, "sh is gone: {processes:?}");
        // A cgroup reading covers an instance: nothing of its is read from /proc.
        let covered = HashMap::from([(3, CgroupReading::default())]);
        let (processes, trees) =
            members.sample(std::slice::from_ref(&target), &covered, Instant::now());
        assert!(processes.is_empty() && trees.is_empty());
        assert!(members.stats.is_empty(), "no file kept for it any more");
    }

    #[test]
    fn the_real_system_can_be_sampled() {
        let processes = kelpie_sys::scan_processes().expect("scan");
        let mut sampler = TreeSampler::default();
        let me = std::process::id();
        let readings = sampler.sample(
            &[Target {
                pm_id: 0,
                pid: me,
                cgroup: None,
            }],
            &HashMap::new(),
            (&processes, &HashMap::new()),
            Instant::now(),
            uptime_ticks(),
        );
        assert!(readings[0].usage.memory_bytes > 0);
        assert!(readings[0].usage.processes >= 1);
    }
}
