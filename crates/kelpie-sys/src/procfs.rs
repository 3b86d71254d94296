//! Reading a process's resource use from /proc.

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks (with the pid, identifies the process across reuse).
    pub start_ticks: u64,
    /// Its process group.
    pub pgrp: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// It has exited and waits to be reaped by its parent: it holds no memory, files or ports.
    pub zombie: bool,
    /// Page faults served without a disk read, since it started (field 10).
    pub minor_faults: u64,
    /// Page faults that had to read from disk, since it started (field 12).
    pub major_faults: u64,
}

/// One process seen by [`scan_processes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessEntry {
    /// Its pid.
    pub pid: u32,
    /// What `/proc/<pid>/stat` said.
    pub sample: ProcessSample,
}

/// Every process of the system (of this pid namespace), read from `/proc/*/stat` in one pass.
/// Processes that end during the scan are left out. Blocking: call it off the async workers.
pub fn scan_processes() -> std::io::Result<Vec<ProcessEntry>> {
    #[cfg(target_os = "macos")]
    return Ok(crate::macos::libproc::all_pids()
        .into_iter()
        .filter_map(|pid| {
            let sample = crate::macos::libproc::sample(pid)?;
            Some(ProcessEntry { pid, sample })
        })
        .collect());
    #[cfg(not(target_os = "macos"))]
    {
        let mut entries = Vec::new();
        // One buffer for every read: a scan of 1000 processes then allocates once.
        let mut text = String::with_capacity(512);
        let mut path = String::with_capacity(32);
        for dirent in std::fs::read_dir("/proc")? {
            let Ok(dirent) = dirent else { continue };
            let name = dirent.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            path.clear();
            path.push_str("/proc/");
            path.push_str(name.to_str().unwrap_or_default());
            path.push_str("/stat");
            text.clear();
            let read = std::fs::File::open(&path)
                .and_then(|mut file| std::io::Read::read_to_string(&mut file, &mut text));
            if read.is_err() {
                continue;
            }
            if let Some(sample) = parse_stat(&text) {
                entries.push(ProcessEntry { pid, sample });
            }
        }
        Ok(entries)
    }
}

/// A process's `/proc/<pid>/stat`, kept open to be read again each second without a path
/// lookup (a `pread` at 0 makes the kernel write it anew). Bound to that process: once it has
/// ended, reads fail, even if its pid is used again.
///
/// On macOS there is no such file: it is the pid and its start time, and each read asks
/// libproc (a read of a later process given the same pid fails, as the file's would).
pub struct StatFile {
    #[cfg(not(target_os = "macos"))]
    file: std::fs::File,
    #[cfg(target_os = "macos")]
    process: (u32, u64),
}

impl StatFile {
    /// Open it; `None` when the process is gone (or the descriptor cannot be had).
    #[cfg(target_os = "macos")]
    pub fn open(pid: u32) -> Option<StatFile> {
        let started = crate::macos::libproc::sample(pid)?.start_ticks;
        Some(StatFile {
            process: (pid, started),
        })
    }

    /// Read it now; `None` once the process is gone.
    #[cfg(target_os = "macos")]
    pub fn read(&self, _: &mut Vec<u8>) -> Option<ProcessSample> {
        let (pid, started) = self.process;
        crate::macos::libproc::sample(pid).filter(|sample| sample.start_ticks == started)
    }

    /// Open it; `None` when the process is gone (or the descriptor cannot be had).
    #[cfg(not(target_os = "macos"))]
    pub fn open(pid: u32) -> Option<StatFile> {
        std::fs::File::open(format!("/proc/{pid}/stat"))
            .ok()
            .map(|file| StatFile { file })
    }

    /// Read it now, into `buffer` (reused across reads); `None` once the process is gone.
    #[cfg(not(target_os = "macos"))]
    pub fn read(&self, buffer: &mut Vec<u8>) -> Option<ProcessSample> {
        use std::os::unix::fs::FileExt;
        buffer.resize(1024, 0);
        let n = self.file.read_at(buffer, 0).ok()?;
        parse_stat(std::str::from_utf8(&buffer[..n]).ok()?)
    }
}

