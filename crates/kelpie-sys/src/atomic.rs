//! File replacement that never leaves a mix of old and new: durable (a crash at any moment
//! leaves the old content or the new) for the daemon's state, the dump, the Node shim, the
//! update hand-over file and the CLI's boot units; unsynced for pid files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replace `path` with `bytes` so that a crash at any moment leaves either the old or the new
/// content, never a mix: temp file, fsync, rename, fsync of the directory. Mode 0600: the files
/// hold the apps' environments.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_mode(path, bytes, 0o600)
}

/// [`atomic_write`], keeping the content it replaces as `backup`, which changes only once the
/// new content is in place: the old file is hard-linked aside (no copy, no space) after the new
/// one is written and synced, and renamed to `backup` after the new one is renamed over `path`.
/// So a write that fails (a full disk) leaves `path` and `backup` as they were, and the two are
/// never one file that a write into `path` in place would change both of. With no `path` to
/// replace, `backup` stays as it is.
pub fn atomic_write_keeping(path: &Path, bytes: &[u8], backup: &Path) -> std::io::Result<()> {
    let kept = temp_path(backup);
    replace_with(path, bytes, 0o600, true, || {
        let _ = fs::remove_file(&kept);
        match fs::hard_link(path, &kept) {
            Ok(()) => Ok(Some(kept.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    })
    .and_then(|kept| match kept {
        Some(kept) => fs::rename(kept, backup),
        None => Ok(()),
    })
}

/// [`atomic_write`], with the file's mode (exactly, whatever the umask).
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, bytes, mode, true)
}

/// Replace `path` with `bytes` so that a reader sees the old content or the new, never a
/// mix; not synced to disk, for files that mean nothing after a crash of the machine (pid
/// files).
pub fn replace_unsynced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, bytes, mode, false)
}

/// The temporary file this process writes beside `path` before renaming it to `path`
/// (`dir/.<name>.tmp<pid>`): a watcher that must not see the writes ignores it too.
fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{file_name}.tmp{}", std::process::id()))
}

/// A glob of the names of every temporary file this process writes ([`temp_path`]).
pub fn temp_names_glob() -> String {
    format!(".*.tmp{}", std::process::id())
}

/// Temp file, rename; with `durable`, the file and then its directory synced.
fn replace(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    replace_with(path, bytes, mode, durable, || Ok(None)).map(|_| ())
}

/// [`replace`], running `before_rename` once the new content is written (and synced), just
/// before it is renamed over `path`. What it made (a path) is removed again if the rename
/// fails, and returned otherwise.
fn replace_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    before_rename: impl FnOnce() -> std::io::Result<Option<PathBuf>>,
) -> std::io::Result<Option<PathBuf>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let mut made = None;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        made = before_rename()?;
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(made),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            if let Some(made) = made {
                let _ = fs::remove_file(made);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        fs::create_dir(temp_path(&path)).expect("block the temp file");
        assert!(atomic_write_keeping(&path, b"three", &backup).is_err());
        fs::remove_dir(temp_path(&path)).expect("unblock");
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
