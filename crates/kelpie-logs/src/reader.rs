//! Reading an app's stdout or stderr pipe. Runs on the log thread and never blocks it: it waits
//! (asynchronously) for the pipe, and for the writer when one of its files is behind — then the
//! pipe is not read, so the app's writes wait as they would on a slow terminal, instead of its
//! lines being dropped. Other pipes are read meanwhile.

mod looking;

use super::cursor::PipeCursor;
use super::format::Who;
use super::framer::Framer;
use super::hub::NewLines;
use super::sink::{lock, Room, PROGRESS_CHECK, STALL_CHECKS};
use super::writer::WriterMsg;
use super::{BigPipe, LineWatch, ReaderGuard, Route, Shared};
use kelpie_proto::LogStream;
use looking::Looked;
use std::cell::RefCell;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;

/// Bytes read from a pipe at once (the default pipe capacity).
const READ_SIZE: usize = 64 * 1024;
/// A line without its newline is written after the app has been quiet this long (a prompt).
const PARTIAL_IDLE: Duration = Duration::from_millis(100);
/// The least time between two reads (or looks) of one pipe: output that comes sooner is left
/// to gather until then. Bounds wake-ups to a few hundred a second per pipe; a 64 KiB pipe
/// holds several milliseconds of even a very chatty app, so the app does not wait.
const GATHER: Duration = Duration::from_millis(2);
/// Reads in a row from one pipe before letting the other pipes have a turn.
const READS_PER_TURN: usize = 16;

/// When a pipe that became readable is read: at once if it was last read [`GATHER`] ago or
/// more (an app that writes now and then: a crash loop's few lines, a line a second), else
/// once that time has passed, so that a chatty app's output gathers. Waiting [`GATHER`] after
/// every wake-up would cost each sporadic write a second wake-up of the log thread (the
/// timer's), and each process's end one more.
#[derive(Default)]
struct Pace {
    last: Option<tokio::time::Instant>,
}

impl Pace {
    /// Whether [`Pace::gather`] would wait now.
    fn waits(&self) -> bool {
        self.last
            .is_some_and(|last| last + GATHER > tokio::time::Instant::now())
    }

