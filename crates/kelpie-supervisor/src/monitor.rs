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
mod sampling;
mod tree;

use crate::cgroups::Cgroups;
use kelpie_core::limits::Usage;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Maps and sets keyed by ids and pids, looked up for every process every second: a fast hash
/// (SipHash was a fifth of the thread's time with 3 000 apps), the keys being no one's choice.
type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// How often every tree is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How often the processes of each tree are found again (its known members are read every
/// [`SAMPLE_EVERY`]).
pub(crate) const FIND_EVERY: Duration = Duration::from_secs(5);

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
pub(crate) struct Target {
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
        host: crate::host::HostSampler,
    ) -> std::io::Result<Monitor> {
        let targets: Arc<Mutex<Targets>> = Arc::default();
        let shared = targets.clone();
        let new_process: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let told = new_process.clone();
        let counters = activity::SharedCounters::default();
        let counters_read = counters.clone();
        let sampling = sampling::Sampling::new(sampling::Inputs {
            every,
            cgroups,
            readings,
            host,
            targets: shared,
            new_process: told,
            counters: counters_read,
        });
        let thread = std::thread::Builder::new()
            .name("kelpie-monitor".into())
            .spawn(move || sampling.run())?;
        Ok(Monitor {
            targets,
            thread: Some(thread.thread().clone()),
            new_process,
            counters,
        })
    }

    /// The process to sample for instance `pm_id` from now on (`None`: none, it runs nothing
    /// or is deleted). A new process is read as soon as [`EARLIEST_AFTER`] allows when `soon`,
    /// else at the next period.
    pub(crate) fn set_target(&self, pm_id: u32, target: Option<Target>, soon: bool) {
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
        if new && soon {
            self.read_soon();
        }
    }

    /// The last page faults and context switches of instance `pm_id`'s process `pid`, if they
    /// were read since it started.
    pub(crate) fn counters(&self, pm_id: u32, pid: u32) -> Option<kelpie_sys::ProcessCounters> {
        let counters = self.counters.lock().ok()?;
        counters
            .get(&pm_id)
            .filter(|(read_for, _)| *read_for == pid)
            .map(|(_, counters)| *counters)
    }

    /// Read the instances again as soon as [`EARLIEST_AFTER`] allows (a process started, or
    /// came online: the first `list` after it shows what it uses).
    pub(crate) fn read_soon(&self) {
        self.new_process
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// The in-process tests' monitor: no thread, so nothing reads /proc (their pids are fake); the
/// test sends the readings itself, and can see which processes it was told to sample.
#[cfg(test)]
impl Monitor {
    pub(crate) fn not_started() -> Monitor {
        Monitor {
            targets: Arc::default(),
            thread: None,
            new_process: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// The processes it was told to sample last.
    pub(crate) fn targets(&self) -> Vec<Target> {
        self.targets
            .lock()
            .map(|targets| targets.by_id.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::members::Members;
    use super::tree::TreeSampler;
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_new_process_is_read_early_only_when_asked() {
        let monitor = Monitor::not_started();
        let target = |pid| Target {
            pm_id: 3,
            pid,
            cgroup: None,
        };
        let asked = || {
            monitor
                .new_process
                .swap(false, std::sync::atomic::Ordering::AcqRel)
        };
        monitor.set_target(3, Some(target(10)), false);
        assert!(!asked(), "a crash loop's restart waits for the next period");
        assert_eq!(monitor.targets(), [target(10)]);
        monitor.set_target(3, Some(target(11)), true);
        assert!(asked(), "a started process is read early");
        monitor.set_target(3, Some(target(11)), true);
        assert!(!asked(), "the same process again is nothing new");
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
        let (processes, trees) = members.sample(&target, &IdMap::default(), &IdSet::default(), now);
        let mut sampler = TreeSampler::default();
        let readings = sampler.sample(
            &target,
            &IdMap::default(),
            (&processes, trees, &IdSet::default()),
            now,
            kelpie_sys::ticks_since_boot(),
        );
        assert!(readings[0].usage.memory_bytes > 0);
        assert!(readings[0].usage.processes >= 1);
    }
}
