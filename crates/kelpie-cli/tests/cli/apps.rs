//! Test apps that more than one module runs: one copy of each.

use kelpie_testkit::Kelpie;
use std::path::PathBuf;

/// PM2's graceful Node app (`graceful.js` in the test's directory): on the `shutdown` message
/// it writes `yes` to [`GracefulNode::shutdown`] and exits; when its IPC channel closes it writes
/// `yes` to [`GracefulNode::disconnect`]. `more` is added to its code (`process.send('ready')`,
/// output) before the timer that keeps it running.
pub(super) struct GracefulNode {
    pub file: String,
    pub shutdown: PathBuf,
    pub disconnect: PathBuf,
}

impl GracefulNode {
    pub(super) fn write(k: &Kelpie, more: &str) -> GracefulNode {
        let shutdown = k.dir.path().join("got-shutdown");
        let disconnect = k.dir.path().join("got-disconnect");
        let file = k.write(
            "graceful.js",
            &format!(
                "const fs = require('fs');\n\
                 process.on('disconnect', () => fs.writeFileSync({disconnect:?}, 'yes'));\n\
                 process.on('message', (m) => {{ if (m === 'shutdown') {{ fs.writeFileSync({shutdown:?}, 'yes'); process.exit(0); }} }});\n\
                 {more}setInterval(() => {{}}, 1000);\n",
                disconnect = disconnect.display().to_string(),
                shutdown = shutdown.display().to_string()
            ),
        );
        GracefulNode {
            file,
            shutdown,
            disconnect,
        }
    }

    /// Start it as `name`, stopped with the `shutdown` message and online once it says it is
    /// ready (`more` must send `ready`).
    pub(super) fn start_with_message(&self, k: &Kelpie, name: &str) {
        k.ok(&[
            "start",
            &self.file,
            "--name",
            name,
            "--shutdown-with-message",
            "--wait-ready",
        ]);
    }

    /// Whether its `shutdown` handler ran.
    pub(super) fn shut_down(&self) -> bool {
        std::fs::read_to_string(&self.shutdown).is_ok_and(|s| s == "yes")
    }
}
