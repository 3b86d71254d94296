//! Reading the pipes of an instance's processes on the log thread: a new process's, or one
//! handed over by an earlier daemon (or its keeper), its stdout pipe enlarged within a budget,
//! a second descriptor held by the keeper.

use super::exit_tail::TailWriter;
use super::{reader, HandedPipe, LineWatch, LogService, Route, Shared};
use kelpie_proto::LogStream;
use kelpie_sys::PipeReader;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Capacity asked for an app's stdout pipe: a burst fits while the log thread is busy elsewhere
/// instead of blocking the app's write (the kernel default is 64 KiB). Measured with an app
/// printing 45 MB: it ran in 250 ms with 1 MiB pipes, 350–400 ms with 64 or 256 KiB ones.
const BIG_PIPE: usize = 1024 * 1024;
/// Total capacity of enlarged pipes. The kernel charges pipe capacity to the user and, past
/// `pipe-user-pages-soft` (64 MiB by default), gives *every* new pipe of that user only 8 KiB;
/// staying well under it keeps that from ever happening because of Kelpie.
const BIG_PIPE_BUDGET: usize = 32 * 1024 * 1024;

/// Counts a reader while it runs.
pub(super) struct ReaderGuard(Arc<Shared>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One stream of a process, to be read (see [`LogService::attach`]).
pub struct NewPipe {
    /// The pipe's read end.
    pub fd: PipeReader,
    /// The line a process is ready at (`wait_ready` with a pattern), if it has one.
    pub watch: Option<LineWatch>,
    /// Where its last lines go for the exit's record (stderr).
    pub tail: Option<TailWriter>,
    /// The keeper's copy, when it was given one before the spawn.
    pub kept: Option<crate::keeper::Held>,
}

/// An enlarged pipe's share of the budget, given back when its reader ends.
pub(super) struct BigPipe {
    shared: Arc<Shared>,
    bytes: usize,
}

impl Drop for BigPipe {
    fn drop(&mut self) {
        self.shared
            .big_pipes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl LogService {
    /// Read a new process's stdout and stderr on the log thread until both close: one task for
    /// the two (one allocation, one wake-up of the log thread to start them, not two: a crash
    /// loop starts a process several times a second).
    pub fn attach(&self, route: Arc<Route>, out: NewPipe, err: NewPipe) {
        let out = self.reader(route.clone(), LogStream::Out, out, Vec::new());
        let err = self.reader(route, LogStream::Err, err, Vec::new());
        crate::tasks::spawn_counted_on(&self.runtime, async move {
            tokio::join!(out, err);
        });
    }

    /// Read a pipe handed over by an earlier daemon (or by its keeper), after what was read
    /// from it meanwhile.
    pub fn attach_handed(&self, route: Arc<Route>, pipe: HandedPipe, tail: Option<TailWriter>) {
        let fd = match pipe.fd.map(PipeReader::checked) {
            Some(Ok(fd)) => fd,
            Some(Err(e)) => {
                crate::daemon_log!(
                    "app `{}` (id {}): cannot read its {}: {e}",
                    route.app.name,
                    route.pm_id,
                    pipe.stream.pm2_name()
                );
                return;
            }
            // It had reached its end: only the backlog is left, then an end-of-file.
            None => match kelpie_sys::output_pipe() {
                Ok((ended, _writer)) => ended,
                Err(_) => return,
            },
        };
        let reader = self.reader(
            route,
            pipe.stream,
            NewPipe {
                fd,
                watch: None,
                tail,
                kept: None,
            },
            pipe.backlog,
        );
        crate::tasks::spawn_counted_on(&self.runtime, reader);
    }

    /// The reader of one pipe (after `backlog`, what was read from it already), counted from
    /// now on: the daemon's end waits for it.
    fn reader(
        &self,
        route: Arc<Route>,
        stream: LogStream,
        pipe: NewPipe,
        backlog: Vec<u8>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let NewPipe {
            fd,
            watch,
            tail,
            kept,
        } = pipe;
        let big = (stream == LogStream::Out)
            .then(|| self.enlarge(&fd))
            .flatten();
        // A second descriptor for the keeper, so the pipe outlives this daemon (a new process's
        // pipes are held before it is spawned: `kept`).
        let kept = kept.or_else(|| {
            crate::keeper::hold(
                crate::keeper::Holding::Pipe {
                    pm_id: route.pm_id,
                    stream,
                    file: route.keeper_file(stream),
                },
                &[fd.as_fd()],
            )
        });
        self.shared.readers.fetch_add(1, Ordering::AcqRel);
        let counted = ReaderGuard(self.shared.clone());
        reader::read_pipe(
            reader::Pipe {
                fd,
                stream,
                backlog,
            },
            route,
            self.shared.clone(),
            (counted, big, kept),
            watch,
            tail,
        )
    }

    /// Give a stdout pipe [`BIG_PIPE`] capacity if the budget allows.
    fn enlarge(&self, fd: &PipeReader) -> Option<BigPipe> {
        let reserved = self
            .shared
            .big_pipes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + BIG_PIPE <= BIG_PIPE_BUDGET).then_some(used + BIG_PIPE)
            })
            .is_ok();
        if !reserved {
            return None;
        }
        let share = BigPipe {
            shared: self.shared.clone(),
            bytes: BIG_PIPE,
        };
        // Best effort: a smaller pipe still works, bursts just wait sooner.
        kelpie_sys::set_pipe_capacity(fd.as_fd(), BIG_PIPE)
            .ok()
            .map(|_| share)
    }
}

#[cfg(test)]
mod tests {
    use super::super::RotationPolicy;
    use super::*;

    #[test]
    fn enlarged_pipes_stay_within_the_budget_and_give_it_back() {
        let logs = LogService::start(RotationPolicy::default()).expect("start");
        let pipes: Vec<PipeReader> = (0..BIG_PIPE_BUDGET / BIG_PIPE + 8)
            .map(|_| kelpie_sys::output_pipe().expect("pipe").0)
            .collect();
        let shares: Vec<BigPipe> = pipes.iter().filter_map(|fd| logs.enlarge(fd)).collect();
        assert_eq!(shares.len(), BIG_PIPE_BUDGET / BIG_PIPE);
        assert_eq!(
            logs.shared.big_pipes.load(Ordering::Acquire),
            BIG_PIPE_BUDGET
        );
        drop(shares);
        assert_eq!(logs.shared.big_pipes.load(Ordering::Acquire), 0);
    }
}
