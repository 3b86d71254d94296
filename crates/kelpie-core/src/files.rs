//! Where an app's files go, as PM2 names them: what counts as "no file", and each instance's
//! pid file. Shared by the daemon (which writes them) and the list (which shows them).

use crate::AppSpec;
use std::path::PathBuf;

/// Paths that mean "discard this stream" (PM2 accepts both).
pub fn is_discard(path: &str) -> bool {
    path == "/dev/null" || path == "NULL"
}

/// Where instance `pm_id`'s pid is written (PM2's `pid_file`): as PM2 does, a path ending in
/// `.pid` (or `-<n>.pid`) always gets the instance's id (`app.pid` → `app-0.pid`, even for one
/// instance in fork mode); another path is used as it is.
pub fn pid_file(spec: &AppSpec, pm_id: u32) -> Option<PathBuf> {
    let path = spec.pid_file.as_deref().filter(|p| !is_discard(p))?;
    let Some(stem) = path.strip_suffix(".pid") else {
        return Some(PathBuf::from(path));
    };
    let stem = match stem.rsplit_once('-') {
        Some((before, number))
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            before
        }
        _ => stem,
    };
    Some(PathBuf::from(format!("{stem}-{pm_id}.pid")))
}
