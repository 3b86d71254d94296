//! What the daemon has to tell the person who runs the next command, beyond its log: a recovery
//! at start (a state file that could not be read, processes found that no state described).
//! Appended to a file in the home; the CLI shows it on stderr after its handshake and removes
//! it, so it is said once, to whoever comes next, whatever the command.

use kelpie_proto::Home;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Add `text` (one line) for the next command, and to the daemon's log. Blocking (a file).
pub(crate) fn post(home: &Home, text: &str) {
    crate::daemon_log!("{text}");
    let line: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(home.notices_file())
        .and_then(|mut file| writeln!(file, "{line}"));
    if let Err(e) = written {
        crate::daemon_log!(
            "cannot keep that for the next command ({}: {e})",
            home.notices_file().display()
        );
    }
}
