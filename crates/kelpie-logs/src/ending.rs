//! The readers' end: at daemon exit, once the apps have stopped (`finish`), or for
//! `kelpie update`, which takes their pipes still open (`take_pipes`, each a [`HandedPipe`]).

use super::{LogService, WRITER_ANSWER};
use kelpie_proto::LogStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A pipe a reader gave back, still open, for the daemon that replaces this one.
pub struct HandedPipe {
    /// The instance whose process writes it.
    pub pm_id: u32,
    /// Which of its streams it is.
    pub stream: LogStream,
    /// The pipe's read end; `None` when it had reached its end (only its backlog is left).
    pub fd: Option<OwnedFd>,
    /// What was read from it while no daemon ran (the keeper's spool): processed first.
    pub backlog: Vec<u8>,
}

impl LogService {
    /// At daemon exit, once the apps have stopped: let the readers reach the end of their pipes
    /// (what the apps printed while stopping) and the writer write it, within `limit`.
    pub async fn finish(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.readers.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.written()).await;
    }

    /// For `kelpie update`: stop every reader, write what they had read, and take their pipes
    /// (still open, with what the apps print meanwhile waiting in them) for the next daemon.
    /// `Err` with the pipes given back when some reader did not stop within `limit`: the update
    /// must not go on (the exec would close that pipe under its app).
    pub async fn take_pipes(&self, limit: Duration) -> Result<Vec<HandedPipe>, Vec<HandedPipe>> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.shared.hand_back.send_replace(Some(tx));
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.readers.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.shared.hand_back.send_replace(None);
        let mut pipes = Vec::new();
        while let Ok(pipe) = rx.try_recv() {
            pipes.push(pipe);
        }
        if self.shared.readers.load(Ordering::Acquire) > 0 {
            return Err(pipes);
        }
        let _ = tokio::time::timeout_at(deadline + WRITER_ANSWER, self.written()).await;
        Ok(pipes)
    }
}
