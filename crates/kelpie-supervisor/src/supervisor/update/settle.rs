//! Waiting until an update can go ahead: no instance in the middle of a start, stop or reload,
//! no app waiting for its dependencies, every instance willing; looked at again every
//! [`LOOK_AGAIN`], given up after `SETTLE_WITHIN`.

use super::super::signals::Signals;
use super::super::Supervisor;
use super::{NotNow, SETTLE_WITHIN};
use crate::instance::{InstanceEvent, InstanceMsg};
use crate::update;
use kelpie_core::Status;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often an update in progress looks again whether everything has settled.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// Why the daemon cannot hand over right now, if it cannot.
fn busy(sup: &Supervisor) -> Option<NotNow> {
    if sup.exit.exiting() {
        return Some(NotNow::Stopping);
    }
    if !sup.dependencies.is_empty() {
        return Some(NotNow::Dependencies);
    }
    if sup.apps.any_leaving() {
        return Some(NotNow::Leaving);
    }
    sup.apps.iter().find_map(|(pm_id, entry)| {
        matches!(entry.state.status, Status::Launching | Status::Stopping).then(|| NotNow::Busy {
            app: entry.spec.name.clone(),
            pm_id,
            status: entry.state.status.as_str(),
        })
    })
}

/// Time to look again: hand over if everything has settled, give up past the deadline.
pub(in crate::supervisor) async fn update_look(
    sup: &mut Supervisor,
    events: &mut mpsc::UnboundedReceiver<InstanceEvent>,
    signals: &mut Signals,
) {
    let Some(pending) = sup.update.pending.as_mut() else {
        return;
    };
    let now = Instant::now();
    pending.next_look = now + LOOK_AGAIN;
    let program = pending.program.clone();
    let attempt = match busy(sup) {
        Some(why) => Err(why),
        None => {
            crate::supervisor::update::hand_over::hand_over_and_exec(sup, program, events, signals)
                .await
        }
    };
    let Err(why) = attempt else { return };
    let Some(pending) = sup.update.pending.as_mut() else {
        return;
    };
    if now < pending.deadline {
        pending.busy = why.to_string();
        return;
    }
    let why = if pending.busy.is_empty() {
        why.to_string()
    } else {
        pending.busy.clone()
    };
    sup.update.pending = None;
    update::report_later(
        &sup.services.home,
        update::Outcome::NotUpdated(format!(
            "not updated: the apps did not settle within {} s ({why}); try again",
            SETTLE_WITHIN.as_secs()
        )),
    );
}

/// Ask every instance whether it could hand over now; the first refusal, named.
pub(super) async fn refusal(sup: &Supervisor) -> Option<NotNow> {
    let asked = sup.apps.ask_all(InstanceMsg::CanHandOver);
    for (pm_id, answer) in asked {
        let app = sup
            .apps
            .get(pm_id)
            .map(|e| e.spec.name.clone())
            .unwrap_or_default();
        match answer.await {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => return Some(NotNow::Refused { app, pm_id, why }),
            Err(_) => return Some(NotNow::NoAnswer { app, pm_id }),
        }
    }
    None
}
