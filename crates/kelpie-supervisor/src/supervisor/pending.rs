//! What the supervisor's handlers wait for: its own tasks, and what each brings back to its
//! loop.
//!
//! A handler never waits: when a request's answer depends on something slow (instances
//! settling, the state reaching the disk, a file read on the blocking pool), the handler starts
//! a task here that waits for it, and the task's result comes back to the loop as a [`Back`],
//! woken like any other input. This is the one place that says what waits for what:
//!
//! ```text
//! request ──handler──> instances told ──task: waiters fire──> Back::Settled
//!     Back::Settled ──state written──task: the write's ack──> Back::Answer ──> reply
//! ```
//!
//! Every task is in one `JoinSet` owned by the supervisor: none outlives it, a panic in one is
//! logged instead of lost, and dropping the supervisor aborts what is left.

use crate::dump::DumpFile;
use crate::supervisor_channel::{Finish, Reply};
use kelpie_proto::Response;
use std::future::Future;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What a task brings back to the supervisor's loop.
pub(super) enum Back {
    /// The instances a handler acted on have settled: write the state, then answer.
    Settled {
        finish: Finish,
        reply: oneshot::Sender<Reply>,
    },
    /// Answer now.
    Answer {
        finish: Finish,
        reply: oneshot::Sender<Reply>,
    },
    /// The dump was read for `resurrect` (or why not).
    DumpLoaded {
        result: Result<(DumpFile, Option<String>), crate::dump::DumpError>,
        reply: oneshot::Sender<Reply>,
    },
    /// `kelpie update`'s program was found and checked (or why not).
    UpdateChecked(Result<PathBuf, crate::update::ProgramError>),
    /// `kelpie runtime`'s apps were started (or could not be): the start's answer.
    ForegroundStarted(Response),
    /// `kelpie.toml` was read again for `reloadLogs` (or why not); then the files reopen.
    SettingsRead {
        settings: Result<kelpie_config::DaemonSettings, crate::config_load::ConfigLoadError>,
        reply: Option<oneshot::Sender<Reply>>,
    },
    /// Every app stopped for the daemon's end; answer `reply` if a client asked for it.
    AppsStopped(Option<oneshot::Sender<Reply>>),
    /// The task's work is done and nothing is left for the loop.
    Nothing,
}

/// The supervisor's running tasks.
#[derive(Default)]
pub(super) struct PendingWork {
    running: JoinSet<Back>,
}

impl PendingWork {
    /// Run `work`; its result comes back through [`PendingWork::next`].
    pub(super) fn spawn(&mut self, work: impl Future<Output = Back> + Send + 'static) {
        self.running.spawn(work);
    }

    /// Bring `back()` once every one of `waiters` has fired, whatever each says.
    pub(super) fn after<W>(&mut self, waiters: Vec<W>, back: impl FnOnce() -> Back + Send + 'static)
    where
        W: Future + Send + 'static,
    {
        self.spawn(async move {
            for waiter in waiters {
                let _ = waiter.await;
            }
            back()
        });
    }

    /// Finish `finish` once every waiter has fired (the instances have settled) and then the
    /// settled state is on disk (`Back::Settled`): when a command returns, a `kill -9` cannot
    /// undo it.
    pub(super) fn finish_after<W: Future + Send + 'static>(
        &mut self,
        waiters: Vec<W>,
        finish: Finish,
        reply: oneshot::Sender<Reply>,
    ) {
        self.after(waiters, move || Back::Settled { finish, reply });
    }

    /// Abort the tasks left, and wait until they are gone.
    pub(super) async fn end(&mut self) {
        self.running.shutdown().await;
    }

    /// The next task's result; never ready while no task runs. Cancel-safe (a `select!` arm).
    pub(super) async fn next(&mut self) -> Back {
        loop {
            match self.running.join_next().await {
                Some(Ok(back)) => return back,
                // A task that panicked: its waiter (a client, an update) sees its channel
                // closed; the daemon goes on.
                Some(Err(e)) => {
                    if e.is_panic() {
                        crate::daemon_log!("a supervisor task failed: {e}");
                    }
                }
                None => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn results_come_back_as_tasks_end_and_a_panic_is_not_one() {
        let mut tasks = PendingWork::default();
        let (slow_tx, slow_rx) = oneshot::channel::<()>();
        tasks.after(vec![slow_rx], || {
            Back::UpdateChecked(Ok(PathBuf::from("slow")))
        });
        tasks.spawn(async { panic!("a bug in a task") });
        tasks.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Back::UpdateChecked(Ok(PathBuf::from("fast")))
        });
        let first = tasks.next().await;
        assert!(matches!(first, Back::UpdateChecked(Ok(p)) if p == Path::new("fast")));
        slow_tx.send(()).expect("the task waits");
        let second = tasks.next().await;
        assert!(matches!(second, Back::UpdateChecked(Ok(p)) if p == Path::new("slow")));
        // Nothing runs: never ready.
        let idle = tokio::time::timeout(Duration::from_secs(60), tasks.next()).await;
        assert!(idle.is_err());
    }

    #[tokio::test]
    async fn the_tasks_end_with_their_owner() {
        let mut tasks = PendingWork::default();
        let (held_tx, held_rx) = oneshot::channel::<()>();
        let (never_tx, never_rx) = oneshot::channel::<()>();
        tasks.spawn(async move {
            let _held = held_tx;
            let _ = never_rx.await;
            Back::Nothing
        });
        tokio::task::yield_now().await;
        drop(tasks);
        // The task was aborted: what it held is dropped, though what it waited for never came.
        assert!(held_rx.await.is_err());
        drop(never_tx);
    }
}
