//! Serving `kelpie logs` on a connection: the recent lines first (from memory, or from the files
//! when memory holds fewer than asked), then, when following, every new line as it arrives.
//!
//! The supervisor only says which instances the targets mean; the lines come straight from the
//! log pipeline's hub, so a busy `logs` client never occupies the supervisor.

mod remembered;

use crate::logs::hub::{Following, LogLine};
use crate::logs::{file_tail, LogService};
use crate::supervisor_channel::{Command, LogSelection, SelectedInstance};
use kelpie_core::DateFormat;
use kelpie_proto::LogsRequest;
use kelpie_proto::{
    encode, ErrorKind, LogBytes, LogStream, Response, Target, WireError, WireLogLine,
};
use remembered::Remembered;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// Lines per frame, and bytes of line text per frame. Lines are at most 64 KiB, and JSON escaping
/// at most sextuples them, so a frame stays well under the 16 MiB limit.
const FRAME_LINES: usize = 2000;
const FRAME_BYTES: usize = 1024 * 1024;
/// Most lines per stream a client may ask for first, over the socket and HTTP alike: more is
/// refused, so that no request makes the daemon read and hold an unbounded tail.
pub(crate) const MAX_TAIL_LINES: u32 = 10_000;

/// More lines asked for first than [`MAX_TAIL_LINES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{asked} lines asked for; at most {MAX_TAIL_LINES} lines of each stream")]
pub(crate) struct TooManyLines {
    /// How many were asked for.
    pub asked: u32,
}

impl TooManyLines {
    /// The kind of the wire error it is answered with: the request is refused as asked.
    pub(crate) fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// Why a client cannot ask for `lines` lines of each stream first, if it cannot.
pub(crate) fn check_tail_lines(lines: u32) -> Result<(), TooManyLines> {
    if lines > MAX_TAIL_LINES {
        return Err(TooManyLines { asked: lines });
    }
    Ok(())
}

/// Where the answer to a `logs` request goes: a CLI's connection, or an HTTP response.
pub(crate) trait LogOutput {
    /// Send one answer frame.
    async fn send(&mut self, response: &Response) -> std::io::Result<()>;
    /// Returns once the client has gone (only awaited while following).
    async fn gone(&mut self);
}

impl LogOutput for UnixStream {
    async fn send(&mut self, response: &Response) -> std::io::Result<()> {
        send(self, response).await
    }