    /// Wait until the pipe may be read again, and count the read that follows.
    async fn gather(&mut self) {
        if let Some(last) = self.last {
            let due = last + GATHER;
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

thread_local! {
    /// The log thread reads every pipe into this one buffer (no await between a read and the
    /// processing of what it read), so idle apps cost no buffer memory.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Reused buffers for processing one chunk.
#[derive(Default)]
struct Scratch {
    /// The chunk's records, formatted for the files.
    formatted: Vec<u8>,
    /// The chunk's records, raw, back to back.
    raw: Vec<u8>,
    /// Where each record ends in `raw`.
    ends: Vec<u32>,
}

/// Where a reader learns that its pipe is asked back (`kelpie update`).
type HandBack =
    tokio::sync::watch::Receiver<Option<tokio::sync::mpsc::UnboundedSender<super::HandedPipe>>>;

/// What a waiting reader woke up for.
enum Woke {
    /// The pipe is readable (or the partial line's wait ended).
    Pipe(Result<std::io::Result<()>, tokio::time::error::Elapsed>),
    /// The pipe is asked back.
    HandBack(Option<tokio::sync::mpsc::UnboundedSender<super::HandedPipe>>),
}

enum Outcome {
    /// Read the most one turn allows; more is probably waiting.
    Data,
    Drained,
    Closed,
    /// A file of this pipe's is behind: read no more until the writer takes its bytes.
    Behind,
}

/// A pipe to read, and what was read from it before (by a keeper while no daemon ran).
pub(super) struct Pipe {
    /// Its read end.
    pub fd: kelpie_sys::PipeReader,
    /// Which stream of its process it is.
    pub stream: LogStream,
    /// Bytes to process before reading.
    pub backlog: Vec<u8>,
}

/// Read `fd` (one stream of one process) until every writer has closed it. `_held` counts this
/// reader, holds the pipe's share of the enlarged-pipe budget and the keeper's copy of the
/// pipe, all given back when it ends.
///
/// A stream with a file is only looked at (`looking`): the writer takes its bytes out of the
/// pipe once they are in the file, so none is lost if the daemon is killed. A stream with no
/// file (discarded, or `kelpie runtime`'s output) is read (`read_loop`).
pub(super) async fn read_pipe(
    pipe: Pipe,
    route: Arc<Route>,
    shared: Arc<Shared>,
    _held: (ReaderGuard, Option<BigPipe>, Option<crate::keeper::Held>),
    watch: Option<LineWatch>,
    tail: Option<super::TailWriter>,
) {
    let Pipe {
        fd,
        stream,
        backlog,
    } = pipe;
    let fd = fd.into_fd();
    let mut hand_back = shared.hand_back.subscribe();
    let mut framer = Framer::default();
    let mut chunk = Chunk {
        route: &route,
        shared: &shared,
        stream,
        watch,
        tail,
        cursor: None,
    };
    for part in backlog.chunks(READ_SIZE) {
        // The backlog is already in memory; waiting keeps the files' buffers bounded.
        chunk.wait_for_room(&mut hand_back).await;
        chunk.process(&mut framer, Some(part));
    }
    drop(backlog);
    let mut fd = Some(fd);
    if !route.sinks(stream).is_empty() {
        // The backlog's unfinished line goes as it is: what follows is the pipe's, which the
        // writer consumes from its own start.
        chunk.process(&mut framer, None);
        fd = match fd.take() {
            Some(fd) => match looking::look_at(fd, &mut framer, &mut chunk, &mut hand_back).await {
                Looked::Ended => None,
                Looked::HandedBack => return,
                // The writer makes no progress: read on, dropping what cannot be written.
                Looked::TakenOver(fd) => Some(fd),
            },
            None => None,
        };
    }
    if let Some(fd) = fd {
        if read_loop(fd, &mut framer, &mut chunk, &mut hand_back).await == Ended::HandedBack {
            return;
        }
    }
    chunk.process(&mut framer, None);
}

/// How reading a pipe ended.
#[derive(PartialEq, Eq)]
enum Ended {
    /// Every writer closed it (or it failed).
    Closed,
    /// It was given back for `kelpie update`.
    HandedBack,
}

/// Read the pipe (taking its bytes out of it) until it closes or is asked back.
///
/// The pipe is registered with the runtime only while waiting for it to become readable. Then
/// it is taken out again and output is left to gather (see [`Pace`]) before being read: with
/// the pipe registered, every line an app writes would wake the thread (edge-triggered epoll
/// signals each write), and an app printing line by line would cost a wake-up per line.
async fn read_loop(
    mut fd: OwnedFd,
    framer: &mut Framer,
    chunk: &mut Chunk<'_>,
    hand_back: &mut HandBack,
) -> Ended {
    let mut pace = Pace::default();
    loop {
        let pipe = match pipe::Receiver::from_owned_fd_unchecked(fd) {
            Ok(pipe) => pipe,
            Err(e) => {
                crate::daemon_log!(
                    "app `{}` (id {}): cannot watch its {}: {e}",
                    chunk.route.app.name,
                    chunk.route.pm_id,
                    chunk.stream.pm2_name()
                );
                return Ended::Closed;
            }
        };
        // The wait with a time limit (a partial line waiting for its end) is boxed: it is rare,
        // and every idle reader's task would otherwise hold room for its sleep.
        let readable = async {
            if framer.has_partial() {
                Box::pin(tokio::time::timeout(PARTIAL_IDLE, pipe.readable())).await
            } else {
                Ok(pipe.readable().await)
            }
        };
        let woke = tokio::select! {
            biased;
            to = asked_back(hand_back) => Woke::HandBack(to),
            ready = readable => Woke::Pipe(ready),
        };
        fd = match pipe.into_nonblocking_fd() {
            Ok(fd) => fd,
            Err(_) => return Ended::Closed,
        };
        let ready = match woke {
            Woke::Pipe(ready) => ready,
            Woke::HandBack(to) => {
                // `kelpie update`: what was read is written by this daemon, the rest of the pipe
                // is read by the next one.
                chunk.process(framer, None);
                chunk.hand_back(to, Some(fd));
                return Ended::HandedBack;
            }
        };
        match ready {
            Err(_quiet) => {
                chunk.process(framer, None);
                continue;
            }
            Ok(Err(_)) => return Ended::Closed,
            Ok(Ok(())) => {}
        }
        pace.gather().await;
        let mut file = std::fs::File::from(fd);
        let closed = loop {
            match read_available(&mut file, framer, chunk) {
                Outcome::Drained => break false,
                Outcome::Closed => break true,
                // Asked to give the pipe back: the wait above takes it from here (a reader
                // behind must not loop here: its wait for room ends at once meanwhile).
                Outcome::Data | Outcome::Behind if hand_back.borrow().is_some() => break false,
                // Still more to read: let the other pipes have a turn first.
                Outcome::Data => tokio::task::yield_now().await,
                // The app's next writes wait in the pipe (and then in the app) meanwhile.
                Outcome::Behind => chunk.wait_for_room(hand_back).await,
            }
        };
        fd = OwnedFd::from(file);
        if closed {
            return Ended::Closed;
        }
    }
}

/// Resolves once the pipes are asked back (`kelpie update`), with where to send them.
async fn asked_back(
    hand_back: &mut HandBack,
) -> Option<tokio::sync::mpsc::UnboundedSender<super::HandedPipe>> {
    hand_back
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|to| to.clone())
}

/// Read what the pipe holds, up to [`READS_PER_TURN`] reads.
fn read_available(file: &mut std::fs::File, framer: &mut Framer, chunk: &mut Chunk<'_>) -> Outcome {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        for _ in 0..READS_PER_TURN {
            if chunk.behind() {
                return Outcome::Behind;
            }
            match file.read(&mut buf) {
                Ok(0) => return Outcome::Closed,
                Ok(n) => chunk.process(framer, Some(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Outcome::Drained,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Closed,
            }
        }
        Outcome::Data
    })
}

/// Where the chunks of one pipe go.
struct Chunk<'a> {
    route: &'a Route,
    shared: &'a Shared,
    stream: LogStream,
    /// The app's ready pattern, until a line matched it.
    watch: Option<LineWatch>,
    /// The process's last lines, for the record of its exit (stderr only).
    tail: Option<super::TailWriter>,
    /// The pipe the chunks are still in, while it is only looked at: the first file of the
    /// stream consumes their bytes from it once written.
    cursor: Option<Arc<PipeCursor>>,
}

impl Chunk<'_> {
    /// Give the pipe to the daemon taking over (`kelpie update`).
    fn hand_back(
        &self,
        to: Option<tokio::sync::mpsc::UnboundedSender<super::HandedPipe>>,
        fd: Option<OwnedFd>,
    ) {
        if let Some(to) = to {
            let _ = to.send(super::HandedPipe {
                pm_id: self.route.pm_id,
                stream: self.stream,
                fd,
                backlog: Vec::new(),
            });
        }
    }

