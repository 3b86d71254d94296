//! How far a directory met on a guarded walk may be believed: who owns it and who may write it.

use rustix::fs as rfs;
use std::os::fd::OwnedFd;

/// How far a directory's entries can be believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trust {
    /// Owned by root or the caller, writable by nobody else.
    Trusted,
    /// Writable by others, but sticky and owned by a trusted user: only entries owned by a
    /// trusted user can be believed.
    Sticky,
    /// Another user may change its entries.
    Open,
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

// `st_mode`'s type differs between systems (u32 on Linux, u16 on macOS).
#[allow(clippy::unnecessary_cast)]
pub(super) fn trust_of(stat: &rfs::Stat) -> Trust {
    let owner = stat.st_uid;
    if owner != 0 && owner != euid() {
        return Trust::Open;
    }
    let mode = stat.st_mode as u32;
    if mode & 0o022 == 0 {
        Trust::Trusted
    } else if mode & 0o1000 != 0 {
        Trust::Sticky
    } else {
        Trust::Open
    }
}

pub(super) fn is_trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
// `f_type`'s type differs between Linux architectures.
#[allow(clippy::unnecessary_cast)]
pub(super) fn on_procfs(fd: &OwnedFd) -> bool {
    // PROC_SUPER_MAGIC.
    rfs::fstatfs(fd).is_ok_and(|fs| fs.f_type as i64 == 0x9fa0)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn on_procfs(_fd: &OwnedFd) -> bool {
    false
}
