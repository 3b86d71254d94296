//! Those waiting on the instance: commands answered once it has settled, and the shutdown
//! (delete, daemon exit) answered once the task ends.

use tokio::sync::oneshot;

/// Who waits for what.
#[derive(Default)]
pub(super) struct Waiters {
    /// Answered once the instance has settled (online, stopped or errored).
    settle: Vec<oneshot::Sender<()>>,
    /// Answered once the task ends; its presence means the task is shutting down.
    shutdown: Option<oneshot::Sender<()>>,
}

impl Waiters {
    /// Answer `done` once the instance has settled.
    pub(super) fn on_settled(&mut self, done: oneshot::Sender<()>) {
        self.settle.push(done);
    }

    /// The instance has settled: answer everyone waiting for that.
    pub(super) fn settled(&mut self) {
        for waiter in self.settle.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// The task is to end once its process is gone; `done` is answered then.
    pub(super) fn shut_down(&mut self, done: oneshot::Sender<()>) {
        self.shutdown = Some(done);
    }

    /// Whether the task is shutting down.
    pub(super) fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The task ends: answer the shutdown.
    pub(super) fn ended(&mut self) {
        if let Some(waiter) = self.shutdown.take() {
            let _ = waiter.send(());
        }
    }
}
