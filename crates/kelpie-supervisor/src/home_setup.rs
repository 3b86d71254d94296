//! The daemon's home on disk before anything else runs: the directory, private to its owner,
//! the logs directory, the apps' stdin FIFOs and the shims apps load.

use crate::DaemonError;
use kelpie_proto::Home;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Make the home (mode 0700), its logs directory and its apps' stdin directory, and write the
/// Node shim; refuse a home (or a `kelpie.toml` in it) that another user owns or may change, or
/// that sits in a directory another user may change: they could replace the Node shim every
/// Node app loads, or the settings, and so run their code with the daemon's rights.
pub fn prepare_home(home: &Home) -> Result<(), DaemonError> {
    for path in [home.root().to_path_buf(), home.settings_file()] {
        kelpie_sys::check_owned_path(&path).map_err(|refused| DaemonError::UntrustedHome {
            home: home.root().to_path_buf(),
            refused: refused.to_string(),
        })?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home.root())
        .map_err(|e| DaemonError::io("cannot create the kelpie home", home.root(), e))?;
    // The home holds the socket and the apps' environments: only its owner may enter.
    std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DaemonError::io("cannot restrict permissions of", home.root(), e))?;
    std::fs::create_dir_all(home.logs_dir())
        .map_err(|e| DaemonError::io("cannot create", &home.logs_dir(), e))?;
    // The apps' stdin FIFOs: only the daemon's user may write to an app's stdin.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home.stdin_dir())
        .map_err(|e| DaemonError::io("cannot create", &home.stdin_dir(), e))?;
    write_node_shim(home).map_err(|e| {
        DaemonError::io("cannot write", &crate::spawn_plan::node_shim_path(home), e)
    })?;
    write_python_shim(home).map_err(|e| {
        DaemonError::io("cannot write", &crate::spawn_plan::python_shim_dir(home), e)
    })?;
    let runtime_shim = crate::runtime_shim::runtime_shim_path(home);
    write_if_changed(&runtime_shim, crate::runtime_shim::RUNTIME_SHIM)
        .map_err(|e| DaemonError::io("cannot write", &runtime_shim, e))
}

/// A shim, written atomically (an app starting meanwhile never reads half of it) and readable
/// by apps running as other users; left alone when it already says that.
fn write_if_changed(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    crate::atomic::atomic_write_mode(path, text.as_bytes(), 0o644)
}

/// The Python shim, as the Node shim: written by each daemon, atomically, readable by apps.
fn write_python_shim(home: &Home) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = crate::spawn_plan::python_shim_dir(home);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    let path = dir.join("sitecustomize.py");
    if std::fs::read_to_string(&path).is_ok_and(|current| current == crate::spawn_plan::PYTHON_SHIM)
    {
        return Ok(());
    }
    crate::atomic::atomic_write_mode(&path, crate::spawn_plan::PYTHON_SHIM.as_bytes(), 0o644)
}

/// The Node shim is written by each daemon (an update may change it), atomically, so a Node app
/// starting meanwhile never reads half of it; readable by apps running as other users.
fn write_node_shim(home: &Home) -> std::io::Result<()> {
    let path = crate::spawn_plan::node_shim_path(home);
    if std::fs::read_to_string(&path).is_ok_and(|current| current == crate::spawn_plan::NODE_SHIM) {
        return Ok(());
    }
    crate::atomic::atomic_write_mode(&path, crate::spawn_plan::NODE_SHIM.as_bytes(), 0o644)
}
