//! The hand-over itself: take everything, write the state, pass the sockets on, exec; and if
//! the exec fails, take everything back and say why.

use super::super::apps::Apps;
use super::super::persistence::Persistence;
use super::super::ports::Ports;
use super::super::signals::Signals;
use super::super::Supervisor;
use super::Updating;
use super::{Inherited, NotNow};
use crate::instance::InstanceEvent;
use crate::update::{self, Handoff};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

/// The control socket, the apps' listening sockets and the notify sockets, as handed to the next program.
struct HandoffSockets {
    control: std::os::fd::OwnedFd,
    sockets: BTreeMap<String, std::os::fd::OwnedFd>,
    claimed: Vec<crate::sockets::HandedSocket>,
    /// The shared notify sockets.
    notify: Vec<std::os::fd::OwnedFd>,
}

/// Take everything from the instance tasks and the log readers, write the state, exec.
/// Returns only if it could not: `Err` when something was busy (nothing changed; try again
/// later); `Ok` when the update is over (failed, taken back, and reported, or abandoned for
/// a stop signal).
pub(super) async fn hand_over_and_exec(
    sup: &mut Supervisor,
    program: PathBuf,
    events: &mut mpsc::UnboundedReceiver<InstanceEvent>,
    signals: &mut Signals,
) -> Result<(), NotNow> {
    // Asked first, so that an instance that cannot go does not make the others go and
    // come back (their health checks and timers would start again every time).
    if let Some(why) = crate::supervisor::update::settle::refusal(sup).await {
        return Err(why);
    }
    // Reports sent before a task handed over are older than what it hands over.
    while let Ok(event) = events.try_recv() {
        sup.on_event(event);
    }
    let handed = crate::supervisor::update::take::take_instances(sup).await?;
    let handed = crate::supervisor::update::take::take_pipes(sup, handed).await?;
    let parts =
        match write_for_handoff((&mut sup.persistence, &sup.apps, &sup.ports, &sup.update)).await {
            Ok(parts) => parts,
            Err(why) => {
                crate::supervisor::update::take::resume_instances(sup, handed);
                sup.update.pending = None;
                update::report_later(
                    &sup.services.home,
                    update::Outcome::NotUpdated(format!("not updated: {why}")),
                );
                return Ok(());
            }
        };
    // A stop asked for meanwhile wins over the update.
    if let Some(stop) = signals.stop_pending() {
        crate::supervisor::update::take::resume_instances(sup, handed);
        sup.update.pending = None;
        update::report_later(
            &sup.services.home,
            update::Outcome::NotUpdated(format!("not updated: the daemon received {stop}")),
        );
        sup.begin_shutdown(stop, None);
        return Ok(());
    }
    let handoff = handoff(sup, parts, handed);
    crate::daemon_log!(
        "update: handing {} running processes over to {}",
        handoff.processes.len(),
        program.display()
    );
    // The exec passes everything on by itself; a keeper left running would read the pipes.
    crate::keeper::dismiss().await;
    // The exception inbox's last counts, for the next program to read.
    sup.services.alerts.save_now().await;
    let (handoff, error) = handoff.exec(&sup.services.home, &program);
    // Still this program: take everything back.
    crate::keeper::restart();
    crate::supervisor::update::take::take_back(sup, handoff);
    sup.update.pending = None;
    update::report_later(
        &sup.services.home,
        update::Outcome::NotUpdated(format!(
            "not updated: cannot execute {}: {error}; the daemon goes on with v{}",
            program.display(),
            env!("CARGO_PKG_VERSION")
        )),
    );
    Ok(())
}

/// Write the state (waiting until it is on disk) and take second descriptors of the
/// sockets to pass on; `Err` says which failed.
async fn write_for_handoff(
    (persistence, apps, ports, updating): (&mut Persistence, &Apps, &Ports, &Updating),
) -> Result<HandoffSockets, HandoffFailed> {
    let (ack, written) = oneshot::channel();
    persistence.write(apps, Some(ack));
    let saved = written.await;
    match (saved, handoff_parts(ports, updating)) {
        (Ok(Ok(())), Ok(parts)) => Ok(parts),
        (Ok(Err(e)), _) => Err(HandoffFailed::State(Some(e))),
        (_, Err(e)) => Err(HandoffFailed::Sockets(e)),
        (Err(_), _) => Err(HandoffFailed::State(None)),
    }
}

/// Why a hand-over that could go ahead did not: the daemon goes on as it was.
#[derive(Debug, thiserror::Error)]
enum HandoffFailed {
    #[error("the state could not be written{}", .0.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    State(Option<crate::persist::WriteError>),
    #[error("cannot pass on the sockets: {0}")]
    Sockets(std::io::Error),
}

/// What the next program gets: the sockets, the cgroups, and what the instances and log
/// readers handed over.
fn handoff(sup: &Supervisor, parts: HandoffSockets, handed: BTreeMap<u32, Inherited>) -> Handoff {
    let HandoffSockets {
        control,
        sockets,
        claimed,
        notify,
    } = parts;
    let mut handoff = Handoff {
        from_version: crate::hello::daemon_hello().version,
        mono_ms: crate::clock::now().mono_ms,
        control,
        cgroups: sup.services.cgroups.hand_over(),
        sockets,
        claimed,
        processes: BTreeMap::new(),
        notify,
        pipes: Vec::new(),
        restarts: BTreeMap::new(),
    };
    for (pm_id, parts) in handed {
        if let Some(process) = parts.process {
            handoff.processes.insert(pm_id, process);
        }
        if let Some(left) = parts.restart_in {
            handoff.restarts.insert(pm_id, left);
        }
        handoff.pipes.extend(parts.pipes);
    }
    handoff
}

/// Second descriptors of the control socket and of every app's listening sockets.
fn handoff_parts(ports: &Ports, updating: &Updating) -> std::io::Result<HandoffSockets> {
    let control = updating.control.try_clone()?;
    let (sockets, claimed) = ports.hand_over()?;
    Ok(HandoffSockets {
        control,
        sockets,
        claimed,
        notify: crate::link::notify_sockets()?,
    })
}
