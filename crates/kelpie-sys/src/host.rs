//! The host's own use, from /proc and /sys: CPU time, memory, load, network and disk traffic,
//! and the space of one file system. Counters (CPU time, bytes) only grow; a caller turns two
//! readings into rates. Blocking reads of small files: call them off the async workers.

use std::path::{Path, PathBuf};

/// CPU time by mode, in clock ticks (a line of `/proc/stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Every mode, as node_exporter names them (`node_cpu_seconds_total{mode}`).
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// All the time counted.
    pub fn total(&self) -> u64 {
        self.modes().iter().map(|(_, ticks)| ticks).sum()
    }

    /// The time spent neither idle nor waiting for I/O.
    pub fn busy(&self) -> u64 {
        self.total() - self.idle - self.iowait
    }
}

/// The bytes through one network interface since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetCounters {
    pub device: String,
    pub received_bytes: u64,
    pub transmitted_bytes: u64,
    /// A device of the machine (not `lo`, a bridge, a veth or a tunnel).
    pub physical: bool,
}

/// The bytes read from and written to one disk since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCounters {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// What only grows: read twice for rates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// All CPUs together.
    pub cpu: CpuTimes,
    /// Each CPU (`cpu0`, `cpu1`...), in order.
    pub per_cpu: Vec<CpuTimes>,
    /// Every interface but `lo`.
    pub networks: Vec<NetCounters>,
    /// Every disk of the machine (not partitions, loop, zram, device-mapper or md devices,
    /// whose traffic is already a disk's).
    pub disks: Vec<DiskCounters>,
}

/// Space on one file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemSpace {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// What is mounted there (`/dev/vda1`, `overlay`).
    pub device: String,
    /// Its type (`ext4`).
    pub fstype: String,
    pub size_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
}

/// What is read as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostGauges {
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    /// Memory that can be had without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
    /// The file system asked about, when it could be read.
    pub filesystem: Option<FilesystemSpace>,
}

/// Reads the host's figures, remembering what does not change between readings: which devices
/// are the machine's own, and which mount holds the file system asked about.
#[derive(Debug)]
pub struct HostReader {
    /// The file system to report the space of is the one holding this path.
    space_of: PathBuf,
    /// `(mount point, type, source)`, found at the first reading.
    mount: Option<(PathBuf, String, String)>,
    /// `/sys` paths known to be virtual (true) or the machine's own (false).
    virtual_paths: std::collections::HashMap<String, bool>,
}

impl HostReader {
    /// A reader reporting the space of the file system that holds `space_of`.
    pub fn new(space_of: &Path) -> HostReader {
        HostReader {
            space_of: space_of.to_path_buf(),
            mount: None,
            virtual_paths: std::collections::HashMap::new(),
        }
    }

    /// Read the counters. What cannot be read is left empty (a container without /sys).
    pub fn counters(&mut self) -> HostCounters {
        let (cpu, per_cpu) = std::fs::read_to_string("/proc/stat")
            .map(|text| parse_stat_cpus(&text))
            .unwrap_or_default();
        let mut networks = std::fs::read_to_string("/proc/net/dev")
            .map(|text| parse_net_dev(&text))
            .unwrap_or_default();
        for net in &mut networks {
            net.physical = !self.is_virtual(format!("/sys/class/net/{}", net.device));
        }
        let mut disks = std::fs::read_to_string("/proc/diskstats")
            .map(|text| parse_diskstats(&text))
            .unwrap_or_default();
        // Partitions have no /sys/block entry; loop, zram, dm and md devices are virtual.
        disks.retain(|disk| {
            !self.is_virtual(format!("/sys/block/{}", disk.device.replace('/', "!")))
        });
        HostCounters {
            cpu,
            per_cpu,
            networks,
            disks,
        }
    }

    /// Read the gauges.
    pub fn gauges(&mut self) -> HostGauges {
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| parse_loadavg(&text))
            .unwrap_or_default();
        let (memory_total_bytes, memory_available_bytes) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_meminfo(&text))
            .unwrap_or_default();
        HostGauges {
            load,
            memory_total_bytes,
            memory_available_bytes,
            filesystem: self.filesystem_space(),
        }
    }

    /// Whether a /sys link leads under `devices/virtual` (lo, bridges, veths, loop, zram, dm),
    /// or is missing; asked once per device.
    fn is_virtual(&mut self, sys_path: String) -> bool {
        if let Some(known) = self.virtual_paths.get(&sys_path) {
            return *known;
        }
        let answer = std::fs::read_link(&sys_path)
            .map(|target| target.to_string_lossy().contains("/devices/virtual/"))
            .unwrap_or(true);
        self.virtual_paths.insert(sys_path, answer);
        answer
    }

    /// The space of the file system holding the path, named by its mount (the longest mount
    /// point of `/proc/self/mountinfo` the path is under, found once).
    fn filesystem_space(&mut self) -> Option<FilesystemSpace> {
        if self.mount.is_none() {
            let path = self.space_of.canonicalize().ok()?;
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            self.mount = mount_of(&mountinfo, &path);
        }
        let (mountpoint, fstype, device) = self.mount.clone()?;
        let Ok(stat) = rustix::fs::statvfs(&mountpoint) else {
            // Unmounted since: found again next time.
            self.mount = None;
            return None;
        };
        Some(FilesystemSpace {
            mountpoint,
            device,
            fstype,
            size_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
            available_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        })
    }
}

