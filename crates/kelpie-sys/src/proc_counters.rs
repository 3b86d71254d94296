//! How often a process was held up by the kernel: its page faults (`/proc/<pid>/stat`) and
//! context switches (`/proc/<pid>/status`), the figures `getrusage` gives a process about
//! itself, read here for any process of any language at no cost to it.

use crate::ProcessSample;

/// One reading of a process's counters, each since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessCounters {
    /// Page faults served without a disk read (field 10 of stat).
    pub minor_faults: u64,
    /// Page faults that had to read from disk (field 12 of stat).
    pub major_faults: u64,
    /// Times it gave the CPU up itself, to wait (`voluntary_ctxt_switches`).
    pub voluntary_switches: u64,
    /// Times the kernel took the CPU from it (`nonvoluntary_ctxt_switches`).
    pub involuntary_switches: u64,
}

/// Read `pid`'s counters, `buffer` reused across calls; `None` when the process is gone. Its
/// faults come from `stat`, its `/proc/<pid>/stat` read a moment ago (the monitor has read it
/// for its memory and CPU), or are read here when that is `None`. Blocking (one or two small
/// /proc reads, about 17 µs both): call it off the async workers.
pub fn read_counters(
    pid: u32,
    stat: Option<&ProcessSample>,
    buffer: &mut String,
) -> Option<ProcessCounters> {
    let read_here;
    let stat = match stat {
        Some(stat) => stat,
        None => {
            read_here = crate::sample_process(pid)?;
            &read_here
        }
    };
    crate::read_small_file(&format!("/proc/{pid}/status"), buffer).ok()?;
    let (voluntary_switches, involuntary_switches) = parse_switches(buffer)?;
    Some(ProcessCounters {
        minor_faults: stat.minor_faults,
        major_faults: stat.major_faults,
        voluntary_switches,
        involuntary_switches,
    })
}

/// Voluntary and involuntary context switches from a status file: those of the main thread
/// (the kernel writes the thread group leader's there), which for Node is the event loop.
fn parse_switches(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
    };
    Some((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_read_from_status() {
        let status = "Name:\tsh\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t42\n\
                      nonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_switches(status), Some((42, 7)));
        assert_eq!(parse_switches("Name:\tsh\n"), None);
    }

    #[test]
    fn a_working_process_counts_up_and_a_gone_one_reads_none() {
        // A shell that waits for a child again and again: each wait gives the CPU up.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 0.01; done"])
            .spawn()
            .expect("spawn sh");
        let mut buffer = String::new();
        let first = read_counters(child.id(), None, &mut buffer).expect("read it");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut later = first;
        while later.voluntary_switches <= first.voluntary_switches
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            // As the monitor reads it: its stat read already, for the faults.
            let stat = crate::sample_process(child.id()).expect("its stat");
            later = read_counters(child.id(), Some(&stat), &mut buffer).expect("read it again");
            assert_eq!(
                (later.minor_faults, later.major_faults),
                (stat.minor_faults, stat.major_faults)
            );
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            later.voluntary_switches > first.voluntary_switches,
            "{first:?} {later:?}"
        );
        assert!(later.minor_faults >= first.minor_faults && later.minor_faults > 0);
        assert_eq!(
            read_counters(child.id(), None, &mut buffer),
            None,
            "gone once reaped"
        );
    }
}
