//! The daemon's file replacement (`kelpie_sys`'s, durable or not), and where an unreadable file
//! is kept aside.

pub(crate) use kelpie_sys::{
    atomic_write, atomic_write_keeping, atomic_write_mode, replace_unsynced, temp_names_glob,
};
use std::path::Path;

/// Where to move an unreadable `path` (`state.json` → `state.json.corrupt-<ms>`) to keep it:
/// never over an earlier copy.
pub(crate) fn aside_path(path: &Path) -> std::path::PathBuf {
    let base = format!("corrupt-{}", crate::clock::wall_ms());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut aside = path.with_file_name(format!("{name}.{base}"));
    let mut n = 1;
    while aside.symlink_metadata().is_ok() {
        aside = path.with_file_name(format!("{name}.{base}-{n}"));
        n += 1;
    }
    aside
}
