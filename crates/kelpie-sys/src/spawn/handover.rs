//! A spawn taken apart and put back together, to move it to the spawner thread's descriptor
//! table (see `spawner.rs`): its descriptors go over a socket pair, the rest through memory.

use super::Spawn;
use crate::creds::Identity;
use crate::exec::Prepared;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A spawn's descriptors, taken out of it to move it to another descriptor table.
pub(crate) struct Descriptors {
    /// stdin, stdout, stderr, then the cgroup directory (if any), then the `cgroup.procs` files.
    pub(crate) owned: Vec<OwnedFd>,
    /// The sources of the descriptors placed in the child (as numbers of this table: their
    /// owner is the caller of [`Spawn::new`]).
    pub(crate) borrowed: Vec<RawFd>,
    /// Copies of `borrowed` received in another table, kept open until the spawn is done.
    kept: Vec<OwnedFd>,
}

impl Descriptors {
    /// The descriptors of `parts` as received in another table, in the order of
    /// [`Spawn::into_parts`]: owned ones, then copies of the borrowed ones.
    pub(crate) fn from_received(mut fds: Vec<OwnedFd>, parts: &Parts) -> io::Result<Descriptors> {
        let owned = 3 + usize::from(parts.has_cgroup) + parts.joins;
        if fds.len() != owned + parts.exec.source_count() {
            return Err(io::Error::other("a spawn came with the wrong descriptors"));
        }
        let kept = fds.split_off(owned);
        Ok(Descriptors {
            owned: fds,
            borrowed: kept.iter().map(AsRawFd::as_raw_fd).collect(),
            kept,
        })
    }
}

/// A spawn without its descriptors (see [`Spawn::into_parts`]).
pub(crate) struct Parts {
    exec: Prepared,
    cwd: CString,
    nice: Option<i32>,
    identity: Option<Identity>,
    nofile: Option<libc::rlimit>,
    has_cgroup: bool,
    joins: usize,
}

impl Spawn {
    /// The highest number among its descriptors (see [`crate::spawner`]).
    pub(crate) fn highest_fd(&self) -> RawFd {
        [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .chain(&self.cgroup)
            .chain(&self.join)
            .map(AsRawFd::as_raw_fd)
            .chain(self.exec.sources())
            .max()
            .unwrap_or(0)
    }

    /// The spawn as its descriptors and the rest, to move it to another descriptor table.
    pub(crate) fn into_parts(self) -> (Descriptors, Parts) {
        let Spawn {
            exec,
            cwd,
            stdin,
            stdout,
            stderr,
            nice,
            identity,
            nofile,
            cgroup,
            join,
            kept,
        } = self;
        let parts = Parts {
            cwd,
            nice,
            identity,
            nofile,
            has_cgroup: cgroup.is_some(),
            joins: join.len(),
            exec,
        };
        let mut owned = vec![stdin, stdout, stderr];
        owned.extend(cgroup);
        owned.extend(join);
        let fds = Descriptors {
            owned,
            borrowed: parts.exec.sources(),
            kept,
        };
        (fds, parts)
    }

    /// The spawn again from [`Spawn::into_parts`]'s halves (its descriptors possibly received
    /// in another table).
    pub(crate) fn from_parts(mut parts: Parts, fds: Descriptors) -> io::Result<Spawn> {
        let wrong = || io::Error::other("a spawn's descriptors do not match it");
        let mut owned = fds.owned.into_iter();
        let (stdin, stdout, stderr) = (
            owned.next().ok_or_else(wrong)?,
            owned.next().ok_or_else(wrong)?,
            owned.next().ok_or_else(wrong)?,
        );
        let cgroup = if parts.has_cgroup {
            Some(owned.next().ok_or_else(wrong)?)
        } else {
            None
        };
        let join: Vec<OwnedFd> = owned.collect();
        if join.len() != parts.joins || fds.borrowed.len() != parts.exec.source_count() {
            return Err(wrong());
        }
        parts.exec.set_sources(&fds.borrowed);
        Ok(Spawn {
            exec: parts.exec,
            cwd: parts.cwd,
            stdin,
            stdout,
            stderr,
            nice: parts.nice,
            identity: parts.identity,
            nofile: parts.nofile,
            cgroup,
            join,
            kept: fds.kept,
        })
    }
}
