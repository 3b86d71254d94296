//! The daemon stopping: every app stopped, the list kept on disk as it is, then the exit.

use super::{Back, Supervisor};
use crate::supervisor_channel::{Finish, Reply};
use tokio::sync::oneshot;

impl Supervisor {
    /// Stop every app and exit, keeping the state on disk as it is now, so the next daemon
    /// starts the same apps. Used for SIGTERM/SIGINT and `kelpie update`.
    pub(super) fn begin_shutdown(&mut self, why: &str, reply: Option<oneshot::Sender<Reply>>) {
        if !self.exit.begin() {
            return;
        }
        if self.foreground.is_some() {
            crate::daemon_log!("{why}: stopping every app");
        } else {
            crate::daemon_log!("{why}: stopping every app, keeping the list");
        }
        self.persistence.write(&self.apps, None);
        self.persistence.keep_what_is_on_disk();
        let waiters = self.apps.shut_down_all();
        self.pending
            .after(waiters, move || Back::AppsStopped(reply));
    }

    /// Every app stopped for the daemon's end: answer the client that asked, whose answer
    /// written ends the loop, or end it now.
    pub(super) fn apps_stopped(&mut self, reply: Option<oneshot::Sender<Reply>>) {
        match reply {
            Some(reply) => self.finish(
                Finish::Exit(
                    "daemon stopped; the apps will start again with the next daemon".into(),
                ),
                reply,
            ),
            None => self.exit.now(),
        }
    }
}
