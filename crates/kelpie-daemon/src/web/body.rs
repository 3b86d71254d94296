//! Response bodies: a whole answer, or a stream fed through a channel (server-sent events),
//! bounded per client.
//!
//! A live stream's writer never waits for its client, and the client's share of the daemon's
//! memory is bounded: what waits for it is counted in bytes ([`MAX_QUEUED`]), and a client that
//! takes nothing for [`STALLED_AFTER`] while something waits, or lets more than that bound pile
//! up, is cut: its stream gets a last `cut` event and ends (the page reconnects at once).

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Bytes waiting for one client, at most (beyond what hyper and the socket hold).
pub(super) const MAX_QUEUED: usize = 256 * 1024;
/// A client that takes nothing for this long while bytes wait for it is cut (and its
/// connection closed: `super::patient`).
use super::patient::STALLED_AFTER;
/// Chunks waiting at most (each event is one; the bytes are the real bound).
const MAX_CHUNKS: usize = 1024;

/// The last event of a stream cut for its client.
const CUT_EVENT: &str = "event: cut\ndata: {\"reason\":\"this client read too slowly; the stream ended (reconnect to go on)\"}\n\n";

/// A response body.
pub(super) enum Body {
    /// All of it (taken once sent).
    Full(Option<Bytes>),
    /// Chunks as they come from the task that writes them; the body ends when every sender
    /// is gone (after a `cut` event when it was cut), and the task with the body (the client
    /// went away).
    Stream {
        chunks: mpsc::Receiver<Bytes>,
        gauge: Arc<Gauge>,
        _writer: crate::tasks::Owned<()>,
    },
}

/// What waits for one stream's client.
#[derive(Default)]
pub(super) struct Gauge {
    queued: AtomicUsize,
    /// When the client last took a chunk (ms on the daemon's clock), or the stream began.
    taken_at_ms: AtomicU64,
    /// Cut: nothing more is queued; a `cut` event ends it.
    cut: AtomicBool,
    /// The `cut` event was sent.
    told: AtomicBool,
}

fn now_ms() -> u64 {
    crate::clock::now().mono_ms
}

/// The sending side of a stream: queues chunks for the client, or cuts it.
#[derive(Clone)]
pub(super) struct Outlet {
    tx: mpsc::Sender<Bytes>,
    gauge: Arc<Gauge>,
}

/// The stream was cut for its client, or the client is gone: the writer stops.
#[derive(Debug)]
pub(super) struct Closed;

impl Outlet {
    /// Queue `chunk` for the client, never waiting for it: a client over its bound is cut.
    pub(super) fn send(&self, chunk: Bytes) -> Result<(), Closed> {
        let gauge = &self.gauge;
        if gauge.cut.load(Ordering::Relaxed) || self.tx.is_closed() {
            return Err(Closed);
        }
        let queued = gauge.queued.load(Ordering::Relaxed);
        let stalled = queued > 0
            && now_ms().saturating_sub(gauge.taken_at_ms.load(Ordering::Relaxed))
                >= STALLED_AFTER.as_millis() as u64;
        if queued + chunk.len() > MAX_QUEUED || stalled {
            gauge.cut.store(true, Ordering::Relaxed);
            return Err(Closed);
        }
        let len = chunk.len();
        gauge.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.try_send(chunk).is_err() {
            gauge.queued.fetch_sub(len, Ordering::Relaxed);
            gauge.cut.store(true, Ordering::Relaxed);
            return Err(Closed);
        }
        Ok(())
    }

    /// Queue `chunk` for the client once it has taken enough of what came before (a
    /// download, which must arrive whole, rather than live updates, which may be cut).
    pub(super) async fn send_waiting(&self, chunk: Bytes) -> Result<(), Closed> {
        let len = chunk.len();
        self.gauge.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(chunk).await.is_err() {
            self.gauge.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(Closed);
        }
        Ok(())
    }

    /// Until the client is gone.
    pub(super) async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl Body {
    /// A whole body.
    pub(super) fn full(bytes: Bytes) -> Body {
        Body::Full(Some(bytes))
    }

    /// A stream written by `writer` (given its outlet), which is aborted when the body drops.
    pub(super) fn stream<F>(writer: impl FnOnce(Outlet) -> F) -> Body
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, chunks) = mpsc::channel(MAX_CHUNKS);
        let gauge = Arc::new(Gauge::default());
        gauge.taken_at_ms.store(now_ms(), Ordering::Relaxed);
        let outlet = Outlet {
            tx,
            gauge: gauge.clone(),
        };
        let writer = crate::tasks::spawn(writer(outlet));
        Body::Stream {
            chunks,
            gauge,
            _writer: writer,
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { chunks, gauge, .. } => match chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    gauge.queued.fetch_sub(chunk.len(), Ordering::Relaxed);
                    gauge.taken_at_ms.store(now_ms(), Ordering::Relaxed);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(None)
                    if gauge.cut.load(Ordering::Relaxed)
                        && !gauge.told.swap(true, Ordering::Relaxed) =>
                {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                        CUT_EVENT.as_bytes(),
                    )))))
                }
                // Cut: the writer ends at its next send, which closes the channel.
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream { .. } => SizeHint::default(),
        }
    }
}
