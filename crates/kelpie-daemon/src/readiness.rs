//! Readiness seen from outside the process: an app binding its port itself (`reuse_port`) is
//! ready once one of its processes listens on it, read from /proc (a connection attempt cannot
//! tell: with SO_REUSEPORT the old instance answers it too).

use crate::link::ProcessSignal;
use std::collections::HashSet;
use std::time::Duration;

/// How often a starting process is checked.
const POLL: Duration = Duration::from_millis(50);

/// Report [`ProcessSignal::PortOpen`] once the process group led by `pgid` listens on `port`.
pub(crate) async fn watch_port(pgid: u32, port: u16, to: crate::mailbox::Sender<ProcessSignal>) {
    loop {
        let found = crate::tasks::blocking(move || group_listens_on(pgid, port))
            .await
            .unwrap_or(false);
        if found {
            let _ = to.send(ProcessSignal::PortOpen);
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a process of group `pgid` holds a TCP socket listening on `port`.
fn group_listens_on(pgid: u32, port: u16) -> bool {
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
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| kelpie_sys::sample_process(*pid).is_some_and(|p| p.pgrp == pgid))
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
    fn our_own_listener_is_seen() {
        // Below the ephemeral range: once dropped, no other test's `bind(0)` takes the port.
        let port = kelpie_testkit::free_port();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let me = std::process::id();
        assert!(holds_any(me, &listening_inodes(port)));
        drop(listener);
        assert!(!holds_any(me, &listening_inodes(port)));
    }
}
