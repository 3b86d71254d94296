//! The host's use as the views show it ([`HostMetrics`]): PM2's host line (pm2-server-monit),
//! built in.

use serde::{Deserialize, Serialize};

/// The host's CPU, memory, load, disk and network use: rates between the daemon's last two
/// readings (a second apart while someone looks, up to 10 s otherwise), and the figures read
/// with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// Of all CPUs together: 100 is every CPU busy.
    pub cpu_percent: f64,
    /// How many CPUs the host has.
    pub cpus: u32,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory.
    pub memory_total_bytes: u64,
    /// Memory that can be had without swapping.
    pub memory_available_bytes: u64,
    /// The file system of the kelpie home (where the logs and state go), when it could be read.
    pub filesystem: Option<HostFilesystem>,
    /// Bytes per second read from the host's disks.
    pub disk_read_per_sec: f64,
    /// Bytes per second written to them.
    pub disk_written_per_sec: f64,
    /// Bytes per second received by the host's network interfaces (not `lo`, bridges or veths;
    /// every interface but `lo` where none is the machine's own, as in a container).
    pub net_received_per_sec: f64,
    /// Bytes per second they sent.
    pub net_transmitted_per_sec: f64,
    /// When it was read (ms since the epoch).
    pub at_ms: i64,
    /// Over how long the rates are (ms).
    pub interval_ms: u64,
}

/// Space on one file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFilesystem {
    /// Where it is mounted.
    pub mountpoint: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Bytes free for unprivileged users.
    pub available_bytes: u64,
}
