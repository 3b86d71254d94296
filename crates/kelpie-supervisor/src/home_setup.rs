//! The daemon's home on disk before anything else runs: the directory, private to its owner,
//! the logs directory, the apps' stdin FIFOs and the shims apps load.

use crate::DaemonError;
use kelpie_proto::Home;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Make the home (mode 0700), its logs directory and its apps' stdin directory, and write the
/// shims apps load (`crate::shims`: in the home, or a root daemon's own directory); refuse a
/// home (or a `kelpie.toml` in it) that another user owns or may change, or that sits in a
/// directory another user may change: they could replace the Node shim every Node app loads,
/// or the settings, and so run their code with the daemon's rights.
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
    crate::shims::write(home)
}
