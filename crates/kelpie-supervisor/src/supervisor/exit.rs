//! The daemon's end: once asked to exit (a stop signal, `kill`, the runtime's apps all ended) it
//! stops taking on work, and the loop ends when the last step is done (the apps stopped, the
//! last answer written).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::oneshot;

/// Whether the daemon is exiting, and what its loop waits for to end.
#[derive(Default)]
pub(super) struct Exit {
    exiting: bool,
    /// Ready when the loop may end.
    now: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl Exit {
    /// Start exiting; false when it had started already.
    pub(super) fn begin(&mut self) -> bool {
        !std::mem::replace(&mut self.exiting, true)
    }

    pub(super) fn exiting(&self) -> bool {
        self.exiting
    }

    /// End the loop now (at its next turn).
    pub(super) fn now(&mut self) {
        self.now = Some(Box::pin(std::future::ready(())));
    }

    /// End the loop once `written` fires (the last answer is on its socket), or after a short
    /// grace if its client went away.
    pub(super) fn after_written(&mut self, written: oneshot::Receiver<()>) {
        self.now = Some(Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
        }));
    }

    /// Ready when the loop may end; never before it was told when.
    pub(super) fn due(&mut self) -> impl Future<Output = ()> + '_ {
        crate::maybe::when(self.now.as_mut(), |end| end)
    }
}