/// `(mount point, type, source)` of the mount `path` is under.
fn mount_of(mountinfo: &str, path: &Path) -> Option<(PathBuf, String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
            let (before, after) = line.split_once(" - ")?;
            let mountpoint = PathBuf::from(unescape_octal(before.split(' ').nth(4)?));
            let mut after = after.split(' ');
            let fstype = after.next()?.to_string();
            let device = unescape_octal(after.next()?);
            path.starts_with(&mountpoint)
                .then_some((mountpoint, fstype, device))
        })
        // The last of the longest: a later mount on the same point hides the earlier.
        .fold(
            None,
            |best: Option<(PathBuf, String, String)>, mount| match &best {
                Some((point, _, _)) if point.as_os_str().len() > mount.0.as_os_str().len() => best,
                _ => Some(mount),
            },
        )
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `cpu` line and the `cpuN` lines of `/proc/stat`.
fn parse_stat_cpus(text: &str) -> (CpuTimes, Vec<CpuTimes>) {
    let mut total = CpuTimes::default();
    let mut each = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next().filter(|name| name.starts_with("cpu")) else {
            continue;
        };
        let mut next = || fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        let times = CpuTimes {
            user: next(),
            nice: next(),
            system: next(),
            idle: next(),
            iowait: next(),
            irq: next(),
            softirq: next(),
            steal: next(),
        };
        if name == "cpu" {
            total = times;
        } else {
            each.push(times);
        }
    }
    (total, each)
}

/// `/proc/net/dev`: every interface but `lo` (`physical` is for the caller to find).
fn parse_net_dev(text: &str) -> Vec<NetCounters> {
    text.lines()
        .filter_map(|line| {
            let (device, numbers) = line.split_once(':')?;
            let device = device.trim();
            if device == "lo" || device.contains('|') {
                return None;
            }
            let numbers: Vec<u64> = numbers
                .split_ascii_whitespace()
                .map(|n| n.parse().unwrap_or(0))
                .collect();
            Some(NetCounters {
                device: device.to_string(),
                received_bytes: *numbers.first()?,
                transmitted_bytes: *numbers.get(8)?,
                physical: false,
            })
        })
        .collect()
}

/// `/proc/diskstats`: every device, in sectors of 512 bytes (whatever the disk's).
fn parse_diskstats(text: &str) -> Vec<DiskCounters> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let device = *fields.get(2)?;
            let sectors = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            Some(DiskCounters {
                device: device.to_string(),
                read_bytes: sectors(5)? * 512,
                written_bytes: sectors(9)? * 512,
            })
        })
        .collect()
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// `(MemTotal, MemAvailable)` in bytes.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let kib: u64 = line
                .strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()?;
            Some(kib * 1024)
        })
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        let stat = "cpu  10 1 5 100 2 0 1 0 0 0\ncpu0 6 1 3 50 1 0 1 0 0 0\ncpu1 4 0 2 50 1 0 0 0 0 0\nintr 1 2\n";
        let (total, each) = parse_stat_cpus(stat);
        assert_eq!(total.total(), 119);
        assert_eq!(total.busy(), 17);
        assert_eq!(each.len(), 2);
        assert_eq!(each[1].system, 2);

        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 705 20 0 0 0 0 0 0 1642 13 0 0 0 0 0 0\n";
        let nets = parse_net_dev(dev);
        assert_eq!(
            nets,
            [NetCounters {
                device: "eth0".into(),
                received_bytes: 705,
                transmitted_bytes: 1642,
                physical: false
            }]
        );

        let disks = " 253 0 vda 100 0 2048 50 30 0 4096 20 0 70 70\n 253 1 vda1 90 0 1024 40 30 0 4096 20 0 60 60\n";
        assert_eq!(
            parse_diskstats(disks)[0],
            DiskCounters {
                device: "vda".into(),
                read_bytes: 2048 * 512,
                written_bytes: 4096 * 512
            }
        );

        assert_eq!(
            parse_loadavg("0.52 0.61 0.70 1/234 5678\n"),
            Some([0.52, 0.61, 0.70])
        );
        assert_eq!(
            parse_meminfo(
                "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   12000000 kB\n"
            ),
            Some((24_000_000 * 1024, 12_000_000 * 1024))
        );

        let mountinfo = "22 1 253:1 / / rw - ext4 /dev/vda1 rw\n30 22 0:5 / /home/my\\040disk rw - xfs /dev/vdb rw\n31 22 0:6 / /home rw - tmpfs tmpfs rw\n";
        let (point, fstype, device) =
            mount_of(mountinfo, Path::new("/home/my disk/kelpie")).expect("a mount");
        assert_eq!(
            (point.as_path(), fstype.as_str(), device.as_str()),
            (Path::new("/home/my disk"), "xfs", "/dev/vdb")
        );
        assert_eq!(
            mount_of(mountinfo, Path::new("/var")).expect("root").0,
            Path::new("/")
        );
    }

    #[test]
    fn this_machine_reads() {
        let mut reader = HostReader::new(Path::new("/"));
        let counters = reader.counters();
        assert!(counters.cpu.total() > 0);
        assert!(!counters.per_cpu.is_empty());
        let gauges = reader.gauges();
        assert!(gauges.memory_total_bytes > gauges.memory_available_bytes);
        let root = gauges.filesystem.expect("the root file system");
        assert_eq!(root.mountpoint, Path::new("/"));
        assert!(root.size_bytes >= root.available_bytes && root.size_bytes > 0);
    }
}
