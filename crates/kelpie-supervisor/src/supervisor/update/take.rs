//! Taking from the instance tasks (their state and process) and the log readers (their pipes)
//! for a hand-over, and giving back to new tasks when it does not happen.

use super::super::{NewInstance, Supervisor};
use super::{Inherited, NotNow};
use crate::instance::InstanceMsg;
use crate::update::Handoff;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the log readers may take to give their pipes back.
const PIPES_WITHIN: Duration = Duration::from_secs(2);

/// Every instance task hands over its state and process, and ends; `Err` when one refused
/// (the others then go on).
pub(super) async fn take_instances(
    sup: &mut Supervisor,
) -> Result<BTreeMap<u32, Inherited>, NotNow> {
    let asked = sup.apps.ask_all(InstanceMsg::HandOver);
    let mut handed: BTreeMap<u32, Inherited> = BTreeMap::new();
    let mut refused = None;
    for (pm_id, answer) in asked {
        match answer.await {
            Ok(Ok(over)) => {
                if let Some(entry) = sup.apps.get_mut(pm_id) {
                    entry.state = over.state;
                }
                handed.insert(
                    pm_id,
                    Inherited {
                        process: over.process,
                        restart_in: over.restart_in,
                        ..Inherited::default()
                    },
                );
            }
            Ok(Err(why)) => {
                let app = sup.apps.get(pm_id).map(|e| e.spec.name.clone());
                refused = Some(NotNow::Refused {
                    app: app.unwrap_or_default(),
                    pm_id,
                    why,
                });
            }
            Err(_) => refused = Some(NotNow::Gone(pm_id)),
        }
    }
    if let Some(why) = refused {
        // Changed in the meantime: those that handed over go on at once, in this program
        // (their pipes were never taken: their readers still run).
        resume_instances(sup, handed);
        return Err(why);
    }
    Ok(handed)
}

/// The log readers give back the output pipes, each added to what its instance handed
/// over. If one did not in time, the instances go on at once, in this program, with the
/// pipes that came back.
pub(super) async fn take_pipes(
    sup: &mut Supervisor,
    mut handed: BTreeMap<u32, Inherited>,
) -> Result<BTreeMap<u32, Inherited>, NotNow> {
    let (pipes, complete) = match sup.services.logs.take_pipes(PIPES_WITHIN).await {
        Ok(pipes) => (pipes, true),
        // A reader still holds its pipe: going on would close it under its app.
        Err(returned) => (returned, false),
    };
    for pipe in pipes {
        if let Some(entry) = handed.get_mut(&pipe.pm_id) {
            entry.pipes.push(pipe);
        }
    }
    if !complete {
        resume_instances(sup, handed);
        return Err(NotNow::Pipes);
    }
    Ok(handed)
}

/// The exec failed: new instance tasks go on with the processes, pending restarts and
/// pipes of the hand-off that came back.
pub(super) fn take_back(sup: &mut Supervisor, handoff: Handoff) {
    let mut handed: BTreeMap<u32, Inherited> = sup
        .apps
        .iter()
        .map(|(id, _)| (id, Inherited::default()))
        .collect();
    for (pm_id, process) in handoff.processes {
        handed.entry(pm_id).or_default().process = Some(process);
    }
    for (pm_id, left) in handoff.restarts {
        handed.entry(pm_id).or_default().restart_in = Some(left);
    }
    for pipe in handoff.pipes {
        handed.entry(pipe.pm_id).or_default().pipes.push(pipe);
    }
    resume_instances(sup, handed);
}

/// New tasks for instances whose task handed over, going on with what it handed.
pub(super) fn resume_instances(sup: &mut Supervisor, handed: BTreeMap<u32, Inherited>) {
    for (pm_id, parts) in handed {
        let Some(entry) = sup.apps.get(pm_id) else {
            continue;
        };
        let spec = entry.spec.clone();
        let mailbox = sup.services.spawn_instance(
            NewInstance {
                pm_id,
                instance: entry.instance,
                state: entry.state.clone(),
                socket: sup.ports.socket_of(&spec.name),
                claims: sup.ports.claims_of(&spec.name),
                spec,
            },
            Inherited {
                orphan_group: None,
                ..parts
            },
            &mut sup.apps,
        );
        if let Some(entry) = sup.apps.get_mut(pm_id) {
            entry.mailbox = mailbox;
        }
    }
}
