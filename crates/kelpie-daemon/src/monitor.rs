//! Resource use of every instance's whole process tree, sampled about once a second on a thread
//! of its own, at a cost that grows with the apps' processes and not with the machine's. With a
//! cgroup per process (see `cgroups.rs`) and the memory controller, the cgroup's own counters:
//! CPU time from `cpu.stat`, memory from `memory.current`. Otherwise the `/proc/<pid>/stat` of
//! each process of the tree, kept open and read again each second; which processes make up the
//! tree is found again every [`FIND_EVERY`] (and at once for a new process): the cgroup's
//! `cgroup.procs` where the process has a cgroup (it holds everything the app started, even what
//! left with `setsid`), else the children of the main process and of every member already
//! known, recursively. A member stays one after its parent exits (re-parented), for as long as
//! it lives. An instance whose cgroup used no CPU since the previous reading is not read at all
//! (nor sent to the supervisor, whose last reading of it holds):
//! a process that does not run does not grow, so its previous reading holds (see [`Quiet`]).
//! The supervisor shows the readings in `list` and checks them against each app's limits every
//! second.

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

/// How often, in samples, instances that did not run are read all the same (a process that does
/// not run does not grow, but the kernel may take pages back from it).
const READ_IDLE_EVERY: u64 = 30;

/// The daemon's code pages are unmapped a sample after each burst of work (the instances to
/// sample changed) and every this many samples (first at the 3rd, once start-up is over) if
/// it grew meanwhile, so that its resident memory counts the code it runs, not every page that ever ran once (see
/// [`kelpie_sys::forget_code_pages`]). Costs a read of /proc/self/smaps and a few dozen minor
/// faults.
const FORGET_CODE_EVERY: u64 = 30;

/// Growth of the daemon's resident memory (in pages) since the last periodic look that is
/// noise, not new work: the code an idle daemon runs is faulted in 16 pages at a time.
const RESIDENT_SLACK_PAGES: u64 = 32;

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

/// The counters of each instance's cgroup (with the memory controller), kept open and read
/// again each second (`pread`: no path lookup); its process list is read every [`FIND_EVERY`].
#[derive(Default)]
struct CgroupCounters {
    open: HashMap<u32, CounterFiles>,
    buffer: Vec<u8>,
}

struct CounterFiles {
    path: PathBuf,
    memory: std::fs::File,
    cpu: std::fs::File,
    pids: Vec<u32>,
    pids_at: Instant,
}

impl CgroupCounters {
    /// Read the cgroups of `targets`; an instance whose cgroup cannot tell its memory (no memory
    /// controller there) or cannot be read is left out, to be read from /proc.
    fn read(&mut self, targets: &[Target], now: Instant) -> HashMap<u32, CgroupReading> {
        let mut readings = HashMap::new();
        let mut open = HashMap::new();
        for target in targets {
            let Some(path) = &target.cgroup else { continue };
            let files = match self.open.remove(&target.pm_id) {
                Some(files) if files.path == *path => Some(files),
                _ => CounterFiles::open(path, now),
            };
            let Some(mut files) = files else { continue };
            if now.duration_since(files.pids_at) >= FIND_EVERY {
                files.pids = Cgroup::at(path.clone()).pids();
                files.pids_at = now;
            }
            let memory = read_at_start(&files.memory, &mut self.buffer)
                .and_then(|text| text.trim().parse().ok());
            let cpu = read_at_start(&files.cpu, &mut self.buffer).and_then(usage_usec);
            if let (Some(memory_bytes), Some(cpu_usec)) = (memory, cpu) {
                readings.insert(
                    target.pm_id,
                    CgroupReading {
                        memory_bytes,
                        cpu_usec,
                        pids: files.pids.clone(),
                    },
                );
                open.insert(target.pm_id, files);
            }
        }
        // What is not read any more is closed.
        self.open = open;
        readings
    }
}

impl CounterFiles {
    fn open(path: &std::path::Path, now: Instant) -> Option<CounterFiles> {
        Some(CounterFiles {
            path: path.to_path_buf(),
            memory: std::fs::File::open(path.join("memory.current")).ok()?,
            cpu: std::fs::File::open(path.join("cpu.stat")).ok()?,
            pids: Cgroup::at(path.to_path_buf()).pids(),
            pids_at: now,
        })
    }
}

