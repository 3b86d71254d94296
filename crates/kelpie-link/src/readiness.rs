//! Readiness seen from outside the process: an app binding its port itself (`reuse_port`) is
//! ready once one of its processes listens on it, as the system tells (`kelpie_sys::
//! group_listens_on`; a connection attempt cannot tell: with SO_REUSEPORT the old instance
//! answers it too).

use crate::ProcessSignal;
use std::time::Duration;

/// How often a starting process is checked.
const POLL: Duration = Duration::from_millis(50);

/// Report [`ProcessSignal::PortOpen`] once the process group led by `pgid` listens on `port`.
pub async fn watch_port(pgid: u32, port: u16, to: crate::mailbox::Sender<ProcessSignal>) {
    loop {
        let found = crate::tasks::blocking(move || kelpie_sys::group_listens_on(pgid, port))
            .await
            .unwrap_or(false);
        if found {
            let _ = to.send(ProcessSignal::PortOpen);
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
