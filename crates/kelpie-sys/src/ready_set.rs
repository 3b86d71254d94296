//! A set of descriptors asked, when the caller chooses, which of them have something to read:
//! an epoll instance of its own, never waited on. The daemon's event loop would wake up each
//! time one of its descriptors became readable; descriptors kept here wake nobody, and are
//! looked at together on a timer (see the daemon's link pacing).

#[cfg(target_os = "linux")]
use rustix::event::{epoll, Timespec};
use std::io;
use std::os::fd::BorrowedFd;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};

use crate::portable::ready_poll::PollSet;

/// Descriptors, each with a number the caller gave it.
pub struct ReadySet {
    #[cfg(target_os = "linux")]
    epoll: Option<OwnedFd>,
    /// The portable backend's list (see `portable/ready_poll.rs`).
    polled: PollSet,
}

impl ReadySet {
    pub fn new() -> io::Result<ReadySet> {
        Ok(ReadySet {
            #[cfg(target_os = "linux")]
            epoll: if crate::platform::portable() {
                None
            } else {
                Some(epoll::create(epoll::CreateFlags::CLOEXEC)?)
            },
            polled: PollSet::default(),
        })
    }

    /// Watch `fd` for something to read (or its other end closing), as `token`.
    /// Level-triggered: a descriptor with unread bytes is ready at every look. The caller
    /// keeps `fd` open until it removes it.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(epoll) = &self.epoll {
            return Self::epoll_add(epoll, fd, token);
        }
        self.polled.add(fd, token)
    }

    #[cfg(target_os = "linux")]
    fn epoll_add(epoll: &OwnedFd, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        epoll::add(
            epoll,
            fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
        Ok(())
    }

    /// Stop watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(epoll) = &self.epoll {
            epoll::delete(epoll, fd)?;
            return Ok(());
        }
        self.polled.remove(fd)
    }

    /// The tokens of the descriptors ready now (without waiting), at most `max`, added to
    /// `ready`.
    pub fn ready_now(&self, ready: &mut Vec<u64>, max: usize) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(epoll) = &self.epoll {
            return Self::epoll_ready(epoll, ready, max);
        }
        self.polled.ready_now(ready, max)
    }

    #[cfg(target_os = "linux")]
    fn epoll_ready(epoll: &OwnedFd, ready: &mut Vec<u64>, max: usize) -> io::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(max.max(1));
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match epoll::wait(
            epoll.as_fd(),
            rustix::buffer::spare_capacity(&mut events),
            Some(&zero),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        ready.extend(events.iter().map(|event| event.data.u64()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_descriptors_with_something_to_read_are_ready() {
        let set = ReadySet::new().expect("epoll");
        let (mut a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (c, d) = std::os::unix::net::UnixStream::pair().expect("pair");
        set.add(b.as_fd(), 7).expect("add");
        set.add(d.as_fd(), 9).expect("add");
        let mut ready = Vec::new();
        set.ready_now(&mut ready, 16).expect("look");
        assert!(ready.is_empty(), "nothing was written: {ready:?}");
        a.write_all(b"x").expect("write");
        set.ready_now(&mut ready, 16).expect("look");
        assert_eq!(ready, [7]);
        // Level-triggered: still unread, still ready; a closed end is ready too. The other
        // tests of this process spawn children, and a child holds a copy of every descriptor
        // from its clone to its exec: until then `c` is not closed yet, so look again a while.
        drop(c);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            ready.clear();
            set.ready_now(&mut ready, 16).expect("look");
            ready.sort_unstable();
            if ready == [7, 9] || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(ready, [7, 9]);
        set.remove(b.as_fd()).expect("remove");
        ready.clear();
        set.ready_now(&mut ready, 16).expect("look");
        assert_eq!(ready, [9]);
    }
}
