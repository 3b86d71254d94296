//! What the system tells of processes that are not our children, and of this one, named by
//! what is asked (the daemon's platform seam: it reads none of this itself). On Linux, from
//! /proc. Blocking reads of small files: call them off the async workers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The environment process `pid` was started with, one `NAME=value` entry each; `None` when it
/// cannot be read (gone, or another user's).
pub fn process_environment(pid: u32) -> Option<Vec<Vec<u8>>> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(nul_separated(&environ))
}

/// The command line of process `pid`, program first; `None` when it cannot be read.
pub fn process_arguments(pid: u32) -> Option<Vec<String>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        nul_separated(&cmdline)
            .iter()
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// The working directory of process `pid`.
pub fn process_directory(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The pids of every process of the system (of this pid namespace).
pub fn all_pids() -> Vec<u32> {
    #[cfg(target_os = "macos")]
    return crate::macos::libproc::all_pids();
    #[cfg(not(target_os = "macos"))]
    {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .collect()
    }
}

/// This machine's name.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|name| !name.is_empty())
}

/// The running kernel's release (`6.1.0-13-amd64`).
pub fn kernel_release() -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(release.trim().to_string()).filter(|release| !release.is_empty())
}

/// The machine's memory and how much of it is available, in KiB (`MemTotal`, `MemAvailable`).
pub fn memory_total_and_available_kib() -> (Option<u64>, Option<u64>) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            line.strip_prefix(name)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// The non-empty parts of `bytes` between NULs.
fn nul_separated(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// This program, as a path that still runs it after its file was replaced (a `cargo install`
/// or a package upgrade during the daemon's life): to start a helper of the same version.
pub fn own_program() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

/// What this process's stderr is open on, now.
pub fn stderr_metadata() -> std::io::Result<std::fs::Metadata> {
    std::fs::metadata("/proc/self/fd/2")
}

/// Whether this process's stderr is open on `path`'s file after that file was removed.
pub fn stderr_is_removed(path: &Path) -> bool {
    std::fs::read_link("/proc/self/fd/2").is_ok_and(|target| {
        target.as_os_str().to_string_lossy() == format!("{} (deleted)", path.display())
    })
}

/// Time since boot in clock ticks (the unit of process start times, see
/// [`crate::sample_process`]).
pub fn ticks_since_boot() -> u64 {
    #[cfg(target_os = "macos")]
    return crate::macos::libproc::ticks_since_boot();
    #[cfg(not(target_os = "macos"))]
    {
        let mut text = String::new();
        let seconds = crate::read_small_file("/proc/uptime", &mut text)
            .ok()
            .and_then(|()| text.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        (seconds * crate::clock_ticks_per_second() as f64) as u64
    }
}

/// Whether a process of process group `pgid` holds a TCP socket listening on `port` (IPv4 or
/// IPv6): readiness seen from outside the process.
pub fn group_listens_on(pgid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    group_members(pgid)
        .into_iter()
        .any(|pid| holds_any(pid, &inodes))
}

/// Inodes of the sockets listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(parse_listening(&text, port));
    }
    inodes
}

/// Lines of /proc/net/tcp look like
/// `0: 00000000:0BB8 00000000:0000 0A ... uid timeout inode`: local address:port in hex,
/// state `0A` = LISTEN, the inode is the 10th field.
fn parse_listening(table: &str, port: u16) -> impl Iterator<Item = u64> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit_once(':')?.1;
        let listening = *fields.get(3)? == "0A";
        (listening && u16::from_str_radix(local_port, 16).ok()? == port)
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// Pids whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| crate::sample_process(*pid).is_some_and(|p| p.pgrp == pgid))
        .collect()
}

fn holds_any(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let text = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            text.parse::<u64>().ok()
        })
        .any(|inode| inodes.contains(&inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0BB8 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(
            parse_listening(table, 3000).collect::<Vec<_>>(),
            vec![12345]
        );
        assert_eq!(parse_listening(table, 3001).count(), 0);
    }

    #[test]
    fn our_own_listener_is_seen_and_its_group_listens() {
        // Below the ephemeral range: once dropped, no other test's `bind(0)` takes the port.
        let port = kelpie_testkit::free_port();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let me = std::process::id();
        assert!(holds_any(me, &listening_inodes(port)));
        let group = crate::sample_process(me).expect("ourselves").pgrp;
        assert!(group_listens_on(group, port));
        drop(listener);
        assert!(!holds_any(me, &listening_inodes(port)));
    }

    #[test]
    fn our_own_environment_arguments_and_directory_are_read() {
        let me = std::process::id();
        let environment = process_environment(me).expect("environment");
        assert!(environment.iter().all(|entry| entry.contains(&b'=')));
        let arguments = process_arguments(me).expect("arguments");
        assert_eq!(
            arguments,
            std::env::args().collect::<Vec<_>>(),
            "as std reads them"
        );
        assert_eq!(
            process_directory(me),
            std::env::current_dir().ok(),
            "as std reads it"
        );
        assert!(process_environment(u32::MAX).is_none());
        assert!(ticks_since_boot() > 0);
        assert!(all_pids().contains(&me));
        assert!(host_name().is_some() && kernel_release().is_some());
        let (total, available) = memory_total_and_available_kib();
        assert!(total.is_some_and(|total| available.is_some_and(|free| free <= total)));
        assert!(own_program().exists());
        assert!(stderr_metadata().is_ok());
    }
}