    /// Whether a file of this stream is behind (its readers must wait).
    fn behind(&self) -> bool {
        self.route
            .sinks(self.stream)
            .iter()
            .any(|sink| sink.room() == Room::Behind)
    }

    /// Wait until every file of this stream has room, or the pipe is asked back. A file that
    /// makes no progress for [`STALL_CHECKS`] checks is given up on (its lines are then
    /// dropped and counted), so a hung disk does not block the app forever.
    async fn wait_for_room(&self, hand_back: &mut HandBack) {
        for sink in self.route.sinks(self.stream) {
            let mut seen = sink.progress();
            let mut quiet = 0;
            let mut next_check = tokio::time::Instant::now() + PROGRESS_CHECK;
            loop {
                let drained = sink.drained();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if sink.room() == Room::Free || hand_back.borrow().is_some() {
                    break;
                }
                let checked = tokio::select! {
                    _ = hand_back.changed() => false,
                    woke = tokio::time::timeout_at(next_check, drained) => woke.is_err(),
                };
                if !checked {
                    continue;
                }
                // Progress is looked at on a clock of its own: wake-ups without progress (a
                // full FIFO retried) do not put the check off.
                next_check = tokio::time::Instant::now() + PROGRESS_CHECK;
                let now = sink.progress();
                if now != seen {
                    (seen, quiet) = (now, 0);
                    continue;
                }
                quiet += 1;
                if quiet >= STALL_CHECKS {
                    sink.give_up_waiting(seen);
                }
            }
        }
    }

