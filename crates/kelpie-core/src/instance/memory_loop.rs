//! A memory limit below what the app needs to start (`--max-memory-restart 1K`): every process
//! is over it right after its start and is restarted at once, for ever, with nothing saying why.
//! A restart for memory within `min_uptime` of the start counts as an unstable run, like a
//! crash: the crash loop's backoff applies, `max_restarts` of them in a row end in `errored`,
//! and the reason says the limit is below the app's start-up memory, with both figures.

use super::{AfterStop, Cause, InstanceState, Now, Why};
use crate::policy::crash_loop_delay;
use crate::spec::AppSpec;

/// How soon after its start a process over its memory limit counts as over it "from its start"
/// (at least `min_uptime`): the daemon reads memory once a second, so such a process is caught
/// within about a second of its start; 2.5 s leaves room for a busy machine.
pub(super) const AT_START_MS: u64 = 2_500;

impl InstanceState {
    /// `why` for an automatic restart, told that it is part of a memory crash loop when it is
    /// one (and the stop's outcome set: a delayed start, or giving up).
    pub(super) fn memory_loop(&mut self, spec: &AppSpec, mut why: Why, now: Now) -> Why {
        if why.cause != Cause::Memory {
            return why;
        }
        let uptime_ms = now.mono_ms.saturating_sub(self.started_mono_ms);
        if uptime_ms >= spec.min_uptime_ms.max(AT_START_MS) {
            // An ordinary restart for memory: the counters are kept, as for any automatic one.
            return why;
        }
        self.unstable_restarts += 1;
        why.detail.push_str(&format!(
            "; max_memory_restart is below the app's start-up memory: over it {} ms after its start ({} time(s) in a row)",
            uptime_ms, self.unstable_restarts
        ));
        if self.unstable_restarts >= spec.max_restarts {
            why.detail.push_str(&format!(
                " (max_restarts is {}: not restarted; raise the limit)",
                spec.max_restarts
            ));
            self.unstable_restarts = 0;
            self.after_stop = AfterStop::GiveUp;
        } else {
            let delay = crash_loop_delay(self.unstable_restarts);
            if delay > 0 {
                self.after_stop = AfterStop::StartAfter(delay);
            }
        }
        why
    }
}
