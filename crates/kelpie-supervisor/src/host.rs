//! The host's use (`list`'s host line, `monit`, the web page): read by the monitor thread,
//! turned into rates against the previous reading, and kept for whoever asks. Each second
//! while someone looks (asked within [`WATCHED_FOR`]: `monit`, `list --watch`, the web page),
//! else every [`IDLE_EVERY`] samples, so that an idle daemon does not read the host for nobody.
//! `/metrics` reads the counters themselves at each scrape (Prometheus computes its own rates).

use kelpie_proto::{HostFilesystem, HostMetrics};
use kelpie_sys::{HostCounters, HostGauges, HostReader};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How long after someone asked the host is read every second.
const WATCHED_FOR_MS: u64 = 30_000;

/// Otherwise it is read every this many of the monitor's samples (seconds).
const IDLE_EVERY: u64 = 10;

/// Until when (the daemon's monotonic ms) someone is looking.
static WATCHED_UNTIL_MS: AtomicU64 = AtomicU64::new(0);

/// The last figures, for every reader.
static LATEST: Mutex<Option<HostMetrics>> = Mutex::new(None);

/// The host's use as last sampled: `None` until two readings were taken. Asking keeps the
/// readings coming each second for a while.
pub fn latest() -> Option<HostMetrics> {
    WATCHED_UNTIL_MS.store(
        crate::clock::now().mono_ms + WATCHED_FOR_MS,
        Ordering::Relaxed,
    );
    LATEST.lock().ok().and_then(|latest| latest.clone())
}

/// What a scrape reads: the file system of the home the sampler was made for (`/` before).
static SCRAPE: Mutex<Option<HostReader>> = Mutex::new(None);

/// The counters and gauges as they are now, for `/metrics` (blocking: off the async threads).
pub fn read_now() -> (HostCounters, HostGauges) {
    let Ok(mut reader) = SCRAPE.lock() else {
        return Default::default();
    };
    let reader = reader.get_or_insert_with(|| HostReader::new(Path::new("/")));
    (reader.counters(), reader.gauges())
}

/// The monitor thread's sampler.
pub struct HostSampler {
    reader: HostReader,
    previous: Option<(HostCounters, Instant)>,
    /// Samples skipped since the last reading.
    skipped: u64,
}

impl HostSampler {
    /// A sampler reporting the space of the file system that holds `home`.
    pub fn new(home: &Path) -> HostSampler {
        if let Ok(mut scrape) = SCRAPE.lock() {
            *scrape = Some(HostReader::new(home));
        }
        HostSampler {
            reader: HostReader::new(home),
            previous: None,
            skipped: 0,
        }
    }

    /// At each of the monitor's samples: read the host when someone looks or it is time to,
    /// and publish its rates since the previous reading.
    pub(crate) fn sample(&mut self) {
        let watched = crate::clock::now().mono_ms < WATCHED_UNTIL_MS.load(Ordering::Relaxed);
        // Two readings from the start, so that the first `list` has rates.
        let starting = self.previous.is_none() || LATEST.lock().is_ok_and(|l| l.is_none());
        self.skipped += 1;
        if !(watched || starting || self.skipped >= IDLE_EVERY) {
            return;
        }
        self.skipped = 0;
        let now = Instant::now();
        let counters = self.reader.counters();
        let gauges = self.reader.gauges();
        if let Some((before, at)) = &self.previous {
            let seconds = now.duration_since(*at).as_secs_f64();
            let metrics = rates(
                before,
                &counters,
                seconds,
                &gauges,
                crate::clock::now().wall_ms as i64,
            );
            if let Ok(mut latest) = LATEST.lock() {
                *latest = Some(metrics);
            }
        }
        self.previous = Some((counters, now));
    }
}

