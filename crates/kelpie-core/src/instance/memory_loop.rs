//! A memory limit below what the app needs to start (`--max-memory-restart 1K`): every process
//! is over it right after its start and is restarted at once, for ever, with nothing saying why.
//! So a restart for memory is counted as a crash is: an unstable run when the process was over
//! the limit from its start (its first reading) or within `min_uptime`, and then the crash
//! loop's backoff applies, `max_restarts` of them in a row end in `errored` (the same count and
//! the same waits as an app that exits at its start), and the reason says the limit is below
//! the app's start-up memory, with both figures. A process that grew past the limit later (a
//! leak) is restarted at once, as a crash after a long run is.

use super::{AfterStop, Cause, InstanceState, Now, Why};
use crate::spec::AppSpec;

impl InstanceState {
    /// `why` for an automatic restart, told that it is part of a memory crash loop when it is
    /// one (and the stop's outcome set: a delayed start, or giving up).
    pub(super) fn memory_loop(&mut self, spec: &AppSpec, mut why: Why, now: Now) -> Why {
        if why.cause != Cause::Memory {
            return why;
        }
        let uptime_ms = now.mono_ms.saturating_sub(self.started_mono_ms);
        let unstable = why.from_start || uptime_ms < spec.min_uptime_ms;
        // Counted as a crash's run is: in a row, a stable one starting the count again.
        if unstable {
            self.unstable_restarts += 1;
        } else {
            self.unstable_restarts = 0;
        }
        if unstable {
            let when = if why.from_start {
                format!("over it from its start (its first reading, {uptime_ms} ms after it)")
            } else {
                format!(
                    "over it {uptime_ms} ms after its start, within min_uptime ({} ms)",
                    spec.min_uptime_ms
                )
            };
            why.detail.push_str(&format!(
                "; max_memory_restart is below the app's start-up memory: {when}, {} time(s) in a row",
                self.unstable_restarts
            ));
        }
        if self.unstable_restarts >= spec.max_restarts {
            why.detail.push_str(&format!(
                " ({} unstable restarts, max_restarts is {}: not restarted; raise the limit)",
                self.unstable_restarts, spec.max_restarts
            ));
            self.unstable_restarts = 0;
            self.after_stop = AfterStop::GiveUp;
            return why;
        }
        // The same wait as after a crash of the same run.
        let delay = self.restart_delay_ms(spec, uptime_ms);
        if delay > 0 {
            self.after_stop = AfterStop::StartAfter(delay);
        }
        why
    }
}
