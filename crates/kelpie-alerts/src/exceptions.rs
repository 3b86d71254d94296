//! Exceptions into the inbox: those a process reported (a Node app's `process:exception`),
//! and those a crashed process printed on stderr, read once every detail of its exit is in
//! (its stderr tail; a Node app's own report, which then counts instead); with a message for a
//! new group and for bad behaviour.

use super::inbox::{Hit, Inbox, Seen};
use super::payload::Notice;
use super::traces;
use kelpie_core::{AppException, Cause, ExitRecord};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

// How long a crashed process's tail waits for the rest of its details.
use super::incidents::DETAIL_WAIT;

/// Pids whose process reported its exceptions itself, remembered so that its stderr is not
/// read for them again.
const REPORTED_PIDS: usize = 1024;

/// A crashed process's stderr tail, read for an exception once every detail is in.
struct Tail {
    due_ms: u64,
    app: String,
    record: Arc<ExitRecord>,
}

/// The tails waiting to be read, the pids that report their own exceptions, and the inbox.
#[derive(Default)]
pub(super) struct Exceptions {
    tails: BTreeMap<u32, Tail>,
    reported: VecDeque<u32>,
    pub(super) inbox: Arc<Mutex<Inbox>>,
}

impl Exceptions {
    pub(super) fn new(inbox: Arc<Mutex<Inbox>>) -> Exceptions {
        Exceptions {
            inbox,
            ..Exceptions::default()
        }
    }

    /// An exception process `pid` of `app` reported itself.
    pub(super) fn reported(
        &mut self,
        app: &str,
        pm_id: u32,
        pid: Option<u32>,
        exception: &AppException,
        now_ms: u64,
    ) -> Vec<Notice> {
        if let Some(pid) = pid {
            if self.reported.len() >= REPORTED_PIDS {
                self.reported.pop_front();
            }
            self.reported.push_back(pid);
        }
        let trace = traces::from_node(exception);
        self.record_exception(app, pm_id, &trace, &[], now_ms)
    }

    /// The tails whose wait is over, read.
    pub(super) fn due(&mut self, now_ms: u64) -> Vec<Notice> {
        let due: Vec<u32> = self
            .tails
            .iter()
            .filter(|(_, t)| t.due_ms <= now_ms)
            .map(|(pm_id, _)| *pm_id)
            .collect();
        let mut said = Vec::new();
        for pm_id in due {
            if let Some(tail) = self.tails.remove(&pm_id) {
                said.extend(self.read_tail(pm_id, &tail, now_ms));
            }
        }
        said
    }

    /// Whether a tail waits to be read.
    pub(super) fn waiting(&self) -> bool {
        !self.tails.is_empty()
    }

    /// A crashed process's record (or more of it): its stderr tail is read for an exception
    /// once its details are in ([`DETAIL_WAIT`]); a tail of an earlier process not read yet is
    /// read now.
    pub(super) fn exit_seen(
        &mut self,
        app: &str,
        pm_id: u32,
        record: &Arc<ExitRecord>,
        now_ms: u64,
    ) -> Vec<Notice> {
        if record.cause != Cause::Crash {
            return Vec::new();
        }
        let due_ms = match self.tails.get(&pm_id) {
            Some(tail) if tail.record.pid == record.pid => tail.due_ms,
            _ => now_ms + DETAIL_WAIT.as_millis() as u64,
        };
        let tail = Tail {
            due_ms,
            app: app.to_string(),
            record: record.clone(),
        };
        // An earlier process's tail, not read yet, is read now.
        let earlier = self
            .tails
            .insert(pm_id, tail)
            .filter(|t| t.record.pid != record.pid);
        match earlier {
            Some(earlier) => self.read_tail(pm_id, &earlier, now_ms),
            None => Vec::new(),
        }
    }

    /// The uncaught exception a crashed process printed, into the inbox; unless it reported
    /// it itself (a Node app: counted from its message).
    fn read_tail(&mut self, pm_id: u32, tail: &Tail, now_ms: u64) -> Vec<Notice> {
        let record = &tail.record;
        let reported = record.exception.is_some()
            || record.pid.is_some_and(|pid| self.reported.contains(&pid));
        if reported {
            return Vec::new();
        }
        match traces::from_stderr(&record.stderr_tail) {
            Some((trace, at)) => {
                let before = &record.stderr_tail[..at];
                self.record_exception(&tail.app, pm_id, &trace, before, now_ms)
            }
            None => Vec::new(),
        }
    }

    /// An exception into the inbox: a message for a new group, and for bad behaviour.
    fn record_exception(
        &mut self,
        app: &str,
        pm_id: u32,
        trace: &traces::Trace,
        before: &[String],
        now_ms: u64,
    ) -> Vec<Notice> {
        let hit = Hit {
            app,
            pm_id,
            at_ms: now_ms,
        };
        let seen = self
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&hit, trace, before);
        let summary = format!("{}: {}", trace.kind, trace.message);
        let mut notice = match seen {
            Seen::Again => return Vec::new(),
            Seen::New => Notice::new(
                "exception",
                Some(app),
                Some(pm_id),
                format!("{app} (id {pm_id}) threw a new exception: {summary}"),
            ),
            Seen::BadBehaviour(count) => Notice::new(
                "bad_behaviour",
                Some(app),
                Some(pm_id),
                format!("{app} (id {pm_id}) threw the same exception {count} times within a minute: {summary}"),
            ),
        };
        notice.text = format!(
            "Group {} (`kelpie errors {app}`):\n{}",
            trace.fingerprint(),
            trace.stack
        );
        vec![notice]
    }
}

/// Write the inbox if it changed, off the async threads.
pub(super) async fn save(inbox: &Mutex<Inbox>, file: &std::path::Path) {
    let bytes = inbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .changes_to_save();
    if let Some(bytes) = bytes {
        let file = file.to_path_buf();
        let _ = crate::tasks::blocking(move || kelpie_sys::atomic_write_mode(&file, &bytes, 0o600))
            .await;
    }
}
