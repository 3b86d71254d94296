//! The monitor thread's loop: every second (sooner after a new process), read what the
//! instances' processes use, skip the reading when nothing ran, and send what changed.

use super::activity::{self, SharedCounters};
use super::counters::CgroupCounters;
use super::members::Members;
use super::quiet::Quiet;
use super::tree::TreeSampler;
use super::{
    IdMap, IdSet, Reading, Target, Targets, EARLIEST_AFTER, EARLIEST_AFTER_PER_INSTANCE,
    FORGET_CODE_EVERY, READ_IDLE_EVERY, RESIDENT_SLACK_PAGES,
};
use crate::cgroups::Cgroups;
use kelpie_core::limits::Usage;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the loop reads from and sends to.
pub(super) struct Inputs {
    pub(super) every: Duration,
    pub(super) cgroups: Cgroups,
    pub(super) readings: mpsc::UnboundedSender<Vec<Reading>>,
    pub(super) host: crate::host::HostSampler,
    pub(super) targets: Arc<Mutex<Targets>>,
    pub(super) new_process: Arc<AtomicBool>,
    pub(super) counters: SharedCounters,
}

/// The loop's state between readings.
pub(super) struct Sampling {
    inputs: Inputs,
    sampler: TreeSampler,
    members: Members,
    counters: CgroupCounters,
    quiet: Quiet,
    activity: activity::Activity,
    /// The last reading sent of each instance.
    sent: IdMap<u32, (u32, Usage)>,
    /// Whether no process ran in the second before the last reading too.
    quiet_before: bool,
    ticks: u64,
    /// The tick at which the targets last changed, and their signature then.
    changed_at: u64,
    last_signature: u64,
    resident_at_last_look: Option<u64>,
    last_reading: Instant,
    /// When the machine's OOM-kill counter was last sampled.
    oom_sampled_at: Option<Instant>,
}

impl Sampling {
    pub(super) fn new(inputs: Inputs) -> Sampling {
        Sampling {
            inputs,
            sampler: TreeSampler::default(),
            members: Members::default(),
            counters: CgroupCounters::default(),
            quiet: Quiet::default(),
            activity: activity::Activity::default(),
            sent: IdMap::default(),
            quiet_before: false,
            ticks: 0,
            changed_at: 0,
            last_signature: 0,
            resident_at_last_look: None,
            last_reading: Instant::now(),
            oom_sampled_at: None,
        }
    }

    /// Read until the receiver is dropped.
    pub(super) fn run(mut self) {
        loop {
            let instances = self
                .inputs
                .targets
                .lock()
                .map_or(0, |targets| targets.by_id.len());
            let earliest = EARLIEST_AFTER
                .max(EARLIEST_AFTER_PER_INSTANCE * u32::try_from(instances).unwrap_or(u32::MAX));
            wait_for_next_reading(
                self.last_reading,
                self.inputs.every,
                earliest,
                &self.inputs.new_process,
            );
            self.last_reading = Instant::now();
            self.ticks += 1;
            self.inputs.cgroups.tidy();
            // The baseline that tells a likely OOM kill (see `forensics.rs`): once a period,
            // not at each early reading (/proc/vmstat is the largest file the thread reads).
            if self
                .oom_sampled_at
                .is_none_or(|at| at.elapsed() >= self.inputs.every)
            {
                crate::forensics::sample_system_oom_kills();
                self.oom_sampled_at = Some(Instant::now());
            }
            self.inputs.host.sample();
            let current = match self.inputs.targets.lock() {
                Ok(mut targets) => targets.snapshot(),
                Err(_) => return,
            };
            self.note_changes(&current);
            let batch = self.read(&current);
            if self.inputs.readings.is_closed() {
                return;
            }
            if let Some(batch) = batch.filter(|batch| !batch.is_empty()) {
                if self.inputs.readings.send(batch).is_err() {
                    return;
                }
            }
        }
    }