/// The rates between two readings `seconds` apart.
fn rates(
    before: &HostCounters,
    after: &HostCounters,
    seconds: f64,
    gauges: &HostGauges,
    at_ms: i64,
) -> HostMetrics {
    let per_sec = |delta: u64| {
        if seconds > 0.0 {
            delta as f64 / seconds
        } else {
            0.0
        }
    };
    let total = after.cpu.total().saturating_sub(before.cpu.total());
    let busy = after.cpu.busy().saturating_sub(before.cpu.busy());
    let cpu_percent = if total > 0 {
        (busy as f64 / total as f64 * 100.0).min(100.0)
    } else {
        0.0
    };
    // Counters of the same device in both readings (one that appeared meanwhile has no rate);
    // a counter that went back (a device replaced) counts nothing.
    let delta = |pick: &dyn Fn(&HostCounters) -> Vec<(String, u64)>| -> u64 {
        let old = pick(before);
        pick(after)
            .iter()
            .filter_map(|(device, now)| {
                let (_, was) = old.iter().find(|(d, _)| d == device)?;
                Some(now.saturating_sub(*was))
            })
            .sum()
    };
    // The machine's own interfaces; in a container (only veths) every one but `lo`.
    let own_only = after.networks.iter().any(|n| n.physical);
    let networks = |c: &HostCounters, received: bool| -> Vec<(String, u64)> {
        c.networks
            .iter()
            .filter(|n| n.physical || !own_only)
            .map(|n| {
                let bytes = if received {
                    n.received_bytes
                } else {
                    n.transmitted_bytes
                };
                (n.device.clone(), bytes)
            })
            .collect()
    };
    let disks = |c: &HostCounters, read: bool| -> Vec<(String, u64)> {
        c.disks
            .iter()
            .map(|d| {
                let bytes = if read { d.read_bytes } else { d.written_bytes };
                (d.device.clone(), bytes)
            })
            .collect()
    };
    HostMetrics {
        cpu_percent,
        cpus: after.per_cpu.len() as u32,
        load: gauges.load,
        memory_total_bytes: gauges.memory_total_bytes,
        memory_available_bytes: gauges.memory_available_bytes,
        filesystem: gauges.filesystem.as_ref().map(|fs| HostFilesystem {
            mountpoint: fs.mountpoint.display().to_string(),
            size_bytes: fs.size_bytes,
            available_bytes: fs.available_bytes,
        }),
        disk_read_per_sec: per_sec(delta(&|c| disks(c, true))),
        disk_written_per_sec: per_sec(delta(&|c| disks(c, false))),
        net_received_per_sec: per_sec(delta(&|c| networks(c, true))),
        net_transmitted_per_sec: per_sec(delta(&|c| networks(c, false))),
        at_ms,
        interval_ms: (seconds * 1000.0).round() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_sys::{CpuTimes, DiskCounters, NetCounters};

    fn counters(busy: u64, idle: u64, eth0: u64, veth: u64, vda: u64) -> HostCounters {
        let cpu = CpuTimes {
            user: busy,
            idle,
            ..CpuTimes::default()
        };
        let net = |device: &str, bytes: u64, physical: bool| NetCounters {
            device: device.into(),
            received_bytes: bytes,
            transmitted_bytes: bytes * 2,
            physical,
        };
        HostCounters {
            cpu,
            per_cpu: vec![cpu, cpu],
            networks: vec![net("eth0", eth0, true), net("veth1", veth, false)],
            disks: vec![DiskCounters {
                device: "vda".into(),
                read_bytes: vda,
                written_bytes: vda * 3,
            }],
        }
    }

    #[test]
    fn rates_count_the_machines_own_devices_over_the_time_between_readings() {
        let before = counters(100, 300, 1000, 5000, 4096);
        let after = counters(150, 350, 3000, 9000, 8192);
        let metrics = rates(&before, &after, 2.0, &HostGauges::default(), 0);
        assert_eq!(metrics.cpu_percent, 50.0);
        assert_eq!(metrics.cpus, 2);
        // The veth's traffic is the host's own already.
        assert_eq!(metrics.net_received_per_sec, 1000.0);
        assert_eq!(metrics.net_transmitted_per_sec, 2000.0);
        assert_eq!(metrics.disk_read_per_sec, 2048.0);
        assert_eq!(metrics.disk_written_per_sec, 6144.0);

        // A counter that went back (a device replaced) counts nothing.
        let metrics = rates(&after, &before, 1.0, &HostGauges::default(), 0);
        assert_eq!(metrics.net_received_per_sec, 0.0);
    }
}
