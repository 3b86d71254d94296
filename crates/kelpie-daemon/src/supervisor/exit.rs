//! The daemon's end: once asked to exit (a stop signal, `kill`, the runtime's apps all ended) it
//! stops taking on work, and the loop ends when the last step is done (the apps stopped, the
//! last answer written).

use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;

/// Whether the daemon is exiting, and what its loop waits for to end.
#[derive(Default)]
pub(super) struct Exit {
    exiting: bool,
    /// Fires when the loop may end.
    now: Option<oneshot::Receiver<()>>,
}

impl Exit {
    /// Start exiting; false when it had started already.
    pub(super) fn begin(&mut self) -> bool {
        !std::mem::replace(&mut self.exiting, true)
    }

    pub(super) fn exiting(&self) -> bool {
        self.exiting
    }

    /// End the loop once `ready` fires.
    pub(super) fn when(&mut self, ready: oneshot::Receiver<()>) {
        self.now = Some(ready);
    }

    /// End the loop once `written` fires (the last answer is on its socket), or after a short
    /// grace if its client went away.
    pub(super) fn after_written(&mut self, written: oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
            let _ = tx.send(());
        });
        self.now = Some(rx);
    }

    /// `Ok` when the loop may end; never before it was told when.
    pub(super) fn due(
        &mut self,
    ) -> impl Future<Output = Result<(), oneshot::error::RecvError>> + '_ {
        crate::maybe::when(self.now.as_mut(), |rx| rx)
    }
}
