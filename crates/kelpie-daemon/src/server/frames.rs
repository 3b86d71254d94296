//! The control socket's frames: a length, then that many bytes of JSON, read within the
//! gate's bounds (size, time, the bytes all connections may hold at once).

use crate::gate::Gate;
use kelpie_proto::encode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Why a frame was not read: the peer closed, it broke a bound, or the socket failed.
pub(super) enum FrameProblem {
    /// The peer closed the connection between frames.
    Closed,
    /// Said to the peer, then the connection is closed.
    Refused(String),
    /// The socket failed (nothing to say to the peer).
    Io,
}

/// Read one frame of at most `max` bytes: its length (waited for as long as the peer likes,
/// unless `idle` fires first), then its body within [`gate::FRAME_WAIT`] and the gate's budget.
pub(super) async fn read_frame(
    stream: &mut UnixStream,
    gate: &Gate,
    max: usize,
    idle: Option<crate::gate::Idle>,
) -> Result<Vec<u8>, FrameProblem> {
    let len = match idle {
        Some(mut idle) => tokio::select! {
            len = stream.read_u32() => len,
            _ = &mut idle.closed => return Err(FrameProblem::Refused(
                "closed to make room: the daemon serves as many connections as it can, and this one was idle the longest".into(),
            )),
        },
        None => stream.read_u32().await,
    };
    let len = match len {
        Ok(len) => len as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameProblem::Closed)
        }
        Err(_) => return Err(FrameProblem::Io),
    };
    if len > max {
        return Err(FrameProblem::Refused(format!(
            "frame of {len} bytes refused (at most {max} here)"
        )));
    }
    let Some(_room) = gate.reading(len) else {
        return Err(FrameProblem::Refused(format!(
            "frame of {len} bytes refused: the daemon is reading {} MiB of other requests already; try again",
            crate::gate::BODY_BUDGET / (1024 * 1024)
        )));
    };
    // Grown as the bytes arrive: a client that only sends a length reserves nothing.
    let mut body = Vec::new();
    let mut limited = (&mut *stream).take(len as u64);
    let read = limited.read_to_end(&mut body);
    match tokio::time::timeout(crate::gate::FRAME_WAIT, read).await {
        Ok(Ok(_)) if body.len() == len => Ok(body),
        Ok(_) => Err(FrameProblem::Io),
        Err(_) => Err(FrameProblem::Refused(format!(
            "a frame of {len} bytes did not arrive within {} s",
            crate::gate::FRAME_WAIT.as_secs()
        ))),
    }
}

pub(super) async fn write_message<T: serde::Serialize>(
    stream: &mut UnixStream,
    value: &T,
) -> std::io::Result<()> {
    let frame = encode(value)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(&frame).await
}