    /// Frame `bytes` (or, with `None`, flush the partial line) and hand the records to the
    /// files and the hub.
    fn process(&mut self, framer: &mut Framer, bytes: Option<&[u8]>) {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.formatted.clear();
            scratch.raw.clear();
            scratch.ends.clear();
            let now = crate::clock::wall_ms() as i64;
            let who = Who {
                pm_id: self.route.pm_id,
                instance: self.route.instance,
                app_name: &self.route.app.name,
            };
            let frame = self.route.format.frame(now, self.stream, &who);
            let watch = &mut self.watch;
            let held_before = framer.partial_len();
            let mut emit = |record: &[u8], complete: bool| {
                if watch.as_ref().is_some_and(|w| w.pattern.is_match(record)) {
                    if let Some(w) = watch.take() {
                        (w.matched)();
                    }
                }
                frame.append(record, complete, &mut scratch.formatted);
                scratch.raw.extend_from_slice(record);
                scratch.ends.push(scratch.raw.len() as u32);
            };
            let new = bytes.map_or(0, <[u8]>::len);
            match bytes {
                Some(bytes) => framer.push(bytes, &mut emit),
                None => framer.flush(&mut emit),
            }
            if scratch.ends.is_empty() {
                return;
            }
            // The pipe's bytes the records just made hold (their newlines included): the
            // bytes given, and the start of a line held before, less the line held now.
            let from_pipe = (held_before + new - framer.partial_len()) as u64;
            let exact = matches!(self.route.format, super::LineFormat::Raw);
            for (i, sink) in self.route.sinks(self.stream).iter().enumerate() {
                let wake = match (&self.cursor, i) {
                    (Some(cursor), 0) => {
                        sink.append_from(&scratch.formatted, cursor, from_pipe, exact)
                    }
                    _ => sink.append(&scratch.formatted),
                };
                if wake {
                    let _ = self.shared.writer.send(WriterMsg::Write(sink.clone()));
                }
            }
            let from = NewLines {
                pm_id: self.route.pm_id,
                app: &self.route.app,
                stream: self.stream,
                at_ms: now,
                prefix: frame.prefix(),
            };
            let published = lock(&self.shared.hub).publish(&from, &scratch.raw, &scratch.ends);
            if let (Some(tail), Some(chunk)) = (&self.tail, published) {
                tail.push(chunk);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// A pipe read now and then is read as soon as it is readable (no second wake-up for a
    /// timer); one readable again within [`GATHER`] of its last read waits until then, so a
    /// chatty app's output gathers.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_pipe_is_read_at_once_and_a_chatty_one_gathers() {
        let mut pace = Pace::default();
        let first = Instant::now();
        pace.gather().await;
        assert_eq!(first.elapsed(), Duration::ZERO, "the first read is at once");
        let second = Instant::now();
        pace.gather().await;
        let waited = second.elapsed();
        assert!(
            waited >= GATHER && waited < GATHER + Duration::from_millis(1),
            "a read within {GATHER:?} of the last waits for it: {waited:?}"
        );
        tokio::time::advance(GATHER * 5).await;
        let quiet = Instant::now();
        pace.gather().await;
        assert_eq!(
            quiet.elapsed(),
            Duration::ZERO,
            "after a quiet spell, at once again"
        );
        // Partly quiet: only the rest of GATHER is waited.
        tokio::time::advance(GATHER / 2).await;
        let partly = Instant::now();
        pace.gather().await;
        let waited = partly.elapsed();
        assert!(
            waited >= GATHER / 2 && waited < GATHER,
            "only the rest of {GATHER:?}: {waited:?}"
        );
    }
}
