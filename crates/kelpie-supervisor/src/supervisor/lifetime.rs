//! The supervisor as the daemon's start-up (`crate::startup`) sees it: given its apps, run until
//! told to exit, then finished; everything else about it stays inside.

use super::signals::Signals;
use super::{foreground, Inboxes, Supervisor};
use crate::DaemonError;
use kelpie_core::AppSpec;
use kelpie_proto::Home;
use std::time::Duration;

/// At exit, how long the log pipeline may take to write what the stopping apps printed.
const LOGS_AT_EXIT: Duration = Duration::from_secs(3);

impl Supervisor {
    /// Start a runtime's apps (`kelpie runtime`), as one start request from a file would.
    pub fn start_foreground_apps(&mut self, apps: Vec<AppSpec>) {
        foreground::start_foreground_apps(self, apps);
    }

    /// Whether it has no app at all (`resurrect_if_empty`).
    pub fn has_no_apps(&self) -> bool {
        self.apps.is_empty()
    }

    /// How many instances it has.
    pub fn instance_count(&self) -> usize {
        self.apps.len()
    }

    /// The apps' cgroups, removed by the start-up once the supervisor has ended.
    pub fn cgroups(&self) -> &crate::cgroups::Cgroups {
        &self.services.cgroups
    }

    /// Serve requests and supervise until told to exit (by a request or a signal).
    pub async fn run_until_exit(
        &mut self,
        inboxes: Inboxes,
        home: &Home,
    ) -> Result<(), DaemonError> {
        let signals = Signals::install(home)?;
        self.run(inboxes, signals).await
    }

    /// After the run: end what the handlers still waited for (a watch's bursts, a client gone),
    /// then write what the apps printed while stopping, and hand a runtime's last lines to its
    /// printer.
    pub async fn finish_at_exit(&mut self) {
        self.pending.end().await;
        self.services.logs.finish(LOGS_AT_EXIT).await;
        if let Some(foreground) = self.foreground.as_mut() {
            foreground.finish_output(&self.services.logs).await;
        }
    }

    /// What the daemon exits with: a runtime's apps' outcome, 0 for a daemon.
    pub fn exit_code(&self) -> u8 {
        self.foreground.as_ref().map_or(0, |f| f.exit_code)
    }
}