    async fn gone(&mut self) {
        // The client sends nothing more: a read returning means it went away.
        let mut probe = [0u8; 1];
        let _ = self.read(&mut probe).await;
    }
}

/// Answer a `logs` request on `stream` until done (or, when following, until the client goes).
///
/// 1. The last lines of each stream come from memory. 2. Streams memory holds too few of are
///    read from the end of their files instead, each file once, only as far as the writer had
///    written when everything read before step 1 was on disk. 3. Lines that arrived meanwhile
///    come from memory, and following starts under the same lock: none is missed; one written
///    in the instant between steps 1 and 2 can show twice.
pub(crate) async fn serve(
    stream: &mut impl LogOutput,
    commands: &mpsc::Sender<Command>,
    logs: &LogService,
    request: LogsRequest,
) {
    if let Err(refused) = check_tail_lines(request.lines) {
        let error = WireError {
            kind: refused.kind(),
            message: refused.to_string(),
        };
        let _ = stream.send(&Response::Error(error)).await;
        return;
    }
    let selection = match select(commands, request.targets.clone()).await {
        Ok(selection) => selection,
        Err(error) => {
            let _ = stream.send(&Response::Error(error)).await;
            return;
        }
    };
    let mut filter = selection.filter.clone();
    filter.out = request.out;
    filter.err = request.err;
    let ids: Vec<u32> = selection.instances.iter().map(|i| i.pm_id).collect();
    let lines = request.lines as usize;
    let (tail, seen) = {
        let hub = logs.lock_hub();
        (hub.tail(&filter, &ids, lines), hub.last_seq())
    };
    let reads = file_reads(&selection, &tail.short);
    let read_from_file = |line: &&LogLine| {
        let chunk = line.chunk();
        reads
            .iter()
            .any(|r| r.shows.contains(&(chunk.pm_id, chunk.stream)))
    };
    let memory = remembered_by_read(&selection, &reads, &tail.lines);
    let mut shown = from_files(logs, reads.clone(), lines, memory).await;
    shown.extend(
        tail.lines
            .iter()
            .filter(|l| !read_from_file(l))
            .map(LogLine::to_wire),
    );
    let (since, live) = {
        let mut hub = logs.lock_hub();
        let since = hub.since(&filter, &ids, seen);
        let live = request.follow.then(|| hub.follow(filter.clone()));
        (since, live)
    };
    shown.extend(since.iter().map(LogLine::to_wire));
    if send_lines(stream, shown, 0).await.is_err() {
        return;
    }
    match live {
        None => {
            let _ = stream.send(&Response::Done(String::new())).await;
        }
        Some(live) => follow(stream, live).await,
    }
}

/// One file to read for the tail, and the (instance, stream) pairs it stands for.
#[derive(Clone)]
struct FileRead {
    path: PathBuf,
    pm_id: u32,
    stream: LogStream,
    name: String,
    shows: Vec<(u32, LogStream)>,
    /// The date the file's lines start with (`log_date_format`).
    line_dates: Option<DateFormat>,
}

/// The files of the streams memory had too few lines of, each file once (instances that merge
/// their logs, or `-o x -e x`, share one).
fn file_reads(selection: &LogSelection, short: &[(u32, LogStream)]) -> Vec<FileRead> {
    let mut reads: Vec<FileRead> = Vec::new();
    for &(pm_id, stream) in short {
        let Some((selected, path)) = file_of(selection, pm_id, stream) else {
            continue;
        };
        match reads.iter_mut().find(|r| r.path == path) {
            Some(read) => read.shows.push((pm_id, stream)),
            None => reads.push(FileRead {
                path,
                pm_id,
                stream,
                name: selected.name.clone(),
                shows: vec![(pm_id, stream)],
                line_dates: selected.line_dates.clone(),
            }),
        }
    }
    reads
}

/// Ask the supervisor which instances `targets` means.
async fn select(
    commands: &mpsc::Sender<Command>,
    targets: Vec<Target>,
) -> Result<LogSelection, WireError> {
    let gone = crate::supervisor_channel::shutting_down;
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::LogSelection { targets, reply: tx })
        .await
        .map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

/// The file of an instance's stream, when it has one.
fn file_of(
    selection: &LogSelection,
    pm_id: u32,
    stream: LogStream,
) -> Option<(&SelectedInstance, PathBuf)> {
    let selected = selection.instances.iter().find(|i| i.pm_id == pm_id)?;
    let files = selected.paths.files();
    let path = match stream {
        LogStream::Out => files.out,
        LogStream::Err => files.err,
    }?;
    Some((selected, path))
}

/// For each file to read, the lines memory holds that were written to it (by any selected
/// instance and stream whose file it is), in arrival order.
fn remembered_by_read(
    selection: &LogSelection,
    reads: &[FileRead],
    memory: &[LogLine],
) -> Vec<Vec<Remembered>> {
    let mut files: Vec<((u32, LogStream), PathBuf)> = Vec::new();
    for instance in &selection.instances {
        for stream in [LogStream::Out, LogStream::Err] {
            if let Some((_, path)) = file_of(selection, instance.pm_id, stream) {
                files.push(((instance.pm_id, stream), path));
            }
        }
    }
    let file_of_line = |line: &LogLine| {
        let chunk = line.chunk();
        let key = (chunk.pm_id, chunk.stream);
        files.iter().find(|(k, _)| *k == key).map(|(_, path)| path)
    };
    reads
        .iter()
        .map(|read| {
            memory
                .iter()
                .filter(|line| file_of_line(line) == Some(&read.path))
                .map(|line| Remembered {
                    pm_id: line.chunk().pm_id,
                    stream: line.chunk().stream,
                    at_ms: line.chunk().at_ms,
                    written: line.as_written(),
                })
                .collect()
        })
        .collect()
}

/// The last lines of these files, as far as the writer has written everything read so far;
/// those memory still holds (`memory`, by file) with the instance that wrote them and when.
async fn from_files(
    logs: &LogService,
    reads: Vec<FileRead>,
    lines: usize,
    memory: Vec<Vec<Remembered>>,
) -> Vec<WireLogLine> {
    if reads.is_empty() || lines == 0 {
        return Vec::new();
    }
    let paths: Vec<PathBuf> = reads.iter().map(|r| r.path.clone()).collect();
    let limits = logs.written_sizes(&paths).await;
    crate::tasks::blocking(move || {
        reads
            .into_iter()
            .zip(limits)
            .zip(memory)
            .flat_map(|((read, limit), memory)| {
                let file_lines = file_tail(&read.path, lines, limit);
                let writers: Vec<Option<(u32, LogStream, i64)>> =
                    remembered::match_lines(&file_lines, &memory)
                        .into_iter()
                        .map(|found| found.map(|r| (r.pm_id, r.stream, r.at_ms)))
                        .collect();
                let shows = read.shows.clone();
                file_lines
                    .into_iter()
                    .zip(writers)
                    // A line of a stream not read from the file is shown from memory.
                    .filter(move |(_, writer)| {
                        writer.is_none_or(|(pm_id, stream, _)| shows.contains(&(pm_id, stream)))
                    })
                    .map(move |(bytes, writer)| match writer {
                        Some((pm_id, stream, at_ms)) => WireLogLine {
                            pm_id,
                            app_name: read.name.clone(),
                            stream,
                            at_ms: Some(at_ms),
                            bytes: LogBytes(bytes),
                        },
                        None => WireLogLine {
                            pm_id: read.pm_id,
                            app_name: read.name.clone(),
                            stream: read.stream,
                            at_ms: read.line_dates.as_ref().and_then(|d| written_at(d, &bytes)),
                            bytes: LogBytes(bytes),
                        },
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// When a line read back from a file was written: the date `log_date_format` put before it
/// (`<date>: <line>`). A file holds no time for lines without one.
fn written_at(dates: &DateFormat, line: &[u8]) -> Option<i64> {
    let (at_ms, len) = dates.read(line, kelpie_sys::utc_offset_secs)?;
    line[len..].starts_with(b": ").then_some(at_ms)
}

/// Stream new lines until the client closes the connection.
async fn follow(stream: &mut impl LogOutput, mut live: Following) {
    loop {
        tokio::select! {
            batch = live.recv() => {
                let Some(batch) = batch else { return };
                let lines = LogLine::all_of(&batch.chunk).map(|line| line.to_wire()).collect();
                if send_lines(stream, lines, batch.skipped).await.is_err() {
                    return;
                }
            }
            () = stream.gone() => return,
        }
    }
}

/// Send lines in frames of bounded size (an empty list sends nothing).
async fn send_lines(
    stream: &mut impl LogOutput,
    lines: Vec<WireLogLine>,
    skipped: u64,
) -> std::io::Result<()> {
    let mut frame = Vec::new();
    let mut bytes = 0;
    let mut skipped = skipped;
    for line in lines {
        bytes += line.bytes.0.len();
        frame.push(line);
        if frame.len() >= FRAME_LINES || bytes >= FRAME_BYTES {
            let lines = std::mem::take(&mut frame);
            stream.send(&Response::LogLines { lines, skipped }).await?;
            skipped = 0;
            bytes = 0;
        }
    }
    if !frame.is_empty() || skipped > 0 {
        stream
            .send(&Response::LogLines {
                lines: frame,
                skipped,
            })
            .await?;
    }
    Ok(())
}

async fn send(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let frame = match encode(response) {
        Ok(frame) => frame,
        Err(e) => {
            crate::daemon_log!("cannot send log lines to a client: {e}");
            let error = Response::Error(WireError {
                kind: ErrorKind::Internal,
                message: format!("the daemon could not send these log lines: {e}"),
            });
            let frame = encode(&error)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            stream.write_all(&frame).await?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ));
        }
    };
    stream.write_all(&frame).await
}
