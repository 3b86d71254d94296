//! The host's families, under node_exporter's names where they fit (`node_cpu_seconds_total`,
//! `node_load1`, `node_memory_MemAvailable_bytes`...): a dashboard or alert written for
//! node_exporter works on Kelpie's /metrics. Read at each scrape: Prometheus computes the rates.

use super::Family;
use kelpie_sys::{HostCounters, HostGauges};

/// A counter family of devices: its name, help, and value of one device.
type Counter<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Counter families with one sample per device, labelled `device`.
fn per_device<T>(text: &mut String, families: &[Counter<T>], devices: &[T], name: fn(&T) -> &str) {
    for (family_name, help, value) in families {
        let mut family = Family::new(text, family_name, "counter", help);
        for device in devices {
            family.sample(
                family_name,
                &[("device", name(device))],
                value(device) as f64,
            );
        }
    }
}

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
    let networks: [Counter<kelpie_sys::NetCounters>; 2] = [
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
    per_device(text, &networks, &counters.networks, |n| &n.device);
    let disks: [Counter<kelpie_sys::DiskCounters>; 2] = [
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
    per_device(text, &disks, &counters.disks, |d| &d.device);
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
