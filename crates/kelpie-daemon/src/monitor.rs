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
//!
//! Here: the sampling thread and what it reads for. Its parts, in `monitor/`: the cgroups'
//! counters (`counters`), which instances did not run (`quiet`), the processes of each tree
//! read from /proc (`members`), and the readings summed per tree (`tree`).

mod activity;
mod counters;
mod members;
mod quiet;
mod tree;

use crate::cgroups::Cgroups;
use counters::CgroupCounters;
use kelpie_core::limits::Usage;
use members::Members;
use quiet::Quiet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tree::TreeSampler;

/// Maps and sets keyed by ids and pids, looked up for every process every second: a fast hash
/// (SipHash was a fifth of the thread's time with 3 000 apps), the keys being no one's choice.
type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

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

/// Shortest time between two readings: a new process is read before the next period (so
/// that the first `list` after a start shows its memory and CPU, as PM2's does), but a burst of
/// starts does not make the thread read every process at each one.
const EARLIEST_AFTER: Duration = Duration::from_millis(100);
/// And at least this much per instance read: an early reading reads every instance, so with
/// many the early readings are rarer (at 3 000 instances, none before the next period), and
/// what they cost in a burst of starts stays under about one reading of 1 000 instances a
/// second, whatever their number.
const EARLIEST_AFTER_PER_INSTANCE: Duration = Duration::from_millis(1);

/// The supervisor's handle on the sampling thread.
#[derive(Clone)]
pub struct Monitor {
    /// Changed one instance at a time by the supervisor; the thread takes a snapshot.
    targets: Arc<Mutex<Targets>>,
    /// The thread, woken early when a new process is to be read (none in the in-process tests).
    thread: Option<std::thread::Thread>,
    /// Set with a new process to read; the thread reads early when it sees it.
    new_process: Arc<std::sync::atomic::AtomicBool>,
    /// Each instance's last page faults and context switches (see `activity`).
    counters: activity::SharedCounters,
}

/// The instances to sample, by id, and the list the thread reads, built again after a change:
/// a new process costs the supervisor one entry, not a copy of every instance's (which made
/// starting N apps cost N²).
#[derive(Default)]
struct Targets {
    by_id: BTreeMap<u32, Target>,
    snapshot: Option<Arc<Vec<Target>>>,
}

impl Targets {
    fn snapshot(&mut self) -> Arc<Vec<Target>> {
        let by_id = &self.by_id;
        self.snapshot
            .get_or_insert_with(|| Arc::new(by_id.values().cloned().collect()))
            .clone()
    }
}

