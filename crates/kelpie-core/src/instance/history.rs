//! The exits an instance remembers ([`ExitRecord`], the last [`EXIT_HISTORY`]), and what is
//! added to them once known: the OOM killer's part, the last lines written to stderr.

use super::{Cause, InstanceState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How many exits an instance remembers for `describe`.
pub const EXIT_HISTORY: usize = 10;

/// One exit of the main process, kept for `describe` and crash forensics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ExitRecord {
    /// When it exited (ms since the Unix epoch).
    pub at_ms: u64,
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Signal name, when a signal ended it.
    pub signal: Option<String>,
    /// How long that run lasted (ms).
    pub uptime_ms: u64,
    /// What Kelpie did about it: `restart`, `waiting restart`, `stopped`, `errored`, `reload`.
    pub action: String,
    /// Why it ended.
    pub cause: Cause,
    /// Why, in a few words (`stopped by user`, `crashed`, `exit code in stop_exit_codes`...).
    pub reason: String,
    /// The process that ended, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether the kernel's OOM killer ended it, and how Kelpie knows (see
    /// [`crate::forensics::OomKill`]); `None`: not that Kelpie could tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<crate::forensics::OomKill>,
    /// The last lines it wrote to stderr (bounded: [`crate::forensics::stderr_tail`]), filled in
    /// shortly after the exit, once its stderr pipe was read to the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    /// The uncaught exception (or unhandled rejection) the process reported just before it
    /// ended (a Node app), with its stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<crate::AppException>,
}

impl InstanceState {
    /// Add what was seen of the OOM killer to the record of process `pid`'s exit; false when
    /// no record of it is kept. Only an exit on its own can be the OOM killer's.
    pub fn record_oom(&mut self, pid: u32, seen: crate::forensics::OomEvidence) -> bool {
        let Some(record) = self.exits.iter_mut().rev().find(|e| e.pid == Some(pid)) else {
            return false;
        };
        let record = Arc::make_mut(record);
        let on_its_own = matches!(record.cause, Cause::Crash | Cause::Exit);
        record.oom = crate::forensics::oom_verdict(on_its_own, record.signal.as_deref(), seen);
        if let Some(oom) = record.oom {
            record.reason = format!("{} ({})", record.reason, oom.describe());
        }
        true
    }

    /// Add the last lines process `pid` wrote to stderr to the record of its exit (bounded by
    /// the caller with [`crate::forensics::stderr_tail`]); false when no record of it is kept.
    pub fn record_stderr_tail(&mut self, pid: u32, lines: Vec<String>) -> bool {
        match self.exits.iter_mut().rev().find(|e| e.pid == Some(pid)) {
            Some(record) => {
                Arc::make_mut(record).stderr_tail = lines;
                true
            }
            None => false,
        }
    }

    /// Add the exception process `pid` reported to the record of its exit; false when no
    /// record of it is kept.
    pub fn record_exception(&mut self, pid: u32, exception: crate::AppException) -> bool {
        match self.exits.iter_mut().rev().find(|e| e.pid == Some(pid)) {
            Some(record) => {
                Arc::make_mut(record).exception = Some(exception);
                true
            }
            None => false,
        }
    }

    pub(super) fn push_exit(&mut self, record: ExitRecord) {
        if self.exits.len() == EXIT_HISTORY {
            self.exits.pop_front();
        }
        self.exits.push_back(Arc::new(record));
    }
}
