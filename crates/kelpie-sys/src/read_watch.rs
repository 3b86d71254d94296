//! A descriptor registered with tokio's event loop for reading, that is given back whole.
//!
//! tokio's safe ways to register a descriptor it did not open take it for good: its pipe
//! receiver closes the descriptor when the registration fails, and may close it when taking it
//! out of the event loop fails. The log thread registers the pipe of an app's output itself
//! (the keeper's client knows the pipe by its number), and the pipe must outlive any failure:
//! with those, each registration cost a second descriptor, made and closed around it (four
//! system calls per pipe, eight per restart of an app). `AsyncFd` gives the descriptor back
//! on failure, but registering with it is `unsafe` (the descriptor must stay open and the same
//! for as long as it is registered), so it lives here, where that is kept.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::{Interest, Ready};

/// An owned descriptor registered with the current runtime's event loop, for reading.
/// Edge-triggered: each write to it is signalled once.
#[derive(Debug)]
pub struct ReadWatch(AsyncFd<OwnedFd>);

impl ReadWatch {
    /// Register `fd` with the current runtime's event loop (call it on the runtime); `fd` is
    /// given back, with the reason, when it cannot be.
    pub fn register(fd: OwnedFd) -> Result<ReadWatch, (OwnedFd, io::Error)> {
        // SAFETY: `OwnedFd` keeps its descriptor open until it is dropped, and the `AsyncFd`
        // holds it until it is dropped itself or `into_fd` takes it out (which deregisters it
        // first). It is never lent mutably (this type gives no `get_mut`), so it stays the same
        // descriptor for as long as it is registered.
        match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(registered) => Ok(ReadWatch(registered)),
            Err(refused) => Err(refused.into_parts()),
        }
    }

    /// Wait for a signal not taken yet, and take it: the next wait is for the next write (one
    /// that came since this one was signalled is kept). What it said: whether every writer
    /// has closed the descriptor too (`is_read_closed`).
    pub async fn next_readable(&self) -> io::Result<Ready> {
        let mut signalled = self.0.ready(Interest::READABLE).await?;
        let ready = signalled.ready();
        signalled.clear_ready();
        Ok(ready)
    }

    /// Out of the event loop: the same descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.0.into_inner()
    }
}

impl AsFd for ReadWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[tokio::test]
    async fn a_write_is_signalled_once_and_the_descriptor_comes_back_the_same() {
        let (reader, mut app) = std::io::pipe().expect("pipe");
        let reader = crate::PipeReader::checked(reader.into())
            .expect("a pipe")
            .into_fd();
        let number = reader.as_raw_fd();
        let watched = ReadWatch::register(reader).expect("registered");
        assert_eq!(watched.as_fd().as_raw_fd(), number, "the same descriptor");
        app.write_all(b"one\n").expect("write");
        let ready = tokio::time::timeout(Duration::from_secs(5), watched.next_readable())
            .await
            .expect("the write is signalled")
            .expect("readable");
        assert!(ready.is_readable() && !ready.is_read_closed());
        let again = tokio::time::timeout(Duration::from_millis(50), watched.next_readable()).await;
        assert!(again.is_err(), "taken: nothing new was written");
        drop(app);
        let ready = tokio::time::timeout(Duration::from_secs(5), watched.next_readable())
            .await
            .expect("the end is signalled")
            .expect("readable");
        assert!(ready.is_read_closed());
        let fd = watched.into_fd();
        assert_eq!(fd.as_raw_fd(), number, "given back, still open");
        assert!(crate::pipe_hung_up(fd.as_fd()));
    }

    #[tokio::test]
    async fn a_descriptor_that_cannot_be_registered_is_given_back() {
        // epoll refuses regular files.
        let file = tempfile::tempfile().expect("temp file");
        let number = file.as_raw_fd();
        let (fd, _) = ReadWatch::register(file.into()).expect_err("refused");
        assert_eq!(fd.as_raw_fd(), number, "the same descriptor, still open");
        assert!(rustix::fs::fstat(&fd).is_ok());
    }
}