impl Monitor {
    /// Start sampling every `every`; readings go to `readings`, the host's use to `host`. The
    /// thread ends when the receiver is dropped.
    pub fn start(
        every: Duration,
        cgroups: Cgroups,
        readings: mpsc::UnboundedSender<Vec<Reading>>,
        mut host: crate::host::HostSampler,
    ) -> std::io::Result<Monitor> {
        let targets: Arc<Mutex<Targets>> = Arc::default();
        let shared = targets.clone();
        let new_process: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let told = new_process.clone();
        let counters = activity::SharedCounters::default();
        let counters_read = counters.clone();
        let thread = std::thread::Builder::new()
            .name("kelpie-monitor".into())
            .spawn(move || {
                let mut sampler = TreeSampler::default();
                let mut members = Members::default();
                let mut counters = CgroupCounters::default();
                let mut quiet = Quiet::default();
                let mut activity = activity::Activity::default();
                let mut sent: IdMap<u32, (u32, Usage)> = IdMap::default();
                // Whether no process ran in the second before the last reading too.
                let mut quiet_before = false;
                let (mut ticks, mut changed_at, mut last_signature) = (0u64, 0u64, 0u64);
                let mut resident_at_last_look: Option<u64> = None;
                let mut last_reading = Instant::now();
                loop {
                    let instances = shared.lock().map_or(0, |targets| targets.by_id.len());
                    let earliest = EARLIEST_AFTER.max(
                        EARLIEST_AFTER_PER_INSTANCE * u32::try_from(instances).unwrap_or(u32::MAX),
                    );
                    wait_for_next_reading(last_reading, every, earliest, &told);
                    last_reading = Instant::now();
                    ticks += 1;
                    cgroups.tidy();
                    // The baseline that tells a likely OOM kill (see `forensics.rs`).
                    crate::forensics::sample_system_oom_kills();
                    host.sample();
                    let current = match shared.lock() {
                        Ok(mut targets) => targets.snapshot(),
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
                        activity.keep_only(&current, &counters_read);
                        sent.clear();
                        quiet_before = false;
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
                        false => IdMap::default(),
                    };
                    let refresh = ticks.is_multiple_of(READ_IDLE_EVERY);
                    let idle = quiet.idle(cgroups.base_path(), &current, refresh);
                    // Idle apps cost one read a second, whatever their number: no process
                    // ran, so every reading holds and none is sent. The first such second is
                    // read as usual: it sends 0 % CPU for what ran the second before.
                    let nothing_ran =
                        quiet.nothing_ran() && cgroup_readings.is_empty() && changed_at != ticks;
                    let skip = nothing_ran && quiet_before;
                    quiet_before = nothing_ran;
                    if skip {
                        sampler.nothing_ran_until(now);
                        if readings.is_closed() {
                            return;
                        }
                        continue;
                    }
                    let (processes, trees) = members.sample(&current, &cgroup_readings, &idle, now);
                    let batch = sampler.sample(
                        &current,
                        &cgroup_readings,
                        (&processes, trees, &idle),
                        now,
                        uptime_ticks(),
                    );
                    let ran: IdSet<u32> = batch
                        .iter()
                        .filter(|r| r.cpu_seconds > 0.0)
                        .map(|r| r.pm_id)
                        .collect();
                    activity.read(&current, &ran, ticks, &counters_read);
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
                        let live: IdSet<u32> = current.iter().map(|t| t.pm_id).collect();
                        sent.retain(|pm_id, _| live.contains(pm_id));
                        activity.keep_only(&current, &counters_read);
                    }
                    if readings.is_closed() {
                        return;
                    }
                    if !batch.is_empty() && readings.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Monitor {
            targets,
            thread: Some(thread.thread().clone()),
            new_process,
            counters,
        })
    }

    /// The process to sample for instance `pm_id` from now on (`None`: none, it runs nothing
    /// or is deleted).
    pub fn set_target(&self, pm_id: u32, target: Option<Target>) {
        let Ok(mut targets) = self.targets.lock() else {
            return;
        };
        let new = match target {
            Some(target) => {
                let new = targets
                    .by_id
                    .get(&pm_id)
                    .is_none_or(|t| t.pid != target.pid);
                if targets.by_id.get(&pm_id) == Some(&target) {
                    return;
                }
                targets.by_id.insert(pm_id, target);
                new
            }
            None => {
                if targets.by_id.remove(&pm_id).is_none() {
                    return;
                }
                false
            }
        };
        targets.snapshot = None;
        drop(targets);
        if new {
            self.read_soon();
        }
    }

    /// The last page faults and context switches of instance `pm_id`'s process `pid`, if they
    /// were read since it started.
    pub fn counters(&self, pm_id: u32, pid: u32) -> Option<kelpie_sys::ProcessCounters> {
        let counters = self.counters.lock().ok()?;
        counters
            .get(&pm_id)
            .filter(|(read_for, _)| *read_for == pid)
            .map(|(_, counters)| *counters)
    }

    /// Read the instances again as soon as [`EARLIEST_AFTER`] allows (a process started, or
    /// came online: the first `list` after it shows what it uses).
    pub fn read_soon(&self) {
        self.new_process
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// Sleep until the next reading: `every` after the last one, or, for a new process, `earliest`
/// after it.
fn wait_for_next_reading(
    last: Instant,
    every: Duration,
    earliest: Duration,
    new_process: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    loop {
        let since = last.elapsed();
        if since >= every {
            break;
        }
        if since >= earliest && new_process.load(Ordering::Acquire) {
            break;
        }
        let until = match new_process.load(Ordering::Acquire) {
            true => earliest,
            false => every,
        };
        std::thread::park_timeout(until.saturating_sub(since));
    }
    new_process.store(false, Ordering::Release);
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
            thread: None,
            new_process: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// The processes it was told to sample last.
    pub fn targets(&self) -> Vec<Target> {
        self.targets
            .lock()
            .map(|targets| targets.by_id.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (processes, trees) = members.sample(&target, &IdMap::default(), &IdSet::default(), now);
        let mut sampler = TreeSampler::default();
        let readings = sampler.sample(
            &target,
            &IdMap::default(),
            (&processes, trees, &IdSet::default()),
            now,
            uptime_ticks(),
        );
        assert!(readings[0].usage.memory_bytes > 0);
        assert!(readings[0].usage.processes >= 1);
    }
}
