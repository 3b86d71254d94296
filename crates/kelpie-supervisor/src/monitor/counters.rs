//! The counters of each instance's cgroup (with the memory controller): `memory.current` and
//! `cpu.stat`, kept open and read again each second; and reading such small pseudo-files.

use super::IdMap;
use super::{Target, FIND_EVERY};
use kelpie_sys::cgroup::Cgroup;
use std::path::PathBuf;
use std::time::Instant;

/// What a process's cgroup says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CgroupReading {
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
pub(super) struct CgroupCounters {
    open: IdMap<u32, CounterFiles>,
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
    pub(super) fn read(&mut self, targets: &[Target], now: Instant) -> IdMap<u32, CgroupReading> {
        let mut readings = IdMap::default();
        let mut open = IdMap::default();
        for target in targets {
            let Some(path) = &target.cgroup else { continue };
            let files = match self.open.remove(&target.pm_id) {
                Some(files) if files.path.as_os_str() == path.as_os_str() => Some(files),
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
pub(super) fn read_at_start<'a>(file: &std::fs::File, buffer: &'a mut Vec<u8>) -> Option<&'a str> {
    use std::os::unix::fs::FileExt;
    buffer.resize(4096, 0);
    let n = file.read_at(buffer, 0).ok()?;
    std::str::from_utf8(&buffer[..n]).ok()
}

pub(super) fn usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|line| line.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::super::SAMPLE_EVERY;
    use super::*;

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
}
