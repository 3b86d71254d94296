//! A Node process's IPC channel, read and written by one task: JSON lines in (routed by
//! [`super::ipc_signal`]), the lines queued for the process out. Read as they come, until the
//! process reports SDK metrics; from then on, while all it says is metrics, read by the
//! [`super::pacer`] once a period. Anything else it says, and anything to write to it, brings
//! the channel back to reading as things come.

use super::pacer;
use super::{
    answer_socket_request, connections_report, ipc_signal, socket_request, Presence, ProcessSignal,
    Routed, SharedSdk, NEXT_LINK,
};
use crate::sockets::ClaimedSockets;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Longest line waited for: the rest of a longer one is skipped.
const LINE_MAX: usize = 16 * 1024 * 1024;
/// Bytes read at once.
const CHUNK: usize = 8192;

/// Read the JSON lines a process sends, and write the ones queued for it, until its channel
/// closes. One task for both: the writes must not go through an owned write half, whose drop
/// would shut the socket down for writing, and the process would see its channel disconnect
/// when `kelpie update` hands it over.
pub(super) async fn run_ipc(
    stream: UnixStream,
    to: crate::mailbox::Sender<ProcessSignal>,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    claims: Option<Arc<ClaimedSockets>>,
    sdk: SharedSdk,
    exited: Arc<tokio::sync::Notify>,
) {
    let mut channel = Channel {
        // This process's place in its app's spread of connections, left when the task ends.
        process: claims.map(|claims| Presence {
            claims,
            process: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
        }),
        writing: true,
        to,
        sdk,
        received: Vec::new(),
        skipping: false,
    };
    let mut stream = stream;
    let mut queued = None;
    loop {
        // What came while the channel was paced: a message to write, lines to act on.
        if let Some(message) = queued.take() {
            channel.send(&stream, message).await;
        }
        if let Taken::Closed = channel.take_lines(&stream).await {
            return;
        }
        if let Mode::Ended = prompt(&stream, &mut channel, &mut outgoing).await {
            return;
        }
        // Out of the event loop (its wake-ups are what pacing saves), then back in.
        let Ok(std) = stream.into_std() else { return };
        let (std, next) = paced(std, &mut channel, &mut outgoing, &exited).await;
        match next {
            Paced::Ended => return,
            Paced::Prompt(message) => queued = message,
        }
        let Ok(back) = UnixStream::from_std(std) else {
            return;
        };
        stream = back;
    }
}

/// How a way of reading ended.
enum Mode {
    /// The process sent metrics and nothing after them: pace the channel.
    Paced,
    /// The channel closed, or nobody listens any more.
    Ended,
}

/// How paced reading ended.
enum Paced {
    /// The process said something else than metrics, or something is to be written to it
    /// (`Some`; `None`: nothing will be queued any more).
    Prompt(Option<Option<String>>),
    Ended,
}

