//! What the daemon reads for crash forensics (the rules are in `kelpie_core::forensics`): the
//! OOM-kill counters of a process's cgroup and of the machine. Every read here is of a small
//! in-kernel file, done off the async thread by the callers.
//!
//! Without a cgroup that has the memory controller, an OOM kill cannot be told apart from any
//! other SIGKILL (the kernel log, which names the victim, is not readable by everyone and not
//! meant to be parsed). What can be seen is the machine's `oom_kill` counter: the monitor thread
//! samples it about once a second, and an exit by SIGKILL that Kelpie did not send while the
//! counter rose since the older of the last two samples (1 to 2 s before) counts as a likely
//! OOM kill.

use kelpie_core::forensics::OomEvidence;
use std::sync::Mutex;

/// The last two samples of the machine's OOM-kill counter, older first.
static SAMPLES: Mutex<[Option<u64>; 2]> = Mutex::new([None, None]);

/// Take a sample of the machine's OOM-kill counter (the monitor thread, once a second).
/// Blocking (a /proc read).
pub(crate) fn sample_system_oom_kills() {
    let now = kelpie_sys::cgroup::system_oom_kills();
    if let Ok(mut samples) = SAMPLES.lock() {
        *samples = [samples[1], now];
    }
}

/// Whether the machine's counter stands above `baseline` (the older sample, else the newer).
fn rose(samples: [Option<u64>; 2], now: Option<u64>) -> Option<bool> {
    let baseline = samples[0].or(samples[1])?;
    Some(now? > baseline)
}

/// What can be seen right after a process ended on its own: its cgroup's OOM kills (when the
/// cgroup has the memory controller) and whether the machine's counter just rose. Blocking.
pub(crate) fn oom_evidence(cgroup: Option<&kelpie_sys::cgroup::Cgroup>) -> OomEvidence {
    let cgroup_kills = cgroup.and_then(kelpie_sys::cgroup::Cgroup::oom_kills);
    let system_rose = match cgroup_kills {
        Some(_) => None,
        None => {
            let samples = SAMPLES.lock().map(|s| *s).unwrap_or([None, None]);
            rose(samples, kelpie_sys::cgroup::system_oom_kills())
        }
    };
    OomEvidence {
        cgroup_kills,
        system_rose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_rose_since_the_older_sample() {
        assert_eq!(rose([Some(3), Some(4)], Some(4)), Some(true));
        assert_eq!(rose([Some(4), Some(4)], Some(4)), Some(false));
        assert_eq!(rose([None, Some(4)], Some(5)), Some(true));
        assert_eq!(rose([None, None], Some(5)), None, "no sample yet");
        assert_eq!(rose([Some(4), Some(4)], None), None, "unreadable now");
    }

    #[test]
    fn evidence_without_a_cgroup_comes_from_the_machine() {
        sample_system_oom_kills();
        let seen = oom_evidence(None);
        assert_eq!(seen.cgroup_kills, None);
        assert!(seen.system_rose.is_some(), "/proc/vmstat has oom_kill here");
    }
}
