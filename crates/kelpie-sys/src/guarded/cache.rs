//! Directories reached by guarded walks, kept to open more files in them.

use super::{open_guarded, FileOpen, GuardedDir, Opened};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

/// Directories reached by guarded walks, kept to open more files in them without walking
/// again: the log writer opens two files per app, most in one directory, and a walk costs three
/// calls per name of the path. A kept directory is used again only while its path still names
/// it (one `stat`): a path changed since (a link put in place of a directory, another
/// directory renamed there) is walked again, and checked as any walk is. The descriptor kept
/// holds the directory, so its identity cannot pass to another while kept.
pub struct DirCache {
    dirs: VecDeque<(PathBuf, GuardedDir)>,
    most: usize,
}

impl DirCache {
    /// A cache of `most` directories (the first kept goes first).
    pub fn new(most: usize) -> DirCache {
        DirCache {
            dirs: VecDeque::with_capacity(most),
            most,
        }
    }

    /// [`open_guarded`], walking `path`'s directory only when it is not kept or has changed.
    pub fn open_file(
        &mut self,
        path: &Path,
        how: FileOpen,
        create_dirs: Option<u32>,
    ) -> io::Result<Opened> {
        let parent = path.parent().filter(|p| p.is_absolute());
        let (Some(parent), Some(name)) = (parent, path.file_name()) else {
            // A relative path depends on the working directory: walked each time.
            return open_guarded(path, how, create_dirs);
        };
        if let Some(at) = self.dirs.iter().position(|(kept, _)| kept == parent) {
            let still = self
                .dirs
                .get(at)
                .filter(|(_, dir)| dir.still_named_by(parent));
            if let Some((_, dir)) = still {
                return dir.open_file(name, how);
            }
            self.dirs.remove(at);
        }
        let dir = GuardedDir::open(parent, create_dirs)?;
        let opened = dir.open_file(name, how);
        if self.most > 0 {
            if self.dirs.len() >= self.most {
                self.dirs.pop_front();
            }
            self.dirs.push_back((parent.to_path_buf(), dir));
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn a_kept_directory_replaced_by_a_link_is_walked_again_and_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).expect("mkdir");
        let how = FileOpen {
            read: false,
            write: true,
            create: Some(0o640),
            nonblock: true,
        };
        let mut cache = DirCache::new(4);
        let logs = open.join("logs");
        assert!(
            cache
                .open_file(&logs.join("a.log"), how, Some(0o755))
                .expect("open")
                .created
        );
        assert!(
            cache
                .open_file(&logs.join("b.log"), how, None)
                .expect("kept")
                .created
        );
        // The app's user swaps the directory for a link to one it may not write.
        std::fs::rename(&logs, open.join("moved")).expect("rename");
        symlink(&secret, &logs).expect("symlink");
        let e = cache
            .open_file(&logs.join("c.log"), how, None)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("refusing to follow"), "{e}");
        assert!(
            !secret.join("c.log").exists(),
            "nothing made through the link"
        );
        assert!(open.join("moved/b.log").exists());
    }
}
