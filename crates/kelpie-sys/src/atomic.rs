//! File replacement that never leaves a mix of old and new: durable (a crash at any moment
//! leaves the old content or the new) for the daemon's state, the dump, the Node shim, the
//! update hand-over file and the CLI's boot units; unsynced for pid files.

use crate::guarded::{guarded_parent, GuardedDir};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes` so that a crash at any moment leaves either the old or the new
/// content, never a mix: temp file, fsync, rename, fsync of the directory. Mode 0600: the files
/// hold the apps' environments.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_mode(path, bytes, 0o600)
}

/// [`atomic_write`], keeping the content it replaces as `backup` (in the same directory), which
/// changes only once the new content is in place: the old file is hard-linked aside (no copy,
/// no space) after the new one is written and synced, and renamed to `backup` after the new
/// one is renamed over `path`. So a write that fails (a full disk) leaves `path` and `backup` as
/// they were, and the two are never one file that a write into `path` in place would change
/// both of. With no `path` to replace, `backup` stays as it is.
pub fn atomic_write_keeping(path: &Path, bytes: &[u8], backup: &Path) -> std::io::Result<()> {
    if backup.parent() != path.parent() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not beside {}", backup.display(), path.display()),
        ));
    }
    let backup_name = backup.file_name().unwrap_or_default().to_os_string();
    replace(path, bytes, 0o600, true, Some(backup_name))
}

/// [`atomic_write`], with the file's mode (exactly, whatever the umask).
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, bytes, mode, true, None)
}

/// Replace `path` with `bytes` so that a reader sees the old content or the new, never a
/// mix; not synced to disk, for files that mean nothing after a crash of the machine (pid
/// files). Its missing directories are made (mode 0755) by the same guarded walk.
pub fn replace_unsynced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let (dir, name) = guarded_parent(path, Some(0o755))?;
    replace_in(&dir, &name, bytes, mode, false, None)
}

/// The start of the names of the temporary files this process writes beside `path`
/// (`.<name>.tmp<pid>.`, then 16 unpredictable hex digits): a watcher that must not see the
/// writes ignores them ([`temp_names_glob`]).
fn temp_prefix(name: &OsStr) -> String {
    format!(".{}.tmp{}.", name.to_string_lossy(), std::process::id())
}

/// A glob of the names of every temporary file this process writes ([`temp_prefix`]).
pub fn temp_names_glob() -> String {
    format!(".*.tmp{}.*", std::process::id())
}

#[cfg(test)]
thread_local! {
    /// The next write fails once its temporary file is made (a full disk, in a test).
    static FAIL_NEXT_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Temp file (made exclusively, with an unpredictable name, in the directory reached by a
/// guarded walk: no link another user placed is followed), rename; with `durable`, the file and
/// then its directory synced; with `backup`, the old file kept under that name.
fn replace(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    backup: Option<OsString>,
) -> std::io::Result<()> {
    let (dir, name) = guarded_parent(path, None)?;
    replace_in(&dir, &name, bytes, mode, durable, backup)
}

fn replace_in(
    dir: &GuardedDir,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    backup: Option<OsString>,
) -> std::io::Result<()> {
    let (mut file, tmp) = dir.create_temp(&temp_prefix(name), mode)?;
    let mut kept: Option<OsString> = None;
    let written = (|| {
        #[cfg(test)]
        if FAIL_NEXT_WRITE.with(|fail| fail.replace(false)) {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        if let Some(backup) = &backup {
            kept = keep_aside(dir, name, backup)?;
        }
        dir.rename(&tmp, name)?;
        if let (Some(kept), Some(backup)) = (&kept, &backup) {
            dir.rename(kept, backup)?;
        }
        if durable {
            dir.sync()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = dir.remove_file(&tmp);
        if let Some(kept) = kept {
            let _ = dir.remove_file(&kept);
        }
    }
    written
}

/// A second name for `name` (none when there is no `name`), to become the backup.
fn keep_aside(dir: &GuardedDir, name: &OsStr, backup: &OsStr) -> std::io::Result<Option<OsString>> {
    for _ in 0..16 {
        let (file, aside) = dir.create_temp(&temp_prefix(backup), 0o600)?;
        drop(file);
        // linkat will not replace: the name just made is removed and taken at once; another
        // process that takes it meanwhile makes the link fail, and a new name is tried.
        dir.remove_file(&aside)?;
        match dir.hard_link(name, &aside) {
            Ok(()) => return Ok(Some(aside)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::from_raw_os_error(17))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_content_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        atomic_write(&path, b"one").expect("write");
        atomic_write(&path, b"two").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn the_backup_changes_only_once_the_new_content_is_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, backup) = (
            dir.path().join("state.json"),
            dir.path().join("state.json.bak"),
        );
        atomic_write_keeping(&path, b"one", &backup).expect("first");
        assert!(!backup.exists(), "nothing replaced, nothing kept");
        atomic_write_keeping(&path, b"two", &backup).expect("second");
        assert_eq!(fs::read(&backup).expect("backup"), b"one");
        // A write that fails (its temp file cannot be made) changes neither file, and the two
        // stay two files: a write into `path` in place leaves the backup whole.
        FAIL_NEXT_WRITE.with(|fail| fail.set(true));
        assert!(atomic_write_keeping(&path, b"three", &backup).is_err());
        assert_eq!(fs::read(&path).expect("state"), b"two");
        assert_eq!(fs::read(&backup).expect("backup"), b"one");
        let inode = |p: &Path| fs::metadata(p).expect("meta").ino();
        assert_ne!(inode(&path), inode(&backup));
        fs::write(&path, b"garbage").expect("in place");
        assert_eq!(fs::read(&backup).expect("backup"), b"one");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file is left behind: {names:?}");
    }
}
