//! Path helpers: absolute paths without touching symlinks, `~`, and `$PATH` lookups.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// `p` made absolute against `base`, with `.` and `..` removed lexically. Symlinks are kept as
/// written (unlike `canonicalize`) so the user recognises the path in `describe`.
pub fn absolutize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `~` and `~/x` expanded with `home`; other strings unchanged.
pub(crate) fn expand_tilde(s: &str, home: Option<&str>) -> String {
    match (s, home) {
        ("~", Some(home)) => home.to_string(),
        (_, Some(home)) if s.starts_with("~/") => {
            format!("{}/{}", home.trim_end_matches('/'), &s[2..])
        }
        _ => s.to_string(),
    }
}

/// The executable `name` would run as a command, searched in `path_var` (a `$PATH` value).
pub fn which(name: &str, path_var: &OsString) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// A regular file with an execute bit (any file off Unix).
pub(crate) fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolutize_resolves_relative_and_dots() {
        let base = Path::new("/srv/app");
        assert_eq!(
            absolutize(base, Path::new("a.js")),
            Path::new("/srv/app/a.js")
        );
        assert_eq!(
            absolutize(base, Path::new("./x/../b.js")),
            Path::new("/srv/app/b.js")
        );
        assert_eq!(absolutize(base, Path::new("../c")), Path::new("/srv/c"));
        assert_eq!(absolutize(base, Path::new("/abs")), Path::new("/abs"));
    }

    #[test]
    fn tilde_expands_with_home() {
        assert_eq!(
            expand_tilde("~/logs/a.log", Some("/home/u")),
            "/home/u/logs/a.log"
        );
        assert_eq!(expand_tilde("~", Some("/home/u")), "/home/u");
        assert_eq!(expand_tilde("~x/a", Some("/home/u")), "~x/a");
        assert_eq!(expand_tilde("~/a", None), "~/a");
    }

    #[test]
    fn which_finds_executables_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let path = OsString::from(dir.path());
        assert_eq!(which("tool", &path), Some(exe));
        assert_eq!(which("data", &path), None);
        assert_eq!(which("missing", &path), None);
    }
}
