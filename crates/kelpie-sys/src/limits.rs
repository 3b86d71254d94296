//! The daemon's limit on open descriptors. Every app costs it several (two pipes, a notify
//! socket, a pidfd, and the copies its keeper thread keeps), so the soft limit a shell gives
//! (often 1024) would stop a daemon at a couple of hundred apps. The daemon raises its soft
//! limit to the hard one; its apps get the limit it started with, as under any other manager
//! (some old programs still use `select()`, which breaks above 1024).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit before [`raise_fd_limit`], for the apps; 0 while not raised.
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(0);

/// Raise the soft limit on open descriptors to the hard limit. Returns (before, after).
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let limit = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let before = limit.current.unwrap_or(u64::MAX);
    let max = limit.maximum.unwrap_or(u64::MAX);
    if before >= max {
        return Ok((before, before));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    ORIGINAL_SOFT.store(before, Ordering::Relaxed);
    Ok((before, max))
}

/// The soft limit on open descriptors now (`u64::MAX` for no limit).
pub fn fd_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The limit an app gets: the soft limit the daemon started with, when it raised it since.
pub(crate) fn original_nofile() -> Option<libc::rlimit> {
    let original = ORIGINAL_SOFT.load(Ordering::Relaxed);
    if original == 0 {
        return None;
    }
    let limit = getrlimit(Resource::Nofile);
    if limit.current.unwrap_or(u64::MAX) <= original {
        return None;
    }
    // A libc::rlimit: the spawned child sets it with setrlimit(2) before it execs.
    Some(libc::rlimit {
        rlim_cur: original,
        rlim_max: limit.maximum.unwrap_or(libc::RLIM_INFINITY),
    })
}
