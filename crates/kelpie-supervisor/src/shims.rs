//! The shims apps load (Node's `--require`, Python's `sitecustomize`, Bun's and Deno's
//! preload): their sources, where they live and how they are written.
//!
//! A daemon run by a user keeps them in its home. A root daemon cannot: its home is private
//! (0700, and root's own home, /root, is 0700 too), and an app it runs as another user
//! (`user: nobody`) could not read them there: Node stops at its `--require` with
//! `Cannot find module`. So a root daemon writes them to a directory of their own,
//! `/run/kelpie-shims/<digest>` (`/var/run` where there is no `/run`, as on macOS): root's,
//! readable by everyone, writable by nobody else, checked from `/` down as the home is. The
//! digest is of the shims' sources, so two versions of Kelpie (an old daemon and a new one,
//! mid-update) never load each other's. Where that directory cannot be made or trusted, the
//! daemon says why in its log and keeps the shims in its home.

use crate::DaemonError;
use kelpie_proto::Home;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The Node shim's source, built into the binary: the runtime metrics' and the inspections'
/// declarations first (nothing runs at their load), then the shim, whose last lines start
/// everything.
pub(crate) const NODE_SHIM: &str = concat!(
    include_str!("../assets/node-metrics.js"),
    include_str!("../assets/node-inspection.js"),
    include_str!("../assets/node-shim.js")
);

/// The Python shim's source (`sitecustomize.py`), built into the binary.
pub(crate) const PYTHON_SHIM: &str = include_str!("../assets/python/sitecustomize.py");

/// Bun's and Deno's shim's source, built into the binary.
pub(crate) const RUNTIME_SHIM: &str = include_str!("../assets/runtime-shim.mjs");

/// Where a root daemon's shims went, decided once by the first daemon start of the process:
/// `None` when they are in the home (a daemon run by a user, or a shared directory refused).
static SHARED_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The directory of the shims apps load.
pub(crate) fn dir(home: &Home) -> PathBuf {
    match SHARED_DIR.get() {
        Some(Some(shared)) => shared.clone(),
        _ => home.root().to_path_buf(),
    }
}

/// The Node shim, preloaded (`--require`) into every Node app: it says when the main module
/// ran, and shares Kelpie-owned sockets. `.cjs`: a directory inside a project whose
/// package.json says `"type": "module"` must not make Node read it as an ES module.
pub(crate) fn node_shim(home: &Home) -> PathBuf {
    dir(home).join("node-shim.cjs")
}

/// The Python shim: a directory holding its `sitecustomize.py`, put first on the `PYTHONPATH`
/// of apps that serve a socket Kelpie owns (it makes uvicorn drain its connections when it
/// stops, as the Node shim does Node's).
pub(crate) fn python_dir(home: &Home) -> PathBuf {
    dir(home).join("python")
}

/// Bun's and Deno's shim. `.mjs`: both runtimes read it as an ES module.
pub(crate) fn runtime_shim(home: &Home) -> PathBuf {
    dir(home).join("runtime-shim.mjs")
}

/// Write the shims: to the shared directory of a root daemon (made and checked the first
/// time), else to the home. Each is written by each daemon (an update may change it),
/// atomically (an app starting meanwhile never reads half of one), and left alone when it
/// already says that.
pub(crate) fn write(home: &Home) -> Result<(), DaemonError> {
    SHARED_DIR.get_or_init(shared_dir);
    write_into(&dir(home))
}

/// A root daemon's shared directory, made, checked and written; `None` (and the daemon log
/// says why) for a daemon run by a user, or when it cannot be.
fn shared_dir() -> Option<PathBuf> {
    if kelpie_sys::effective_uid() != 0 {
        return None;
    }
    let Some(run) = ["/run", "/var/run"]
        .into_iter()
        .map(Path::new)
        .find(|run| run.is_dir())
    else {
        crate::daemon_log!(
            "the shims stay in the home: there is no /run or /var/run (apps run as another user cannot load them)"
        );
        return None;
    };
    let dir = run.join("kelpie-shims").join(digest());
    match make_shared(&dir).and_then(|()| write_into(&dir)) {
        Ok(()) => Some(dir),
        Err(why) => {
            crate::daemon_log!(
                "the shims stay in the home, where apps run as another user cannot load them: {why}"
            );
            None
        }
    }
}

/// `dir` and its parent, root's, mode 0755 whatever the umask, and trusted as the home is: no
/// directory from `/` down that another user owns or may change.
fn make_shared(dir: &Path) -> Result<(), DaemonError> {
    // Checked before anything is made too: nothing is made or changed through a link another
    // user could have placed.
    check_shared(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| DaemonError::io("cannot create", dir, e))?;
    for made in [dir.parent().unwrap_or(dir), dir] {
        std::fs::set_permissions(made, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| DaemonError::io("cannot set the permissions of", made, e))?;
    }
    check_shared(dir)
}

/// `dir` (or what of it exists) and every directory above it are root's and nobody else's to
/// change.
fn check_shared(dir: &Path) -> Result<(), DaemonError> {
    kelpie_sys::check_owned_path(dir).map_err(|refused| DaemonError::UntrustedShimDir {
        dir: dir.to_path_buf(),
        refused: refused.to_string(),
    })
}

/// The shims' directory name: a digest of their sources (16 hex digits).
fn digest() -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same name for the same sources in one build, which is all a
    // name needs here (another build may name the same sources otherwise: a second directory).
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (NODE_SHIM, PYTHON_SHIM, RUNTIME_SHIM).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The three shims in `dir`, each readable by every user (apps run as others load them).
fn write_into(dir: &Path) -> Result<(), DaemonError> {
    let python = dir.join("python");
    std::fs::create_dir_all(&python).map_err(|e| DaemonError::io("cannot create", &python, e))?;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| DaemonError::io("cannot set the permissions of", &python, e))?;
    for (path, text) in [
        (dir.join("node-shim.cjs"), NODE_SHIM),
        (python.join("sitecustomize.py"), PYTHON_SHIM),
        (dir.join("runtime-shim.mjs"), RUNTIME_SHIM),
    ] {
        write_if_changed(&path, text).map_err(|e| DaemonError::io("cannot write", &path, e))?;
    }
    Ok(())
}

/// A shim, written atomically with mode 0644; left alone when it already says that.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    crate::atomic::atomic_write_mode(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_directory_below_one_others_may_change_is_refused_before_it_is_made() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let open = scratch.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let dir = open.join("kelpie-shims").join(digest());
        let refused = make_shared(&dir).expect_err("refused").to_string();
        assert!(
            refused.contains(&dir.display().to_string())
                && refused.contains("may be changed by other users"),
            "{refused}"
        );
        assert!(!open.join("kelpie-shims").exists(), "nothing was made");
    }

    #[test]
    fn a_shared_directory_is_made_0755_with_its_shims_0644() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("kelpie-shims").join(digest());
        make_shared(&dir).expect("made");
        write_into(&dir).expect("written");
        let mode = |path: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).expect("stat").mode() & 0o7777
        };
        for path in [dir.parent().expect("parent"), &dir, &dir.join("python")] {
            assert_eq!(mode(path), 0o755, "{}", path.display());
        }
        for name in [
            "node-shim.cjs",
            "python/sitecustomize.py",
            "runtime-shim.mjs",
        ] {
            assert_eq!(mode(&dir.join(name)), 0o644, "{name}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("node-shim.cjs")).expect("read"),
            NODE_SHIM
        );
    }
}
