//! Signals, process groups and sessions.

use rustix::process::{Pid, Signal};
#[cfg(target_os = "linux")]
use rustix_libc_wrappers::process::SignalExt;
use std::io;
use std::os::unix::process::CommandExt;

/// SIGKILL's number, for callers that escalate.
pub const SIGKILL: i32 = libc::SIGKILL;

const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    #[cfg(target_os = "linux")]
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// The number of a signal given as `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS.iter().find(|(n, _)| *n == full).map(|(_, v)| *v)
}

/// The name of a signal number (`SIGTERM`), or `SIG<n>` when it has none.
pub fn signal_name(number: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == number)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| format!("SIG{number}"))
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {pid}")))
}

/// `Some(signal)` to send one, `None` for 0 (only check that the target exists).
///
/// Any signal of 1..=64 but those the C library reserves for its own use (with glibc 32 and
/// 33, below its `SIGRTMIN`), which rustix forbids sending; those, and numbers out of range,
/// are refused with EINVAL as kill(2) would refuse an invalid one.
fn to_signal(signal: i32) -> io::Result<Option<Signal>> {
    if signal == 0 {
        return Ok(None);
    }
    // The named signals, and the real-time ones from libc's SIGRTMIN to its SIGRTMAX (macOS
    // has none).
    #[cfg(target_os = "linux")]
    let known = Signal::from_raw(signal);
    #[cfg(not(target_os = "linux"))]
    let known = Signal::from_named_raw(signal);
    match known {
        Some(signal) => Ok(Some(signal)),
        None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// Send `signal` to one process.
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = to_pid(pid)?;
    // A positive pid targets exactly one process.
    match to_signal(signal)? {
        Some(signal) => rustix::process::kill_process(pid, signal)?,
        None => rustix::process::test_kill_process(pid)?,
    }
    Ok(())
}

/// Send `signal` to every process of the process group `pgid`.
///
/// Callers only pass the pgid of a group whose leader they spawned: while any member lives the
/// kernel does not hand that number to a new process, so the group cannot be someone else's.
pub fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    // `to_pid` guarantees pgid > 0, so this is never kill(-0) (our own group). Nor is it
    // kill(-1) (everything): rustix's kill_process_group(INIT) is that, so pgid 1 is refused.
    let pgid = to_pid(pgid)?;
    if pgid.is_init() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid process group 1",
        ));
    }
    match to_signal(signal)? {
        Some(signal) => rustix::process::kill_process_group(pgid, signal)?,
        None => rustix::process::test_kill_process_group(pgid)?,
    }
    Ok(())
}

/// Whether any process (zombies included) is left in the process group `pgid`: one system
/// call.
pub fn group_alive(pgid: u32) -> bool {
    match kill_group(pgid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Whether a process of the group `pgid` has not exited: a scan of /proc (blocking; milliseconds
/// with hundreds of processes), for when [`group_alive`] says the group still exists.
///
/// Zombies do not count: a member whose parent died is re-parented to init (or a subreaper),
/// and until that one reaps it, the group still exists for kill(2) though nothing of it runs or
/// holds a resource. Some inits reap late (or never, in a container without one), and a stop
/// must not wait on them.
pub fn group_has_live_members(pgid: u32) -> bool {
    crate::procfs::scan_processes().map_or(true, |processes| {
        processes
            .iter()
            .any(|p| p.sample.pgrp == pgid && !p.sample.zombie)
    })
}

/// Whether a process with this pid exists (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    match send_signal(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Make the child of `command` start a new session (no controlling terminal, own process
/// group), as a daemon must.
pub fn detach_into_new_session(command: &mut std::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls setsid(2), which is
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal_number("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("10"), Some(10));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    }

    #[test]
    fn groups_are_signalled_and_seen_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = child.id();
        assert!(group_alive(pgid));
        kill_group(pgid, SIGKILL).expect("kill group");
        child.wait().expect("reap");
        assert!(!group_alive(pgid));
    }

    #[test]
    fn real_time_signals_are_sent_and_numbers_out_of_range_refused() {
        use std::os::unix::process::ExitStatusExt;
        let rt = libc::SIGRTMIN() + 1;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        // Its default action ends the process.
        send_signal(child.id(), rt).expect("send a real-time signal");
        assert_eq!(child.wait().expect("reap").signal(), Some(rt));
        assert!(to_signal(libc::SIGRTMAX()).is_ok());
        assert!(to_signal(65).is_err());
        assert!(to_signal(-1).is_err());
        // Reserved by the C library (glibc's are 32 and 33).
        assert!(to_signal(libc::SIGRTMIN() - 1).is_err());
    }

    #[test]
    fn a_zero_pid_is_refused_not_sent_to_our_group() {
        assert!(kill_group(0, 0).is_err());
        assert!(send_signal(0, 0).is_err());
    }
}
