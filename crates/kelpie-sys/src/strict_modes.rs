//! Whether a directory (the daemon's home) or a file in it can be trusted with what the daemon
//! keeps there: it, and every directory above it, must belong to root or the caller, and nobody
//! else may change them (as OpenSSH's `StrictModes`).

use rustix::fs::{self as rfs, FileType};
use std::path::{Path, PathBuf};

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn is_trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

/// Why a directory or file cannot be trusted with what the caller keeps in it: it, or a
/// directory above it, belongs to another user or may be changed by one (as OpenSSH's
/// `StrictModes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The path at fault.
    pub path: PathBuf,
    /// Its owner's name (or number) and mode.
    pub owner: String,
    pub mode: u32,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is owned by {} with mode {:o}: {}",
            self.path.display(),
            self.owner,
            self.mode & 0o7777,
            self.why
        )
    }
}

/// Check that `path` (a directory or file that need not exist yet) and every directory above
/// it, as written and as resolved, belong to root or the caller and that nobody else may change
/// them (a sticky directory such as `/tmp` may be writable by others above a path of the
/// caller's own). `path` itself, when it exists, must be the caller's own.
// `st_mode`'s type differs between systems (u32 on Linux, u16 on macOS).
#[allow(clippy::unnecessary_cast)]
pub fn check_owned_path(path: &Path) -> Result<(), Untrusted> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut paths = vec![absolute.clone()];
    if let Ok(resolved) = absolute.canonicalize() {
        if resolved != absolute {
            paths.push(resolved);
        }
    }
    for whole in &paths {
        let mut ancestors: Vec<&Path> = whole.ancestors().collect();
        ancestors.reverse();
        let last = ancestors.len().saturating_sub(1);
        for (i, at) in ancestors.into_iter().enumerate() {
            let Ok(stat) = rfs::lstat(at) else {
                // Not made yet: nothing below it exists either.
                break;
            };
            let mode = stat.st_mode as u32;
            let file_type = FileType::from_raw_mode(stat.st_mode);
            let owner = stat.st_uid;
            let untrusted = |why| Untrusted {
                path: at.to_path_buf(),
                owner: crate::username(owner),
                mode,
                why,
            };
            if i == last {
                if owner != euid() {
                    return Err(untrusted("it must belong to the user who runs kelpie"));
                }
                if file_type != FileType::Symlink && mode & 0o022 != 0 {
                    return Err(untrusted(
                        "its group or other users may change it (make it private: chmod go-w)",
                    ));
                }
            } else {
                if !is_trusted_uid(owner) {
                    return Err(untrusted(
                        "a directory above it belongs to another user, who could replace what is in it",
                    ));
                }
                if file_type == FileType::Directory && mode & 0o022 != 0 && mode & 0o1000 == 0 {
                    return Err(untrusted(
                        "a directory above it may be changed by other users, who could replace what is in it",
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_owned_path_under_a_private_tree_passes_and_a_writable_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        assert_eq!(check_owned_path(&home), Ok(()), "not made yet");
        std::fs::create_dir(&home).expect("mkdir");
        assert_eq!(check_owned_path(&home), Ok(()));
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = check_owned_path(&home).expect_err("writable by others");
        assert_eq!(refused.path, home);
        assert!(refused.to_string().contains("mode 777"), "{refused}");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let refused = check_owned_path(&home.join("kelpie.toml")).expect_err("above");
        assert_eq!(refused.path, dir.path());
    }
}
