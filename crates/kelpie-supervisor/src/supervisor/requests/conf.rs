//! `set`, `get`, `unset`, `multiset`: the configuration store (`conf.rs` keeps it).

use crate::instance::InstanceMsg;
use crate::supervisor::conf::describe_rotation;
use crate::supervisor::failure::Failure;
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor::Supervisor;
use crate::supervisor_channel::{Finish, Reply};
use kelpie_core::Lifecycle;
use kelpie_proto::{ConfRequest, Response};
use tokio::sync::oneshot;

/// `kelpie set` / `get` / `unset` / `multiset`: the store changed and written, the rotation
/// applied at once, and the apps named by a section that was set restarted with the
/// section in their environment. A bad key or value changes nothing.
pub(in crate::supervisor) fn conf_request(
    sup: &mut Supervisor,
    request: ConfRequest,
    reply: oneshot::Sender<Reply>,
) {
    if matches!(request, ConfRequest::Get) {
        let _ = reply.send(Reply {
            response: Response::Conf {
                store: sup.settings.store(),
                restarted: Vec::new(),
                notes: Vec::new(),
            },
            written: None,
        });
        return;
    }
    let change = match sup.settings.change(request) {
        Ok(change) => change,
        Err(e) => return fail(reply, Refusal::Conf(e)),
    };
    let mut notes = Vec::new();
    if let Some(logs) = change.rotation {
        sup.services.logs.set_defaults(logs);
        notes.push(describe_rotation(&logs));
    }
    let (written_tx, written) = oneshot::channel();
    sup.persistence
        .persister()
        .write_conf(change.text, written_tx);
    let mut waiters = Vec::new();
    let mut restarted = Vec::new();
    for name in &change.apps {
        let ids = sup.apps.ids_named(name);
        if ids.is_empty() {
            continue;
        }
        let env = sup.settings.app_env(name);
        for id in ids {
            let Some(spec) = sup
                .apps
                .edit_spec(id, |spec| spec.env.extend(env.iter().cloned()))
            else {
                continue;
            };
            let socket = sup.ports.socket_of(&spec.name);
            sup.apps.send(id, InstanceMsg::UpdateSpec(spec, socket));
            sup.dependencies.forget(id);
            waiters.push(sup.apps.command(id, Lifecycle::Restart));
            restarted.push(id);
        }
    }
    let response = Response::Conf {
        store: sup.settings.store(),
        restarted,
        notes,
    };
    sup.pending.spawn(async move {
        let lost = match written.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the daemon is exiting".to_string()),
        };
        for waiter in waiters {
            let _ = waiter.await;
        }
        let finish = match lost {
            None => Finish::Reply(response),
            Some(e) => Finish::Failed(Failure::ConfNotSaved(e.to_string()).into()),
        };
        crate::supervisor::Back::Settled { finish, reply }
    });
}