/// The children of `pid`, from each of its threads' `/proc/<pid>/task/<tid>/children`
/// (a child belongs to the thread that forked it). Empty when the process is gone.
pub fn children_of(pid: u32) -> Vec<u32> {
    #[cfg(target_os = "macos")]
    return crate::macos::libproc::children_of(pid);
    #[cfg(not(target_os = "macos"))]
    {
        let mut children = Vec::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return children;
        };
        for task in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            children.extend(
                list.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok()),
            );
        }
        children
    }
}

/// Bytes per memory page (from the auxiliary vector the kernel gave this program).
pub fn page_size() -> u64 {
    u64::try_from(rustix::param::page_size())
        .ok()
        .filter(|v| *v > 0)
        .unwrap_or(4096)
}

/// Clock ticks per second (`USER_HZ`) for CPU times in /proc (from the auxiliary vector).
pub fn clock_ticks_per_second() -> u64 {
    Some(rustix::param::clock_ticks_per_second())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// Read `/proc/<pid>/stat`; `None` when the process is gone. Blocking (a small file read): call
/// it off the async workers.
/// Room for a small file the kernel writes anew at each read (`/proc/<pid>/status`, about
/// 1.5 KiB; `/proc/uptime`).
const SMALL_FILE_ROOM: usize = 4096;

/// The whole of such a small file into `text` (its earlier contents replaced): opened, then one
/// `read` when it fits in [`SMALL_FILE_ROOM`] (the kernel writes it whole at the first read),
/// where `read_to_string` would ask its size first (`statx`: 0 for these files) and where the
/// file is (`lseek`), then read again to see its end: three system calls more, for each
/// process the monitor meets. A longer one is read to its end.
pub fn read_small_file(path: &str, text: &mut String) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.clear();
    bytes.resize(SMALL_FILE_ROOM, 0);
    let n = file.read(&mut bytes)?;
    bytes.truncate(n);
    if n == SMALL_FILE_ROOM {
        file.read_to_end(&mut bytes)?;
    }
    *text = String::from_utf8(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(())
}

pub fn sample_process(pid: u32) -> Option<ProcessSample> {
    #[cfg(target_os = "macos")]
    return crate::macos::libproc::sample(pid);
    #[cfg(not(target_os = "macos"))]
    {
        // One read: the kernel writes the whole line at once. `read_to_string` would stat the file
        // (a size of 0) and read it in growing pieces: six system calls more, for each process the
        // persister records and each one the monitor meets.
        StatFile::open(pid)?.read(&mut Vec::new())
    }
}

#[cfg(not(target_os = "macos"))]
fn parse_stat(stat: &str) -> Option<ProcessSample> {
    // The command name (field 2) may contain spaces and parentheses: fields are counted from
    // the last ')'. `rest` starts at field 3 (state); read in one pass, without allocating (the
    // monitor parses every app process's stat each second).
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_ascii_whitespace();
    let zombie = fields.next()? == "Z";
    let ppid: u32 = fields.next()?.parse().ok()?; // 4
    let pgrp: u32 = fields.next()?.parse().ok()?; // 5
    let minor_faults: u64 = fields.nth(4)?.parse().ok()?; // 10
    let major_faults: u64 = fields.nth(1)?.parse().ok()?; // 12
    let utime: u64 = fields.nth(1)?.parse().ok()?; // 14
    let stime: u64 = fields.next()?.parse().ok()?; // 15
    let start_ticks: u64 = fields.nth(6)?.parse().ok()?; // 22
    let rss_pages: u64 = fields.nth(1)?.parse().ok()?; // 24
    Some(ProcessSample {
        rss_bytes: rss_pages * page_size(),
        cpu_ticks: utime + stime,
        start_ticks,
        pgrp,
        ppid,
        zombie,
        minor_faults,
        major_faults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_is_read_whole_however_long() {
        let mut text = String::from("what was there");
        read_small_file("/proc/self/status", &mut text).expect("status");
        assert!(text.starts_with("Name:") && text.contains("voluntary_ctxt_switches:"));
        let temp = tempfile::tempdir().expect("temp dir");
        let long = temp.path().join("long");
        let written: String = (0..2_000).map(|i| format!("line {i}\n")).collect();
        assert!(written.len() > 2 * SMALL_FILE_ROOM);
        std::fs::write(&long, &written).expect("write");
        read_small_file(long.to_str().expect("utf-8"), &mut text).expect("long");
        assert_eq!(text, written);
        assert!(read_small_file("/proc/self/no-such-file", &mut text).is_err());
    }

    #[test]
    fn a_kept_stat_file_reads_the_process_anew_and_children_are_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        // Looked at again for a while: a listing of /proc/<pid>/task goes by position, so
        // threads of the test runner ending meanwhile can make it skip this one (CI saw it).
        let found = (0..100).any(|_| {
            let found = children_of(me).contains(&child.id());
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            found
        });
        assert!(found, "the child among this process's children");
        let stat = StatFile::open(child.id()).expect("open its stat");
        let mut buffer = Vec::new();
        let first = stat.read(&mut buffer).expect("read");
        assert_eq!(first.ppid, me);
        // The same process read both ways. Only what cannot change is compared: the child may
        // still be in its exec when it is read, so its memory (even 0 while the old one is
        // dropped) and CPU time can differ between the two reads.
        let sampled = sample_process(child.id()).expect("sample it");
        let identity = |s: &ProcessSample| (s.start_ticks, s.ppid, s.pgrp, s.zombie);
        assert_eq!(identity(&first), identity(&sampled));
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(stat.read(&mut buffer), None, "gone once reaped");
        assert!(!children_of(me).contains(&child.id()));
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 4 0 \
                    7 3 0 0 20 0 1 0 123456 9999999 250 18446744073709551615";
        let sample = parse_stat(stat).expect("parse");
        assert_eq!(
            sample,
            ProcessSample {
                rss_bytes: 250 * page_size(),
                cpu_ticks: 10,
                start_ticks: 123456,
                pgrp: 4240,
                ppid: 1,
                zombie: false,
                minor_faults: 100,
                major_faults: 4,
            }
        );
        assert!(parse_stat("4242 (x) Z 1 2").is_none(), "cut short");
        assert!(parse_stat("no parenthesis").is_none());
    }

    #[test]
    fn our_own_process_can_be_sampled() {
        let sample = sample_process(std::process::id()).expect("sample self");
        assert!(sample.rss_bytes > 0);
        assert!(sample.start_ticks > 0);
    }

    #[test]
    fn names_with_parentheses_and_spaces_parse() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 555 1000 25 \
                    18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(stat).expect("parse");
        assert_eq!(s.cpu_ticks, 10);
        assert_eq!(s.start_ticks, 555);
        assert_eq!(s.rss_bytes, 25 * page_size());
        assert_eq!(s.pgrp, 42);
        assert_eq!(s.ppid, 1);
        assert!(!s.zombie);
    }

    #[test]
    fn a_scan_sees_this_process_and_its_parent() {
        let entries = scan_processes().expect("scan /proc");
        let me = entries
            .iter()
            .find(|e| e.pid == std::process::id())
            .expect("this process is in the scan");
        assert!(me.sample.rss_bytes > 0);
        assert!(entries.iter().any(|e| e.pid == me.sample.ppid));
    }

    #[test]
    fn a_missing_process_is_none() {
        assert_eq!(sample_process(u32::MAX - 1), None);
    }
}

/// Whether process `pid` has a handler for `signal` (its `SigCgt` mask in /proc): a signal it
/// does not catch may end it (the default action of SIGUSR1, say).
pub fn catches_signal(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let Some(mask) = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}

#[cfg(test)]
mod signal_tests {
    use super::catches_signal;

    #[test]
    fn a_caught_signal_is_seen_in_sigcgt() {
        // `trap` makes the shell catch SIGUSR1; SIGUSR2 keeps its default action.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 0' USR1; while :; do sleep 0.05; done"])
            .spawn()
            .expect("sh");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !catches_signal(pid, libc::SIGUSR1) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let usr1 = catches_signal(pid, libc::SIGUSR1);
        let usr2 = catches_signal(pid, libc::SIGUSR2);
        let _ = child.kill();
        let _ = child.wait();
        assert!(usr1);
        assert!(!usr2);
    }
}
