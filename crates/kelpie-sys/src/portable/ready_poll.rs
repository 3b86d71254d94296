//! [`crate::ReadySet`] without epoll: the descriptors and their tokens in a list, asked all at
//! once with `poll(2)` at each look. A look costs in proportion to the descriptors kept
//! (epoll's costs in proportion to those ready); the daemon looks on a timer, so that is a
//! few microseconds per hundred links, per look.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;

/// The descriptors kept, by number, with their tokens.
#[derive(Default)]
pub(crate) struct PollSet {
    kept: Mutex<Vec<(RawFd, u64)>>,
}

impl PollSet {
    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<(RawFd, u64)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut kept = self.kept();
        if kept.iter().any(|(kept, _)| *kept == fd.as_raw_fd()) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        kept.push((fd.as_raw_fd(), token));
        Ok(())
    }

    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut kept = self.kept();
        let before = kept.len();
        kept.retain(|(kept, _)| *kept != fd.as_raw_fd());
        if kept.len() == before {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(())
    }

    pub(crate) fn ready_now(&self, ready: &mut Vec<u64>, max: usize) -> io::Result<()> {
        let kept = self.kept();
        // SAFETY: each number was added with a borrow of an open descriptor that the caller
        // keeps open until it removes it (as epoll's interest list is kept), and the list's
        // lock is held for the look.
        let borrowed: Vec<BorrowedFd<'_>> = kept
            .iter()
            .map(|(fd, _)| unsafe { BorrowedFd::borrow_raw(*fd) })
            .collect();
        let mut fds: Vec<PollFd<'_>> = borrowed
            .iter()
            .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
            .collect();
        match poll(&mut fds, Some(&Timespec::default())) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let some = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
        ready.extend(
            fds.iter()
                .zip(kept.iter())
                .filter(|(fd, _)| fd.revents().intersects(some))
                .map(|(_, (_, token))| *token)
                .take(max),
        );
        Ok(())
    }
}