/// The whole of a small pseudo-file kept open (the kernel writes it anew for a read at 0).
fn read_at_start<'a>(file: &std::fs::File, buffer: &'a mut Vec<u8>) -> Option<&'a str> {
    use std::os::unix::fs::FileExt;
    buffer.resize(4096, 0);
    let n = file.read_at(buffer, 0).ok()?;
    std::str::from_utf8(&buffer[..n]).ok()
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
    /// Replaced whole by the supervisor; the thread takes a reference to the current list.
    targets: Arc<Mutex<Arc<Vec<Target>>>>,
}

impl Monitor {
    /// Start sampling every `every`; readings go to `readings`. The thread ends when the
    /// receiver is dropped.
    pub fn start(
        every: Duration,
        cgroups: Cgroups,
        readings: mpsc::UnboundedSender<Vec<Reading>>,
    ) -> std::io::Result<Monitor> {
        let targets: Arc<Mutex<Arc<Vec<Target>>>> = Arc::default();
        let shared = targets.clone();
        std::thread::Builder::new()
            .name("kelpie-monitor".into())
            .spawn(move || {
                let mut sampler = TreeSampler::default();
                let mut members = Members::default();
                let mut counters = CgroupCounters::default();
                let mut quiet = Quiet::default();
                let mut sent: HashMap<u32, (u32, Usage)> = HashMap::new();
                let (mut ticks, mut changed_at, mut last_signature) = (0u64, 0u64, 0u64);
                let mut resident_at_last_look: Option<u64> = None;
                loop {
                    std::thread::sleep(every);
                    ticks += 1;
                    cgroups.tidy();
                    // The baseline that tells a likely OOM kill (see `forensics.rs`).
                    crate::forensics::sample_system_oom_kills();
                    let current = match shared.lock() {
                        Ok(targets) => Arc::clone(&targets),
                        Err(_) => return,
                    };
                    // A burst of work (apps started, stopped, restarted) changes the targets.
                    let signature = targets_signature(&current);
                    if signature != last_signature {
                        last_signature = signature;
                        changed_at = ticks;
                    }
                    // Periodically only if the daemon grew since the last look (a CLI call, a
                    // web request ran): an idle daemon runs the same few pages of code every
                    // second, and advising them away would only cost it CPU to fault them in
                    // again.
                    let periodic = ticks % FORGET_CODE_EVERY == 3 && {
                        let now = kelpie_sys::resident_pages();
                        let grew = match (now, resident_at_last_look) {
                            (Some(now), Some(before)) => now > before + RESIDENT_SLACK_PAGES,
                            _ => true,
                        };
                        resident_at_last_look = now;
                        grew
                    };
                    if ticks == changed_at + 1 || periodic {
                        kelpie_sys::forget_code_pages();
                        // And what the burst freed.
                        kelpie_sys::release_free_memory();
                    }
                    if current.is_empty() {
                        sampler.forget();
                        members = Members::default();
                        counters = CgroupCounters::default();
                        quiet = Quiet::default();
                        sent.clear();
                        if readings.is_closed() {
                            return;
                        }
                        continue;
                    }
                    let now = Instant::now();
                    // Without the memory controller, trying each cgroup's memory.current would
                    // only cost a failed open per app and second.
                    let cgroup_readings = match cgroups.account_memory() {
                        true => counters.read(&current, now),
                        false => HashMap::new(),
                    };
                    let refresh = ticks.is_multiple_of(READ_IDLE_EVERY);
                    let idle = quiet.idle(cgroups.base_path(), &current, refresh);
                    let (processes, trees) = members.sample(&current, &cgroup_readings, &idle, now);
                    let batch = sampler.sample(
                        &current,
                        &cgroup_readings,
                        (&processes, trees, &idle),
                        now,
                        uptime_ticks(),
                    );
                    // A reading of an instance that used no CPU and did not change tells the
                    // supervisor nothing new.
                    let batch: Vec<Reading> = batch
                        .into_iter()
                        .filter(|r| {
                            let before = sent.insert(r.pm_id, (r.pid, r.usage));
                            r.cpu_seconds > 0.0 || before != Some((r.pid, r.usage))
                        })
                        .collect();
                    if changed_at == ticks {
                        let live: HashSet<u32> = current.iter().map(|t| t.pm_id).collect();
                        sent.retain(|pm_id, _| live.contains(pm_id));
                    }
                    if readings.is_closed() {
                        return;
                    }
                    if !batch.is_empty() && readings.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Monitor { targets })
    }

    /// The instances to sample from now on.
    pub fn set_targets(&self, targets: Vec<Target>) {
        if let Ok(mut current) = self.targets.lock() {
            *current = Arc::new(targets);
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

/// Tells which instances certainly did not run since the previous reading: their cgroup's CPU
/// time (`cpu.stat`'s `usage_usec`, kept by cgroup v2 without any controller) did not grow. A
/// process that does not run does not grow (its memory only grows while it runs), so their
/// previous reading still holds and their processes need not be read. When the daemon's own
/// cgroup, which holds all the apps', did not grow either, not even the apps' files are read:
/// a second of 500 idle apps costs one read. Everything is read anyway every
/// [`READ_IDLE_EVERY`] samples.
#[derive(Default)]
struct Quiet {
    all: Option<(PathBuf, std::fs::File, Option<u64>)>,
    apps: HashMap<u32, (PathBuf, std::fs::File, u64)>,
    buffer: Vec<u8>,
}

impl Quiet {
    fn idle(
        &mut self,
        base: Option<&std::path::Path>,
        targets: &[Target],
        refresh: bool,
    ) -> HashSet<u32> {
        let buffer = &mut self.buffer;
        let mut all_quiet = false;
        if let Some(base) = base {
            if self.all.as_ref().is_none_or(|(path, ..)| path != base) {
                self.all = std::fs::File::open(base.join("cpu.stat"))
                    .ok()
                    .map(|file| (base.to_path_buf(), file, None));
            }
            if let Some((_, file, before)) = &mut self.all {
                let now = read_at_start(file, buffer).and_then(usage_usec);
                all_quiet = now.is_some() && now == *before;
                *before = now;
            }
        }
        let mut idle = HashSet::new();
        let mut apps = HashMap::new();
        for target in targets {
            let Some(path) = &target.cgroup else { continue };
            let known = self
                .apps
                .remove(&target.pm_id)
                .filter(|(known, ..)| known == path);
            let (file, before) = match known {
                Some((_, file, before)) => (file, Some(before)),
                None => match std::fs::File::open(path.join("cpu.stat")) {
                    Ok(file) => (file, None),
                    Err(_) => continue,
                },
            };
            let now = match (all_quiet, before) {
                (true, Some(before)) => Some(before),
                _ => read_at_start(&file, buffer).and_then(usage_usec),
            };
            let Some(now) = now else { continue };
            if !refresh && before == Some(now) {
                idle.insert(target.pm_id);
            }
            apps.insert(target.pm_id, (path.clone(), file, now));
        }
        self.apps = apps;
        idle
    }
}

fn usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|line| line.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse().ok())
}

/// The processes of each instance's tree, and their `/proc/<pid>/stat` kept open.
#[derive(Default)]
struct Members {
    /// Each instance's processes.
    pids: HashMap<u32, Vec<u32>>,
    /// Each instance's main process, and when its tree was looked up.
    found: HashMap<u32, (u32, Instant)>,
    /// Each process's stat file, and the reading it was last read at.
    stats: HashMap<u32, (kelpie_sys::StatFile, u64)>,
    buffer: Vec<u8>,
    readings: u64,
}

impl Members {
    /// Read every process of the trees of `targets` that no cgroup reading covers; returns
    /// them, and each instance's processes. Blocking (small /proc reads). Costs O(processes
    /// of the apps).
    fn sample(
        &mut self,
        targets: &[Target],
        covered: &HashMap<u32, CgroupReading>,
        idle: &HashSet<u32>,
        now: Instant,
    ) -> (Vec<ProcessEntry>, &HashMap<u32, Vec<u32>>) {
        self.readings += 1;
        let reading = self.readings;
        let wanted: HashSet<u32> = targets
            .iter()
            .map(|t| t.pm_id)
            .filter(|pm_id| !covered.contains_key(pm_id))
            .collect();
        self.pids.retain(|pm_id, _| wanted.contains(pm_id));
        self.found.retain(|pm_id, _| wanted.contains(pm_id));
        let mut entries = Vec::new();
        for target in targets.iter().filter(|t| wanted.contains(&t.pm_id)) {
            let pids = self.pids.entry(target.pm_id).or_default();
            let found = self.found.entry(target.pm_id).or_insert((target.pid, now));
            let (stats, buffer) = (&mut self.stats, &mut self.buffer);
            if idle.contains(&target.pm_id) && found.0 == target.pid && !pids.is_empty() {
                // Did not run (so did not fork either): its files stay open, nothing is read.
                for pid in pids.iter() {
                    if let Some((_, read_at)) = stats.get_mut(pid) {
                        *read_at = reading;
                    }
                }
                continue;
            }
            let stale = now.duration_since(found.1) >= FIND_EVERY;
            if found.0 != target.pid || pids.is_empty() || stale {
                if found.0 != target.pid {
                    pids.clear();
                }
                *pids = find_tree(target, pids);
                *found = (target.pid, now);
            }
            pids.retain(|pid| {
                let kept = stats.get_mut(pid).map(|(stat, read_at)| {
                    *read_at = reading;
                    stat.read(buffer)
                });
                let sample = match kept {
                    Some(sample) => sample,
                    None if stats.len() < MAX_OPEN_STATS => kelpie_sys::StatFile::open(*pid)
                        .and_then(|stat| {
                            let sample = stat.read(buffer);
                            stats.insert(*pid, (stat, reading));
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
        // Files of processes no tree had this time are closed.
        self.stats.retain(|_, (_, read_at)| *read_at == reading);
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
    /// CPU ticks of each process (pid → its start time, its ticks) at the previous reading.
    ticks: HashMap<u32, (u64, u64)>,
    /// CPU microseconds of each instance's cgroup (pm_id, main pid) at the previous reading.
    cgroup_usec: HashMap<(u32, u32), u64>,
    /// Each instance's last reading from /proc (pm_id → main pid, usage), which still holds
    /// while it does not run.
    last: HashMap<u32, (u32, Usage)>,
    last_scan: Option<Instant>,
}

impl TreeSampler {
    /// Sum every target's tree from `processes` (read at `now`, when the system had been up
    /// `uptime_ticks`): the main process and the processes `members` lists for it (found by
    /// [`Members`]), each counted once. `idle` targets keep their last reading, with no CPU.
    pub fn sample(
        &mut self,
        targets: &[Target],
        cgroups: &HashMap<u32, CgroupReading>,
        (processes, members, idle): (&[ProcessEntry], &HashMap<u32, Vec<u32>>, &HashSet<u32>),
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
        let mut ticks = HashMap::new();
        let mut cgroup_usec = HashMap::new();
        let mut last = HashMap::new();
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
            let mut seen = HashSet::new();
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

/// The in-process tests' monitor: no thread, so nothing reads /proc (their pids are fake); the
/// test sends the readings itself, and can see which processes it was told to sample.
#[cfg(test)]
impl Monitor {
    pub fn not_started() -> Monitor {
        Monitor {
            targets: Arc::default(),
        }
    }

    /// The processes it was told to sample last.
    pub fn targets(&self) -> Vec<Target> {
        self.targets
            .lock()
            .map(|targets| targets.as_ref().clone())
            .unwrap_or_default()
    }
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
            &HashMap::new(),
            (
                &processes,
                // As `Members` found them (the main process may be listed too).
                &HashMap::from([(0, vec![100, 101, 102, 103, 100]), (1, vec![200])]),
                &HashSet::new(),
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
        let tree = HashMap::from([(0, vec![100, 101])]);
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
            (&first, &tree, &HashSet::new()),
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
            (&second, &tree, &HashSet::new()),
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
            (&[], &HashMap::new(), &HashSet::new()),
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
            (&[], &HashMap::new(), &HashSet::new()),
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
            (&[process(1, 0, 1, 1, 0)], &HashMap::new(), &HashSet::new()),
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
                &HashSet::new(),
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
            &HashSet::new(),
            start + Duration::from_millis(1),
        );
        assert!(processes.len() < 3, "sh is gone: {processes:?}");
        // A cgroup reading covers an instance: nothing of its is read from /proc.
        let covered = HashMap::from([(3, CgroupReading::default())]);
        let (processes, trees) = members.sample(
            std::slice::from_ref(&target),
            &covered,
            &HashSet::new(),
            Instant::now(),
        );
        assert!(processes.is_empty() && trees.is_empty());
        assert!(members.stats.is_empty(), "no file kept for it any more");
    }

    #[test]
    fn cgroup_counters_are_read_again_from_files_kept_open() {
        // A directory laid out as a cgroup with the memory controller (the files are rewritten
        // in place, as the kernel's are generated anew for each read).
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |memory: u64, usec: u64| {
            std::fs::write(dir.path().join("memory.current"), format!("{memory}\n"))
                .expect("write memory.current");
            std::fs::write(
                dir.path().join("cpu.stat"),
                format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 2\n"),
            )
            .expect("write cpu.stat");
        };
        write(100 << 20, 5_000);
        std::fs::write(dir.path().join("cgroup.procs"), "10\n11\n").expect("write procs");
        let target = Target {
            pm_id: 4,
            pid: 10,
            cgroup: Some(dir.path().to_path_buf()),
        };
        let mut counters = CgroupCounters::default();
        let start = Instant::now();
        let first = counters.read(std::slice::from_ref(&target), start);
        assert_eq!(
            first[&4],
            CgroupReading {
                memory_bytes: 100 << 20,
                cpu_usec: 5_000,
                pids: vec![10, 11],
            }
        );
        write(200 << 20, 9_000);
        let second = counters.read(std::slice::from_ref(&target), start + SAMPLE_EVERY);
        assert_eq!(
            (second[&4].memory_bytes, second[&4].cpu_usec),
            (200 << 20, 9_000)
        );
        // Gone from the targets: its files are closed.
        assert!(counters.read(&[], start).is_empty());
        assert!(counters.open.is_empty());
        // No memory controller (no memory.current): left to /proc.
        std::fs::remove_file(dir.path().join("memory.current")).expect("remove");
        assert!(counters
            .read(std::slice::from_ref(&target), start)
            .is_empty());
    }

    #[test]
    fn instances_whose_cgroup_used_no_cpu_are_not_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (base, app) = (dir.path().to_path_buf(), dir.path().join("0.0"));
        std::fs::create_dir(&app).expect("app dir");
        let usage = |path: &std::path::Path, usec: u64| {
            std::fs::write(
                path.join("cpu.stat"),
                format!("usage_usec {usec}\nuser_usec 0\n"),
            )
            .expect("write cpu.stat");
        };
        usage(&base, 100);
        usage(&app, 40);
        let target = Target {
            pm_id: 0,
            pid: 7,
            cgroup: Some(app.clone()),
        };
        let targets = std::slice::from_ref(&target);
        let mut quiet = Quiet::default();
        assert!(
            quiet.idle(Some(&base), targets, false).is_empty(),
            "first look"
        );
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        assert!(
            quiet.idle(Some(&base), targets, true).is_empty(),
            "a refresh reads all"
        );
        // It ran: read again.
        usage(&base, 150);
        usage(&app, 90);
        assert!(quiet.idle(Some(&base), targets, false).is_empty());
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        // Another app ran (the base grew), this one did not: still idle.
        usage(&base, 200);
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        // Without a cgroup, an instance is always read.
        let bare = Target {
            pm_id: 1,
            pid: 8,
            cgroup: None,
        };
        assert!(quiet
            .idle(Some(&base), std::slice::from_ref(&bare), false)
            .is_empty());
        assert!(quiet.idle(None, &[bare], false).is_empty());
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
        let members = HashMap::from([(0, vec![100])]);
        let first = [process(100, 1, 100, 30, 500)];
        let second = [process(100, 1, 100, 30, 500 + hz)];
        let read = |sampler: &mut TreeSampler, processes: &[ProcessEntry], idle, at| {
            sampler.sample(
                &target,
                &HashMap::new(),
                (processes, &members, &idle),
                start + Duration::from_secs(at),
                100_000 + at * hz,
            )
        };
        read(&mut sampler, &first, HashSet::new(), 0);
        let idle = read(&mut sampler, &[], HashSet::from([0]), 1);
        assert_eq!(idle[0].usage.memory_bytes, 30 << 20);
        assert_eq!(idle[0].usage.cpu_percent, 0.0);
        // Read again later: the CPU since the last real reading, over the last second.
        let again = read(&mut sampler, &second, HashSet::new(), 2);
        assert_eq!(again[0].usage.cpu_percent, 100.0);
    }

    #[test]
    fn the_real_system_can_be_sampled() {
        let me = std::process::id();
        let target = [Target {
            pm_id: 0,
            pid: me,
            cgroup: None,
        }];
        let mut members = Members::default();
        let now = Instant::now();
        let (processes, trees) = members.sample(&target, &HashMap::new(), &HashSet::new(), now);
        let mut sampler = TreeSampler::default();
        let readings = sampler.sample(
            &target,
            &HashMap::new(),
            (&processes, trees, &HashSet::new()),
            now,
            uptime_ticks(),
        );
        assert!(readings[0].usage.memory_bytes > 0);
        assert!(readings[0].usage.processes >= 1);
    }
}
