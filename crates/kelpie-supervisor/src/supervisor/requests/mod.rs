//! The supervisor's side of each request, one module per kind (as the connection's side is
//! in `crate::server`): each handler validates everything first, so a request that fails
//! changes nothing, then acts, then hands what it waits for to `pending.rs`, which answers
//! once the instances have settled and the state is on disk.

mod ask;
mod cluster;
mod conf;
mod dump;
mod lifecycle;
mod logs;
mod numbering;
mod start;

pub(super) use dump::resurrect_loaded;
pub(super) use logs::{logs_settings_read, reload_logs};

use super::refusal::Refusal;
use super::{Finish, Reply, Supervisor};
use crate::instance::InstanceMsg;
use kelpie_core::Lifecycle;
use kelpie_proto::{Request, Response};
use tokio::sync::oneshot;

/// Answer `reply` with a refusal: the request changed nothing.
pub(super) fn fail(reply: oneshot::Sender<Reply>, refusal: Refusal) {
    let _ = reply.send(Reply {
        response: Response::Error(refusal.wire()),
        written: None,
    });
}

/// A client's request, to its handler.
pub(super) fn handle(sup: &mut Supervisor, request: Request, reply: oneshot::Sender<Reply>) {
    match request {
        Request::Ping => {
            let response = Response::Pong {
                pid: std::process::id(),
                version: crate::hello::daemon_hello().version,
                uptime_ms: crate::clock::now().mono_ms,
            };
            let _ = reply.send(Reply {
                response,
                written: None,
            });
        }
        Request::List => sup.reply_with_list(reply, Response::Processes),
        Request::Start(mut request) => {
            if request.from_file {
                request.apps = start::keep_scaled_counts(sup, request.apps);
            }
            start::start(sup, request, reply)
        }
        Request::Stop(kelpie_proto::Targets { targets }) => {
            lifecycle::stop_or_restart(sup, &targets, Lifecycle::Stop, None, reply)
        }
        Request::Restart(kelpie_proto::RestartRequest {
            targets,
            update_env,
        }) => lifecycle::stop_or_restart(sup, &targets, Lifecycle::Restart, update_env, reply),
        Request::Reload(mut request) => {
            request.apps = start::keep_scaled_counts(sup, request.apps);
            cluster::reload(sup, request, reply)
        }
        Request::Scale(kelpie_proto::ScaleRequest { name, count }) => {
            cluster::scale(sup, &name, count, reply)
        }
        Request::Change(kelpie_proto::ChangeRequest { targets, changes }) => {
            lifecycle::change(sup, &targets, changes, reply)
        }
        Request::Delete(kelpie_proto::Targets { targets }) => {
            lifecycle::delete(sup, &targets, reply)
        }
        Request::Reset(kelpie_proto::Targets { targets }) => {
            match sup.apps.resolve_some(&targets) {
                Ok(ids) => {
                    let waiters = ids
                        .into_iter()
                        .map(|id| {
                            let (tx, rx) = oneshot::channel();
                            sup.apps.send(id, InstanceMsg::Reset(tx));
                            rx
                        })
                        .collect();
                    sup.pending.finish_after(waiters, Finish::List, reply);
                }
                Err(refusal) => fail(reply, refusal),
            }
        }
        Request::Signal(kelpie_proto::SignalRequest { signal, targets }) => {
            ask::send_signal((&sup.apps, &mut sup.pending), &signal, &targets, reply)
        }
        Request::Save(kelpie_proto::SaveRequest { force }) => dump::save(
            (&sup.apps, &sup.persistence, &mut sup.pending),
            force,
            reply,
        ),
        Request::Resurrect => dump::resurrect((&sup.services, &mut sup.pending), reply),
        Request::Kill => lifecycle::kill(
            (
                &mut sup.apps,
                &mut sup.ports,
                &sup.services,
                &mut sup.pending,
            ),
            reply,
        ),
        Request::Shutdown => sup.begin_shutdown("shutdown requested", Some(reply)),
        Request::Flush(kelpie_proto::FlushRequest { targets, deleted }) => logs::flush_logs(
            (&sup.apps, &sup.services, &mut sup.pending),
            &targets,
            deleted,
            reply,
        ),
        Request::ReloadLogs => reload_logs((&sup.services, &mut sup.pending), Some(reply)),
        Request::Conf(request) => conf::conf_request(sup, request, reply),
        Request::Env(kelpie_proto::Targets { targets }) => environment(sup, &targets, reply),
        Request::SendMessage(kelpie_proto::SendMessageRequest { targets, message }) => {
            ask::send_message((&sup.apps, &mut sup.pending), &targets, message, reply)
        }
        Request::SendLine(kelpie_proto::SendLineRequest { targets, text }) => {
            ask::send_line((&sup.apps, &mut sup.pending), &targets, text, reply)
        }
        // The connection answers these itself (see `crate::server`).
        Request::Logs(_)
        | Request::Events
        | Request::Trigger(_)
        | Request::Inspect(_)
        | Request::StartConfig(_)
        | Request::Host
        | Request::Web(_)
        | Request::Notify(_)
        | Request::Errors(_)
        | Request::Jlist(kelpie_proto::JlistRequest { .. }) => {
            fail(reply, Refusal::NotForSupervisor)
        }
    }
}

/// `env <target>`: the environment the first instance of `targets` was given (or would be, when
/// stopped): what its process is started with, but the variables of its process's own link
/// (its notify socket, Node's IPC channel, its listening socket).
fn environment(sup: &Supervisor, targets: &[kelpie_proto::Target], reply: oneshot::Sender<Reply>) {
    let found = sup
        .apps
        .resolve(targets)
        .ok()
        .and_then(|ids| ids.into_iter().min())
        .and_then(|pm_id| sup.apps.get(pm_id).map(|entry| (pm_id, entry)));
    let Some((pm_id, entry)) = found else {
        let wanted: Vec<String> = targets.iter().map(kelpie_proto::Target::describe).collect();
        return fail(reply, Refusal::NoAppMatches(wanted.join(" ")));
    };
    let who = crate::spawn_plan::InstanceIdentity {
        home: &sup.services.home,
        pm_id,
        instance: entry.instance,
    };
    let env = crate::spawn_plan::environment(&entry.spec, &who);
    let _ = reply.send(Reply {
        response: Response::Json(serde_json::json!({
            "pm_id": pm_id,
            "name": entry.spec.name,
            "env": env,
        })),
        written: None,
    });
}
