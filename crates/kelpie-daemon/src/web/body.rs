//! Response bodies: a whole answer, or a stream fed through a channel (server-sent events).

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A response body.
pub(super) enum Body {
    /// All of it (taken once sent).
    Full(Option<Bytes>),
    /// Chunks as they come from the task that writes them; the body ends when every sender
    /// is gone, and the task with the body (the client went away).
    Stream {
        chunks: mpsc::Receiver<Bytes>,
        _writer: crate::tasks::Owned<()>,
    },
}

impl Body {
    /// A whole body.
    pub(super) fn full(bytes: Bytes) -> Body {
        Body::Full(Some(bytes))
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
            Body::Stream { chunks, .. } => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
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
