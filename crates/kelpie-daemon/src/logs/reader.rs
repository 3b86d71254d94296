//! Reading an app's stdout or stderr pipe. Runs on the log thread; never waits for anything
//! but the pipe, so the app can always write.

use super::format::Who;
use super::framer::Framer;
use super::hub::{NewLines, RING_LINES};
use super::sink::lock;
use super::writer::WriterMsg;
use super::{BigPipe, ReaderGuard, Route, Shared};
use kelpie_proto::LogStream;
use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;

/// Bytes read from a pipe at once (the default pipe capacity).
const READ_SIZE: usize = 64 * 1024;
/// A line without its newline is written after the app has been quiet this long (a prompt).
const PARTIAL_IDLE: Duration = Duration::from_millis(100);
/// Reads in a row from one pipe before letting the other pipes have a turn.
const READS_PER_TURN: usize = 16;

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
    /// Where each record is in `raw`.
    spans: Vec<(usize, usize)>,
}

enum Outcome {
    Data,
    Drained,
    Closed,
}

/// Read `fd` (one stream of one process) until every writer has closed it. `_held` counts this
/// reader and holds the pipe's share of the enlarged-pipe budget, both given back when it ends.
pub async fn read_pipe(
    fd: OwnedFd,
    stream: LogStream,
    route: Arc<Route>,
    shared: Arc<Shared>,
    _held: (ReaderGuard, Option<BigPipe>),
) {
    let pipe = match pipe::Receiver::from_owned_fd(fd) {
        Ok(pipe) => pipe,
        Err(e) => {
            crate::daemon_log!(
                "app `{}` (id {}): cannot read its {}: {e}",
                route.app.name,
                route.pm_id,
                stream.pm2_name()
            );
            return;
        }
    };
    let mut framer = Framer::default();
    let mut chunk = Chunk {
        route: &route,
        shared: &shared,
        stream,
    };
    loop {
        let ready = if framer.has_partial() {
            match tokio::time::timeout(PARTIAL_IDLE, pipe.readable()).await {
                Ok(ready) => ready,
                Err(_quiet) => {
                    chunk.process(&mut framer, None);
                    continue;
                }
            }
        } else {
            pipe.readable().await
        };
        if ready.is_err() {
            break;
        }
        let mut closed = false;
        for _ in 0..READS_PER_TURN {
            let outcome = READ_BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                match pipe.try_read(&mut buf) {
                    Ok(0) => Outcome::Closed,
                    Ok(n) => {
                        chunk.process(&mut framer, Some(&buf[..n]));
                        Outcome::Data
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Outcome::Drained,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Outcome::Data,
                    Err(_) => Outcome::Closed,
                }
            });
            match outcome {
                Outcome::Data => {}
                Outcome::Drained => break,
                Outcome::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            break;
        }
        tokio::task::yield_now().await;
    }
    chunk.process(&mut framer, None);
}

/// Where the chunks of one pipe go.
struct Chunk<'a> {
    route: &'a Route,
    shared: &'a Shared,
    stream: LogStream,
}

impl Chunk<'_> {
    /// Frame `bytes` (or, with `None`, flush the partial line) and hand the records to the
    /// files and the hub.
    fn process(&mut self, framer: &mut Framer, bytes: Option<&[u8]>) {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.formatted.clear();
            scratch.raw.clear();
            scratch.spans.clear();
            let now = super::now_ms();
            let who = Who {
                pm_id: self.route.pm_id,
                instance: self.route.instance,
                app_name: &self.route.app.name,
            };
            let frame = self.route.format.frame(now, self.stream, &who);
            let mut emit = |record: &[u8], complete: bool| {
                frame.append(record, complete, &mut scratch.formatted);
                let start = scratch.raw.len();
                scratch.raw.extend_from_slice(record);
                scratch.spans.push((start, scratch.raw.len()));
            };
            match bytes {
                Some(bytes) => framer.push(bytes, &mut emit),
                None => framer.flush(&mut emit),
            }
            if scratch.spans.is_empty() {
                return;
            }
            for sink in self.route.sinks(self.stream) {
                if sink.append(&scratch.formatted) {
                    let _ = self.shared.writer.send(WriterMsg::Write(sink.clone()));
                }
            }
            let mut hub = lock(&self.shared.hub);
            // Without followers, lines that would fall out of the ring at once are not kept.
            let keep_from = if hub.has_followers() {
                0
            } else {
                scratch.spans.len().saturating_sub(RING_LINES)
            };
            hub.skip_seq(keep_from as u64);
            let from = NewLines {
                pm_id: self.route.pm_id,
                app: &self.route.app,
                stream: self.stream,
                at_ms: now,
            };
            let raw = &scratch.raw;
            hub.publish(
                &from,
                scratch.spans[keep_from..].iter().map(|&(s, e)| &raw[s..e]),
            );
        });
    }
}