/// Read lines as they come (and write what is queued) until the process has sent metrics
/// with nothing after them.
async fn prompt(
    stream: &UnixStream,
    channel: &mut Channel,
    outgoing: &mut mpsc::UnboundedReceiver<String>,
) -> Mode {
    loop {
        tokio::select! {
            readable = stream.readable() => {
                if readable.is_err() {
                    return Mode::Ended;
                }
                let mut chunk = [0u8; CHUNK];
                match read_once(stream, &mut chunk) {
                    // The process closed its end (it exited): nothing more can be written either.
                    Ok(0) => return Mode::Ended,
                    Ok(n) => channel.receive(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Mode::Ended,
                }
                match channel.take_lines(stream).await {
                    Taken::Closed => return Mode::Ended,
                    Taken::Metrics if channel.received.is_empty() => return Mode::Paced,
                    Taken::Metrics | Taken::Other => {}
                }
            },
            message = outgoing.recv(), if channel.writing => channel.send(stream, message).await,
        }
    }
}

/// One read of what the process sent. A read that does not fill `chunk` took all there was,
/// so the socket's readiness is cleared with it (as tokio's own `AsyncRead` does): the read
/// that would follow, only to learn that nothing more came, costs as much as the first. tokio
/// clears it only if no newer readiness came in the meantime, so what the process sends after
/// this read still wakes the task.
fn read_once(stream: &UnixStream, chunk: &mut [u8]) -> std::io::Result<usize> {
    let mut took_all = None;
    let read = stream.try_io(tokio::io::Interest::READABLE, || {
        match stream.try_read(chunk) {
            Ok(n) if n > 0 && n < chunk.len() => {
                took_all = Some(n);
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            other => other,
        }
    });
    match (read, took_all) {
        (_, Some(n)) => Ok(n),
        (read, None) => read,
    }
}

/// Take the process's metrics once a period, until it says something else, something is to
/// be written to it, or its channel closes.
async fn paced(
    stream: std::os::unix::net::UnixStream,
    channel: &mut Channel,
    outgoing: &mut mpsc::UnboundedReceiver<String>,
    exited: &tokio::sync::Notify,
) -> (std::os::unix::net::UnixStream, Paced) {
    let Some(pacer) = pacer::pace(stream.as_fd()) else {
        return (stream, Paced::Prompt(None));
    };
    let next = loop {
        tokio::select! {
            () = pacer.readable() => {
                let closed = read_available(&stream, channel);
                let all_metrics = channel.take_metrics();
                if !all_metrics {
                    // Prompt reading acts on the rest, and sees the end if it came.
                    break Paced::Prompt(None);
                }
                if closed {
                    break Paced::Ended;
                }
            },
            message = outgoing.recv(), if channel.writing => break Paced::Prompt(Some(message)),
            // What it sent last is read as it comes, and its end seen.
            () = exited.notified() => break Paced::Prompt(None),
        }
    };
    drop(pacer);
    (stream, next)
}

/// Read what the process sent, without waiting: whether its end is closed. One read when it
/// does not fill the buffer (the pacer looks again next period if more came meanwhile): a
/// second read, to learn that there is nothing more, would cost as much as the first.
fn read_available(mut stream: &std::os::unix::net::UnixStream, channel: &mut Channel) -> bool {
    let mut chunk = [0u8; CHUNK];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) if n < CHUNK => {
                channel.receive(&chunk[..n]);
                return false;
            }
            Ok(n) => channel.receive(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// The messages of the shim's batch (`{"kelpie": "batch", "messages": [...]}`), taken out of
/// it; `None` for any other message.
fn shim_batch(message: &mut serde_json::Value) -> Option<Vec<serde_json::Value>> {
    if message.get("kelpie").and_then(serde_json::Value::as_str) != Some("batch") {
        return None;
    }
    match message.get_mut("messages").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(messages)) => Some(messages),
        _ => Some(Vec::new()),
    }
}

/// What the lines taken were.
enum Taken {
    /// The last one: its SDK's metrics.
    Metrics,
    /// The last one: anything else (or there was none).
    Other,
    /// Nobody listens to the link any more.
    Closed,
}

/// The daemon's end of one process's IPC channel.
struct Channel {
    process: Option<Presence>,
    /// False once a write failed: the process cannot be written to any more.
    writing: bool,
    to: crate::mailbox::Sender<ProcessSignal>,
    sdk: SharedSdk,
    /// Bytes received and not taken yet: at most the start of a line, between reads.
    received: Vec<u8>,
    /// The rest of a line over [`LINE_MAX`] is being skipped.
    skipping: bool,
}

impl Channel {
    fn receive(&mut self, bytes: &[u8]) {
        let mut bytes = bytes;
        if self.skipping {
            let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
                return;
            };
            bytes = &bytes[end + 1..];
            self.skipping = false;
        }
        self.received.extend_from_slice(bytes);
        if self.received.len() > LINE_MAX && !self.received.contains(&b'\n') {
            self.received = Vec::new();
            self.skipping = true;
        }
    }

    /// The next whole line received, taken out.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.received.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.received.drain(..=end).collect();
        line.pop();
        if self.received.is_empty() {
            // Between messages, an idle process's channel holds no buffer.
            self.received = Vec::new();
        }
        Some(line)
    }

    /// Act on every whole line received.
    async fn take_lines(&mut self, stream: &UnixStream) -> Taken {
        let mut last = Taken::Other;
        while let Some(line) = self.next_line() {
            last = self.take(stream, &line).await;
            if let Taken::Closed = last {
                break;
            }
        }
        last
    }

    /// Take the whole lines received while they are metrics: whether all were.
    fn take_metrics(&mut self) -> bool {
        loop {
            let Some(end) = self.received.iter().position(|b| *b == b'\n') else {
                return true;
            };
            let taken = match self.sdk.lock() {
                Ok(mut state) => state.metrics_line(&self.received[..end]),
                Err(_) => false,
            };
            if !taken {
                // Left for prompt reading.
                return false;
            }
            self.received.drain(..=end);
        }
    }

    /// Act on one line the process sent: one message, or the shim's batch of them (what it
    /// says at start, in one write).
    async fn take(&mut self, stream: &UnixStream, line: &[u8]) -> Taken {
        // Not JSON: nothing Kelpie reads.
        let Ok(mut message) = serde_json::from_slice::<serde_json::Value>(line) else {
            return Taken::Other;
        };
        let Some(batch) = shim_batch(&mut message) else {
            return self.take_message(stream, message, line.len()).await;
        };
        let mut last = Taken::Other;
        for message in batch {
            // Each message's own size, for the bound on what is kept, only when the batch's
            // could exceed it.
            let size = if line.len() > kelpie_core::sdk::SDK_MESSAGE_MAX {
                serde_json::to_vec(&message).map_or(usize::MAX, |bytes| bytes.len())
            } else {
                line.len()
            };
            last = self.take_message(stream, message, size).await;
            if let Taken::Closed = last {
                break;
            }
        }
        last
    }

    /// Act on one message the process sent (`size` bytes of JSON).
    async fn take_message(
        &mut self,
        stream: &UnixStream,
        message: serde_json::Value,
        size: usize,
    ) -> Taken {
        if let Some(process) = &self.process {
            if let Some(request) = socket_request(&message) {
                // Answered in order with the other messages written to the channel.
                if self.writing
                    && answer_socket_request(stream, &process.claims, request)
                        .await
                        .is_err()
                {
                    self.writing = false;
                }
                return Taken::Other;
            }
            if let Some(connections) = connections_report(&message) {
                let keep = process
                    .claims
                    .report_connections(process.process, connections);
                if let Some(keep) = keep {
                    let line = serde_json::json!({"cmd": "NODE_KELPIE_BALANCE", "keep": keep});
                    self.write(stream, format!("{line}\n").as_bytes()).await;
                }
                return Taken::Other;
            }
        }
        if crate::profile_parts::is_part(&message) {
            // A profile's text, to the client that asked for it (waits while it reads).
            crate::profile_parts::deliver(message).await;
            return Taken::Other;
        }
        let signal = match ipc_signal(message, size) {
            Some(Routed::Sdk(said)) => {
                let metrics = matches!(said, kelpie_core::SdkMessage::Monitor(_));
                if let Ok(mut state) = self.sdk.lock() {
                    state.apply(said);
                }
                return if metrics {
                    Taken::Metrics
                } else {
                    Taken::Other
                };
            }
            Some(Routed::Signal(signal)) => signal,
            None => return Taken::Other,
        };
        if let (Some(process), ProcessSignal::Listening) = (&self.process, &signal) {
            process.claims.join(process.process);
        }
        match self.to.send(signal) {
            Ok(()) => Taken::Other,
            Err(_) => Taken::Closed,
        }
    }

    /// Write a queued message to the process; none: nothing will be queued any more.
    async fn send(&mut self, stream: &UnixStream, message: Option<String>) {
        match message {
            Some(message) => self.write(stream, message.as_bytes()).await,
            None => self.writing = false,
        }
    }

    /// Write to the process, unless a write failed before.
    async fn write(&mut self, stream: &UnixStream, bytes: &[u8]) {
        let mut rest = bytes;
        while self.writing && !rest.is_empty() {
            if stream.writable().await.is_err() {
                self.writing = false;
                return;
            }
            match stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => self.writing = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_once, shim_batch, CHUNK};
    use serde_json::json;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_read_that_takes_all_there_is_still_wakes_for_what_comes_next() {
        let (daemon, mut process) = tokio::net::UnixStream::pair().expect("pair");
        let mut chunk = [0u8; CHUNK];
        for message in [
            &b"{\"first\":1}\n"[..],
            b"{\"second\":2}\n",
            b"{\"third\":3}\n",
        ] {
            process.write_all(message).await.expect("write");
            tokio::time::timeout(Duration::from_secs(5), daemon.readable())
                .await
                .expect("woken for the message")
                .expect("readable");
            let n = read_once(&daemon, &mut chunk).expect("read");
            assert_eq!(&chunk[..n], message);
            // All of it was taken: no readiness is left, so no second read is made for it.
            let idle = tokio::time::timeout(Duration::from_millis(50), daemon.readable()).await;
            assert!(
                idle.is_err(),
                "still marked readable after a read that took all"
            );
        }
        // What fills the buffer leaves the socket marked readable: more may be waiting.
        process
            .write_all(&vec![b'x'; CHUNK + 10])
            .await
            .expect("write");
        daemon.readable().await.expect("readable");
        assert_eq!(read_once(&daemon, &mut chunk).expect("read"), CHUNK);
        daemon.readable().await.expect("readable");
        assert_eq!(read_once(&daemon, &mut chunk).expect("read"), 10);
        drop(process);
        daemon.readable().await.expect("readable");
        assert_eq!(read_once(&daemon, &mut chunk).expect("the end"), 0);
    }

    #[test]
    fn the_shims_batch_gives_its_messages_and_nothing_else_is_one() {
        let mut batch = json!({"kelpie": "batch", "messages": [
            {"node_version": "20.20.2"}, {"kelpie": "main-ran"}
        ]});
        assert_eq!(
            shim_batch(&mut batch),
            Some(vec![
                json!({"node_version": "20.20.2"}),
                json!({"kelpie": "main-ran"})
            ])
        );
        assert_eq!(
            shim_batch(&mut json!({"kelpie": "batch"})),
            Some(Vec::new())
        );
        assert_eq!(shim_batch(&mut json!({"kelpie": "main-ran"})), None);
        assert_eq!(shim_batch(&mut json!({"messages": []})), None);
        assert_eq!(shim_batch(&mut json!("ready")), None);
    }
}
