//! The daemon's limit on open descriptors. Every app costs it several (two pipes, a notify
//! socket, a pidfd, and the copies its keeper thread keeps), so the soft limit a shell gives
//! (often 1024) would stop a daemon at a couple of hundred apps. The daemon raises its soft
//! limit to the hard one; its apps get the limit it started with, as under any other manager
//! (some old programs still use `select()`, which breaks above 1024).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit before [`raise_fd_limit`], for the apps; 0 while not raised.
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(0);

/// Raise the soft limit on open descriptors to the hard limit. Returns (before, after).
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a live local of that type.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok((before, before));
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit from a live local of that type.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == -1 {
        return Err(io::Error::last_os_error());
    }
    ORIGINAL_SOFT.store(before, Ordering::Relaxed);
    Ok((before, raised.rlim_cur))
}

/// The limit an app gets: the soft limit the daemon started with, when it raised it since.
pub(crate) fn original_nofile() -> Option<libc::rlimit> {
    let original = ORIGINAL_SOFT.load(Ordering::Relaxed);
    if original == 0 {
        return None;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a live local of that type.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1
        || limit.rlim_cur <= original
    {
        return None;
    }
    limit.rlim_cur = original;
    Some(limit)
}
