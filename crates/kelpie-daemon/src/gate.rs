//! What the control socket lets in, so that no client (a buggy tool, a hostile local process of
//! the same user) can exhaust the daemon's memory or descriptors and lock everyone else out:
//!
//! - at most a quarter of the open-files limit in connections at once ([`MAX_CONNECTIONS`](crate::descriptors::MAX_CONNECTIONS) at
//!   most), so apps keep the rest; when a new one comes at the cap, the one
//!   idle the longest (waiting for its next request, not in the middle of one) is closed to make
//!   room, so `list`, `stop` and `kill` always get in; when none is idle, the new one is told
//!   the daemon is busy and closed;
//! - the first frame must be a Hello of at most [`MAX_HELLO_LEN`] bytes, within
//!   [`HELLO_WAIT`];
//! - a frame whose length has been read must arrive whole within [`FRAME_WAIT`];
//! - the bodies being read, all connections together, hold at most [`BODY_BUDGET`] bytes (a
//!   small frame, a Hello or a `list`, `stop` or `kill`, always gets through).
//!
//! Daemon memory under such a client is thus bounded: [`BODY_BUDGET`], plus [`MAX_HELLO_LEN`]
//! and a few KB of buffers per connection: about 80 MiB at [`MAX_CONNECTIONS`](crate::descriptors::MAX_CONNECTIONS). Descriptors: [`MAX_CONNECTIONS`](crate::descriptors::MAX_CONNECTIONS), and one spare kept to accept and answer a
//! client when the process has no descriptor left (see `server.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

use crate::descriptors::connections_for;

/// The largest first frame: a Hello is about 40 bytes.
pub(crate) const MAX_HELLO_LEN: usize = 4096;
/// How long a new connection may take to send its Hello.
pub(crate) const HELLO_WAIT: Duration = Duration::from_secs(5);
/// How long a frame may take to arrive once its length is known.
pub(crate) const FRAME_WAIT: Duration = Duration::from_secs(30);
/// The frame bodies being read at once, all connections together.
pub(crate) const BODY_BUDGET: usize = 64 * 1024 * 1024;

/// The gate of one control socket (cheap to clone).
#[derive(Clone)]
pub(crate) struct Gate {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Connections served at once.
    max: usize,
    open: AtomicUsize,
    reading: AtomicUsize,
    /// Connections waiting for their next request, by when they started waiting (a counter):
    /// the first is the one idle the longest. Sending closes it.
    idle: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    next_idle: std::sync::atomic::AtomicU64,
}

/// A connection let in: counted until dropped.
pub(crate) struct Admitted {
    gate: Gate,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.inner.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection waiting for its next request: `closed` fires when the gate closes it to make
/// room for a new one. Dropping it (a request came) takes it off the idle list.
pub(crate) struct Idle {
    gate: Gate,
    key: u64,
    /// Fires when the gate wants the connection closed.
    pub closed: oneshot::Receiver<()>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.gate.inner.idle.lock() {
            idle.remove(&self.key);
        }
    }
}

/// Room for a frame body being read: released when dropped.
pub(crate) struct Reading {
    gate: Gate,
    len: usize,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.gate
            .inner
            .reading
            .fetch_sub(self.len, Ordering::Relaxed);
    }
}

impl Gate {
    /// A gate serving at most `max` connections at once.
    pub(crate) fn new(max: usize) -> Gate {
        Gate {
            inner: Arc::new(Inner {
                max,
                ..Inner::default()
            }),
        }
    }

    /// A gate for this process: a quarter of its open-files limit, between 16 and
    /// [`MAX_CONNECTIONS`](crate::descriptors::MAX_CONNECTIONS) (1024 from a limit of 4096 up).
    pub(crate) fn for_this_process() -> Gate {
        Gate::new(connections_for(kelpie_sys::fd_limit()))
    }

    /// Connections served at once.
    pub(crate) fn max(&self) -> usize {
        self.inner.max
    }

    /// Let a new connection in, closing the one idle the longest when at the cap; `None` when
    /// every connection is busy (it is then told so and closed).
    pub(crate) fn admit(&self) -> Option<Admitted> {
        let open = self.inner.open.fetch_add(1, Ordering::Relaxed);
        if open >= self.inner.max && !self.close_longest_idle() {
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Admitted { gate: self.clone() })
    }

    /// Close the connection idle the longest; false when none is idle. Also what frees a
    /// descriptor when the process has none left.
    pub(crate) fn close_longest_idle(&self) -> bool {
        let Ok(mut idle) = self.inner.idle.lock() else {
            return false;
        };
        while let Some((_, close)) = idle.pop_first() {
            if close.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// The connection waits for its next request.
    pub(crate) fn idle(&self) -> Idle {
        let key = self.inner.next_idle.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.insert(key, close);
        }
        Idle {
            gate: self.clone(),
            key,
            closed,
        }
    }

    /// Room for a body of `len` bytes, if the bodies being read leave it. A frame of up to
    /// [`MAX_HELLO_LEN`] bytes always has room (a Hello, `list`, `stop`, `kill`): those hold at
    /// most that much per connection, and must get through while big ones wait.
    pub(crate) fn reading(&self, len: usize) -> Option<Reading> {
        if len <= MAX_HELLO_LEN {
            return Some(Reading {
                gate: self.clone(),
                len: 0,
            });
        }
        let before = self.inner.reading.fetch_add(len, Ordering::Relaxed);
        if before + len > BODY_BUDGET {
            self.inner.reading.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        Some(Reading {
            gate: self.clone(),
            len,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::MAX_CONNECTIONS;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let gate = Gate::new(MAX_CONNECTIONS);
        let mut admitted: Vec<Admitted> = (0..MAX_CONNECTIONS)
            .map(|_| gate.admit().expect("room"))
            .collect();
        // None idle: the next is refused.
        assert!(gate.admit().is_none());
        assert_eq!(gate.open(), MAX_CONNECTIONS);
        let mut first = gate.idle();
        let mut second = gate.idle();
        admitted.push(gate.admit().expect("room made"));
        assert!(
            first.closed.try_recv().is_ok(),
            "the longest idle is closed"
        );
        assert!(second.closed.try_recv().is_err(), "the other one stays");
        // Until the closed connection's task ends, one more is open; then the count is back.
        assert_eq!(gate.open(), MAX_CONNECTIONS + 1);
        drop(first);
        drop(admitted.remove(0));
        assert_eq!(gate.open(), MAX_CONNECTIONS);
    }

    #[test]
    fn bodies_being_read_are_bounded_together() {
        let gate = Gate::new(MAX_CONNECTIONS);
        let a = gate.reading(BODY_BUDGET - 10_000).expect("room");
        assert!(gate.reading(10_001).is_none(), "past the budget");
        let b = gate.reading(10_000).expect("within it");
        let small = gate
            .reading(MAX_HELLO_LEN)
            .expect("a small frame always gets through");
        drop(a);
        assert!(gate.reading(BODY_BUDGET - 10_000).is_some());
        drop((b, small));
    }
}
