//! Serving `kelpie logs` on a connection: the recent lines first (from memory, or from the files
//! when memory holds fewer than asked), then, when following, every new line as it arrives.
//!
//! The supervisor only says which instances the targets mean; the lines come straight from the
//! log pipeline's hub, so a busy `logs` client never occupies the supervisor.

use crate::logs::hub::LogLine;
use crate::logs::{file_tail, LogService};
use crate::supervisor::{Command, LogSelection};
use kelpie_proto::{
    encode, ErrorKind, LogBytes, LogStream, Response, Target, WireError, WireLogLine,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// Lines per frame, and bytes per frame (well under the frame limit).
const FRAME_LINES: usize = 2000;
const FRAME_BYTES: usize = 1024 * 1024;
/// How long the tail waits for the writer to catch up before reading files anyway.
const WRITER_WAIT: Duration = Duration::from_secs(1);

/// What a `logs` request asks for.
pub struct LogsRequest {
    /// Whose lines (empty = all).
    pub targets: Vec<Target>,
    /// Lines per stream per instance to show first.
    pub lines: u32,
    /// Include stdout.
    pub out: bool,
    /// Include stderr.
    pub err: bool,
    /// Keep streaming.
    pub follow: bool,
}

/// Answer a `logs` request on `stream` until done (or, when following, until the client goes).
pub async fn serve(
    stream: &mut UnixStream,
    commands: &mpsc::Sender<Command>,
    logs: &LogService,
    request: LogsRequest,
) {
    let selection = match select(commands, request.targets.clone()).await {
        Ok(selection) => selection,
        Err(error) => {
            let _ = send(stream, &Response::Error(error)).await;
            return;
        }
    };
    let mut filter = selection.filter.clone();
    filter.out = request.out;
    filter.err = request.err;
    let ids: Vec<u32> = selection.instances.iter().map(|i| i.pm_id).collect();
    let lines = request.lines as usize;
    // Tail and subscription under one lock: no line is missed or shown twice in between.
    let (tail, live) = {
        let mut hub = logs.lock_hub();
        let tail = hub.tail(&filter, &ids, lines);
        let live = request.follow.then(|| hub.follow(filter.clone()));
        (tail, live)
    };
    let mut shown = from_files(logs, &selection, &tail.short, lines).await;
    let from_memory = tail.lines.iter().filter(|line| {
        !tail.short.contains(&(line.pm_id, line.stream))
            || !has_file(&selection, line.pm_id, line.stream)
    });
    shown.extend(from_memory.map(wire));
    if send_lines(stream, shown, 0).await.is_err() {
        return;
    }
    match live {
        None => {
            let _ = send(stream, &Response::Done(String::new())).await;
        }
        Some(live) => follow(stream, live).await,
    }
}

/// Ask the supervisor which instances `targets` means.
async fn select(
    commands: &mpsc::Sender<Command>,
    targets: Vec<Target>,
) -> Result<LogSelection, WireError> {
    let gone = || WireError {
        kind: ErrorKind::Internal,
        message: "the daemon is shutting down".into(),
    };
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::LogSelection { targets, reply: tx })
        .await
        .map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

/// The file of an instance's stream, when it has one.
fn file_of(selection: &LogSelection, pm_id: u32, stream: LogStream) -> Option<(String, PathBuf)> {
    let selected = selection.instances.iter().find(|i| i.pm_id == pm_id)?;
    let files = selected.paths.files();
    let path = match stream {
        LogStream::Out => files.out,
        LogStream::Err => files.err,
    }?;
    Some((selected.name.clone(), path))
}

fn has_file(selection: &LogSelection, pm_id: u32, stream: LogStream) -> bool {
    file_of(selection, pm_id, stream).is_some()
}

/// The last lines of the streams memory had too few of, read from their files once the writer
/// has written what it holds.
async fn from_files(
    logs: &LogService,
    selection: &LogSelection,
    short: &[(u32, LogStream)],
    lines: usize,
) -> Vec<WireLogLine> {
    let reads: Vec<(u32, LogStream, String, PathBuf)> = short
        .iter()
        .filter_map(|&(pm_id, stream)| {
            let (name, path) = file_of(selection, pm_id, stream)?;
            Some((pm_id, stream, name, path))
        })
        .collect();
    if reads.is_empty() || lines == 0 {
        return Vec::new();
    }
    let _ = tokio::time::timeout(WRITER_WAIT, logs.written()).await;
    tokio::task::spawn_blocking(move || {
        reads
            .into_iter()
            .flat_map(|(pm_id, stream, name, path)| {
                file_tail(&path, lines)
                    .into_iter()
                    .map(move |bytes| WireLogLine {
                        pm_id,
                        app_name: name.clone(),
                        stream,
                        at_ms: None,
                        bytes: LogBytes(bytes),
                    })
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

fn wire(line: &Arc<LogLine>) -> WireLogLine {
    WireLogLine {
        pm_id: line.pm_id,
        app_name: line.app.name.clone(),
        stream: line.stream,
        at_ms: Some(line.at_ms),
        bytes: LogBytes(line.bytes.to_vec()),
    }
}

/// Stream new lines until the client closes the connection.
async fn follow(stream: &mut UnixStream, mut live: mpsc::Receiver<crate::logs::hub::LogBatch>) {
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            batch = live.recv() => {
                let Some(batch) = batch else { return };
                let lines = batch.lines.iter().map(wire).collect();
                if send_lines(stream, lines, batch.skipped).await.is_err() {
                    return;
                }
            }
            // The client sends nothing more: a read returning means it went away.
            _ = stream.read(&mut probe) => return,
        }
    }
}

/// Send lines in frames of bounded size (an empty list sends nothing).
async fn send_lines(
    stream: &mut UnixStream,
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
            send(stream, &Response::LogLines { lines, skipped }).await?;
            skipped = 0;
            bytes = 0;
        }
    }
    if !frame.is_empty() || skipped > 0 {
        send(
            stream,
            &Response::LogLines {
                lines: frame,
                skipped,
            },
        )
        .await?;
    }
    Ok(())
}

async fn send(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let frame = encode(response)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(&frame).await
}