    /// Note a burst of work (apps started, stopped, restarted: the targets changed), and after
    /// it give back the code and memory it used.
    fn note_changes(&mut self, current: &[Target]) {
        let signature = targets_signature(current);
        if signature != self.last_signature {
            self.last_signature = signature;
            self.changed_at = self.ticks;
        }
        // Periodically only if the daemon grew since the last look (a CLI call, a web request
        // ran): an idle daemon runs the same few pages of code every second, and advising them
        // away would only cost it CPU to fault them in again.
        let periodic = self.ticks % FORGET_CODE_EVERY == 3 && {
            let now = kelpie_sys::resident_pages();
            let grew = match (now, self.resident_at_last_look) {
                (Some(now), Some(before)) => now > before + RESIDENT_SLACK_PAGES,
                _ => true,
            };
            self.resident_at_last_look = now;
            grew
        };
        if self.ticks == self.changed_at + 1 || periodic {
            kelpie_sys::forget_code_pages();
            // And what the burst freed.
            kelpie_sys::release_free_memory();
        }
    }

    /// One reading of every instance: what changed since the last one sent (`None` when
    /// nothing ran, and nothing is read).
    fn read(&mut self, current: &[Target]) -> Option<Vec<Reading>> {
        let counters_read = &self.inputs.counters;
        if current.is_empty() {
            self.sampler.forget();
            self.members = Members::default();
            self.counters = CgroupCounters::default();
            self.quiet = Quiet::default();
            self.activity.keep_only(current, counters_read);
            self.sent = IdMap::default();
            self.quiet_before = false;
            return None;
        }
        let now = Instant::now();
        let cgroups = &self.inputs.cgroups;
        // Without the memory controller, trying each cgroup's memory.current would only cost a
        // failed open per app and second.
        let cgroup_readings = match cgroups.account_memory() {
            true => self.counters.read(current, now),
            false => IdMap::default(),
        };
        let refresh = self.ticks.is_multiple_of(READ_IDLE_EVERY);
        let idle = self
            .quiet
            .idle(cgroups.base_path(), current, &cgroup_readings, refresh);
        // Idle apps cost one read a second, whatever their number: no process ran, so every
        // reading holds and none is sent. The first such second is read as usual: it sends
        // 0 % CPU for what ran the second before.
        let nothing_ran =
            self.quiet.nothing_ran() && cgroup_readings.is_empty() && self.changed_at != self.ticks;
        let skip = nothing_ran && self.quiet_before;
        self.quiet_before = nothing_ran;
        if skip {
            self.sampler.nothing_ran_until(now);
            return None;
        }
        let (processes, trees) = self.members.sample(current, &cgroup_readings, &idle, now);
        let batch = self.sampler.sample(
            current,
            &cgroup_readings,
            (&processes, trees, &idle),
            now,
            kelpie_sys::ticks_since_boot(),
        );
        let ran: IdSet<u32> = batch
            .iter()
            .filter(|r| r.cpu_seconds > 0.0)
            .map(|r| r.pm_id)
            .collect();
        self.activity
            .read(current, (&ran, &processes), self.ticks, counters_read);
        // A reading of an instance that used no CPU and did not change tells the supervisor
        // nothing new.
        let sent = &mut self.sent;
        let batch: Vec<Reading> = batch
            .into_iter()
            .filter(|r| {
                let before = sent.insert(r.pm_id, (r.pid, r.usage));
                r.cpu_seconds > 0.0 || before != Some((r.pid, r.usage))
            })
            .collect();
        if self.changed_at == self.ticks {
            let live: IdSet<u32> = current.iter().map(|t| t.pm_id).collect();
            self.sent.retain(|pm_id, _| live.contains(pm_id));
            crate::room::shrink_if_sparse(&mut self.sent);
            self.activity.keep_only(current, counters_read);
        }
        Some(batch)
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
