//! What is asked of the log files: a file's status, emptying files (`flush`), reopening them
//! (`reloadLogs`), waiting until everything read is written (and their sizes then).

use super::rotation::RotationPolicy;
use super::sink::{lock, Sink};
use super::writer::WriterMsg;
use super::{LogService, SinkStatus, WRITER_ANSWER};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

impl LogService {
    /// Dropped lines and errors of a file, if it is in use.
    pub fn status(&self, path: &Path) -> Option<SinkStatus> {
        self.registry.get(path).map(|sink| sink.status())
    }

    /// Empty these files and forget these instances' recent lines.
    pub async fn flush(&self, pm_ids: &[u32], paths: &[PathBuf]) {
        lock(&self.shared.hub).clear(pm_ids);
        let sinks: Vec<Arc<Sink>> = {
            let registry = self.registry.lock();
            paths
                .iter()
                .map(|path| {
                    registry
                        .get(path)
                        .and_then(Weak::upgrade)
                        .unwrap_or_else(|| {
                            Arc::new(Sink::new(path.clone(), RotationPolicy::default()))
                        })
                })
                .collect()
        };
        let (tx, rx) = oneshot::channel();
        if self
            .shared
            .writer
            .send(WriterMsg::Truncate(sinks, tx))
            .is_ok()
        {
            let _ = tokio::time::timeout(WRITER_ANSWER, rx).await;
        }
    }

    /// Close and reopen every file (after an external logrotate moved them); how many.
    pub async fn reopen(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.shared.writer.send(WriterMsg::Reopen(tx)).is_err() {
            return 0;
        }
        match tokio::time::timeout(WRITER_ANSWER, rx).await {
            Ok(Ok(count)) => count,
            _ => 0,
        }
    }

    /// Wait until everything read so far is written.
    pub async fn written(&self) {
        // The writer is a thread of its own: an in-process test's paused clock waits for it.
        let _held = crate::clock::hold();
        let (tx, rx) = oneshot::channel();
        if self.shared.writer.send(WriterMsg::Barrier(tx)).is_ok() {
            let _ = tokio::time::timeout(WRITER_ANSWER, rx).await;
        }
    }

    /// Wait until everything read so far is written, then the size of each of `paths` as
    /// written (`None` for a file not in use, or when the writer does not answer in time).
    pub async fn written_sizes(&self, paths: &[PathBuf]) -> Vec<Option<u64>> {
        let sinks: Vec<Option<Arc<Sink>>> = {
            let registry = self.registry.lock();
            paths
                .iter()
                .map(|p| registry.get(p).and_then(Weak::upgrade))
                .collect()
        };
        let known: Vec<Arc<Sink>> = sinks.iter().flatten().cloned().collect();
        let (tx, rx) = oneshot::channel();
        let unknown = vec![None; paths.len()];
        if self
            .shared
            .writer
            .send(WriterMsg::Sizes(known, tx))
            .is_err()
        {
            return unknown;
        }
        let Ok(Ok(sizes)) = tokio::time::timeout(WRITER_ANSWER, rx).await else {
            return unknown;
        };
        let mut sizes = sizes.into_iter();
        sinks
            .iter()
            .map(|sink| sink.as_ref().and_then(|_| sizes.next()))
            .collect()
    }
}
