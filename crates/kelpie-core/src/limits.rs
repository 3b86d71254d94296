//! When an app's resource use calls for a restart: `max_memory_restart` at once, `max_cpu` once
//! it has lasted `max_cpu_window_ms`. The daemon samples each instance's process tree about once
//! a second and feeds the readings here.

use crate::instance::{Cause, Why};
use crate::spec::AppSpec;

/// One reading of an instance's whole process tree.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Resident memory of every process of the tree (bytes).
    pub memory_bytes: u64,
    /// CPU used since the previous reading, in percent of one core (150 = one and a half).
    pub cpu_percent: f64,
    /// How many processes the tree has.
    pub processes: u32,
}

/// What one instance's limits have seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitWatch {
    /// Since when (monotonic ms) CPU has stayed over `max_cpu`.
    cpu_over_since_ms: Option<u64>,
    /// The current process was read under its memory limit at least once: over it now, it
    /// grew (a leak), rather than being over it from its start.
    memory_seen_under: bool,
}

impl LimitWatch {
    /// Take a reading of the current process; `Some` when the instance must be restarted, and
    /// why. The CPU window starts over after a restart is asked for, and when use drops below
    /// the limit.
    pub fn observe(&mut self, spec: &AppSpec, usage: &Usage, now_mono_ms: u64) -> Option<Why> {
        if let Some(limit) = spec.max_memory_restart {
            if usage.memory_bytes > limit {
                self.cpu_over_since_ms = None;
                return Some(Why {
                    cause: Cause::Memory,
                    detail: format!(
                        "memory {} ({}) over max_memory_restart {}",
                        megabytes(usage.memory_bytes),
                        processes(usage.processes),
                        megabytes(limit)
                    ),
                    from_start: !self.memory_seen_under,
                });
            }
            self.memory_seen_under = true;
        }
        let Some(max_cpu) = spec.max_cpu else {
            self.cpu_over_since_ms = None;
            return None;
        };
        if usage.cpu_percent <= f64::from(max_cpu) {
            self.cpu_over_since_ms = None;
            return None;
        }
        let since = *self.cpu_over_since_ms.get_or_insert(now_mono_ms);
        let lasted = now_mono_ms.saturating_sub(since);
        if lasted < spec.max_cpu_window_ms {
            return None;
        }
        self.cpu_over_since_ms = None;
        Some(Why {
            from_start: false,
            cause: Cause::Cpu,
            detail: format!(
                "CPU {:.0}% ({}) over max_cpu {max_cpu}% for {:.1} s",
                usage.cpu_percent,
                processes(usage.processes),
                lasted as f64 / 1000.0
            ),
        })
    }

    /// Forget what was seen (the process changed, or stopped).
    pub fn reset(&mut self) {
        self.cpu_over_since_ms = None;
        self.memory_seen_under = false;
    }
}

/// A size as people read it: MB from 1 MB up (`312.0 MB`), else KB or bytes (a limit of
/// 500K is not `0.0 MB`).
fn megabytes(bytes: u64) -> String {
    const KB: u64 = 1024;
    if bytes >= KB * KB {
        format!("{:.1} MB", bytes as f64 / (KB * KB) as f64)
    } else if bytes >= KB {
        format!("{:.1} KB", bytes as f64 / KB as f64)
    } else {
        format!("{bytes} B")
    }
}

fn processes(count: u32) -> String {
    if count == 1 {
        "1 process".into()
    } else {
        format!("{count} processes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(memory_mb: u64, cpu_percent: f64) -> Usage {
        Usage {
            memory_bytes: memory_mb << 20,
            cpu_percent,
            processes: 3,
        }
    }

    #[test]
    fn memory_over_the_limit_restarts_at_once_and_says_how_much() {
        let spec = AppSpec {
            max_memory_restart: Some(200 << 20),
            ..AppSpec::default()
        };
        let mut watch = LimitWatch::default();
        assert_eq!(watch.observe(&spec, &usage(200, 0.0), 0), None);
        let why = watch.observe(&spec, &usage(312, 0.0), 1000).expect("over");
        assert_eq!(why.cause, Cause::Memory);
        assert_eq!(
            why.detail,
            "memory 312.0 MB (3 processes) over max_memory_restart 200.0 MB"
        );
    }

    #[test]
    fn sizes_under_a_megabyte_are_not_zero() {
        assert_eq!(megabytes(512 * 1024), "512.0 KB");
        assert_eq!(megabytes(300), "300 B");
        assert_eq!(megabytes(3 << 20), "3.0 MB");
    }

    #[test]
    fn cpu_must_stay_over_the_limit_for_the_whole_window() {
        let spec = AppSpec {
            max_cpu: Some(80),
            max_cpu_window_ms: 3000,
            ..AppSpec::default()
        };
        let mut watch = LimitWatch::default();
        assert_eq!(watch.observe(&spec, &usage(10, 95.0), 0), None);
        assert_eq!(watch.observe(&spec, &usage(10, 95.0), 2000), None);
        // A dip below the limit starts the window again.
        assert_eq!(watch.observe(&spec, &usage(10, 50.0), 2500), None);
        assert_eq!(watch.observe(&spec, &usage(10, 99.0), 3000), None);
        assert_eq!(watch.observe(&spec, &usage(10, 99.0), 5000), None);
        let why = watch.observe(&spec, &usage(10, 150.0), 6000).expect("over");
        assert_eq!(why.cause, Cause::Cpu);
        assert_eq!(
            why.detail,
            "CPU 150% (3 processes) over max_cpu 80% for 3.0 s"
        );
        assert_eq!(
            watch.observe(&spec, &usage(10, 150.0), 7000),
            None,
            "the window starts over after a restart is asked for"
        );
    }

    #[test]
    fn no_limits_never_restart() {
        let mut watch = LimitWatch::default();
        assert_eq!(
            watch.observe(&AppSpec::default(), &usage(1 << 20, 800.0), 0),
            None
        );
    }
}
