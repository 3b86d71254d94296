//! The host's families, under node_exporter's names where they fit (`node_cpu_seconds_total`,
//! `node_load1`, `node_memory_MemAvailable_bytes`...): a dashboard or alert written for
//! node_exporter works on Kelpie's /metrics. Read at each scrape: Prometheus computes the rates.

use super::Family;
use kelpie_sys::{HostCounters, HostGauges};

/// Every host family.
pub(super) fn host_families(text: &mut String, counters: &HostCounters, gauges: &HostGauges) {
    let ticks = kelpie_sys::clock_ticks_per_second() as f64;
    let name = "node_cpu_seconds_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Seconds the host's CPUs spent in each mode.",
    );
    for (cpu, times) in counters.per_cpu.iter().enumerate() {
        let cpu = cpu.to_string();
        for (mode, value) in times.modes() {
            family.sample(name, &[("cpu", &cpu), ("mode", mode)], value as f64 / ticks);
        }
    }
    for (minutes, load) in ["1", "5", "15"].iter().zip(gauges.load) {
        let name = format!("node_load{minutes}");
        let help = format!("{minutes}m load average.");
        Family::new(text, &name, "gauge", &help).sample(&name, &[], load);
    }
    let memory = [
        (
            "node_memory_MemTotal_bytes",
            "Memory information field MemTotal_bytes.",
            gauges.memory_total_bytes,
        ),
        (
            "node_memory_MemAvailable_bytes",
            "Memory information field MemAvailable_bytes.",
            gauges.memory_available_bytes,
        ),
    ];
    for (name, help, bytes) in memory {
        Family::new(text, name, "gauge", help).sample(name, &[], bytes as f64);
    }
    type Net = fn(&kelpie_sys::NetCounters) -> u64;
    let networks: [(&str, &str, Net); 2] = [
        (
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
            |n| n.received_bytes,
        ),
        (
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
            |n| n.transmitted_bytes,
        ),
    ];
    for (name, help, value) in networks {
        let mut family = Family::new(text, name, "counter", help);
        for net in &counters.networks {
            family.sample(name, &[("device", &net.device)], value(net) as f64);
        }
    }
    type Disk = fn(&kelpie_sys::DiskCounters) -> u64;
    let disks: [(&str, &str, Disk); 2] = [
        (
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            |d| d.read_bytes,
        ),
        (
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            |d| d.written_bytes,
        ),
    ];
    for (name, help, value) in disks {
        let mut family = Family::new(text, name, "counter", help);
        for disk in &counters.disks {
            family.sample(name, &[("device", &disk.device)], value(disk) as f64);
        }
    }
    if let Some(fs) = &gauges.filesystem {
        let mountpoint = fs.mountpoint.display().to_string();
        let labels = [
            ("device", fs.device.as_str()),
            ("fstype", fs.fstype.as_str()),
            ("mountpoint", mountpoint.as_str()),
        ];
        let space = [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes (the file system of the kelpie home).",
                fs.size_bytes,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes (the file system of the kelpie home).",
                fs.available_bytes,
            ),
        ];
        for (name, help, bytes) in space {
            Family::new(text, name, "gauge", help).sample(name, &labels, bytes as f64);
        }
    }
}
