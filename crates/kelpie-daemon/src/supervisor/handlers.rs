//! One handler per request. Each validates everything first, so a request that fails changes
//! nothing, then acts, then answers once the instances have settled and the state is on disk.

use super::order::PendingAction;
use super::{Back, Finish, Reply, Supervisor};
use crate::dump::DumpFile;
use crate::instance::InstanceMsg;
use kelpie_core::Control;
use kelpie_proto::{ErrorKind, Request, Response, SpecChanges, StartOutcome, Target, WireError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::oneshot;

pub(super) fn fail(reply: oneshot::Sender<Reply>, kind: ErrorKind, message: String) {
    let _ = reply.send(Reply {
        response: Response::Error(WireError { kind, message }),
        written: None,
    });
}

impl Supervisor {
    /// `--update-env`: the inherited environment is replaced, not merged, so a variable that
    /// is gone from the shell is gone from the app.
    pub(super) fn replace_inherited_env(&mut self, ids: &[u32], env: BTreeMap<String, String>) {
        let env = Arc::new(env);
        self.change_specs(ids, |spec| spec.inherited_env = env.clone());
    }
}

pub(super) fn handle(sup: &mut Supervisor, request: Request, reply: oneshot::Sender<Reply>) {
    match request {
        Request::Ping => {
            let response = Response::Pong {
                pid: std::process::id(),
                version: crate::update::daemon_hello().version,
                uptime_ms: crate::clock::now().mono_ms,
            };
            let _ = reply.send(Reply {
                response,
                written: None,
            });
        }
        Request::List => sup.reply_with_list(reply, Response::Processes),
        Request::Start {
            apps,
            force,
            from_file,
        } => crate::supervisor::starting::start(sup, apps, force, from_file, reply),
        Request::Stop { targets } => control(sup, &targets, Control::Stop, None, reply),
        Request::Restart {
            targets,
            update_env,
        } => control(sup, &targets, Control::Restart, update_env, reply),
        Request::Reload {
            targets,
            apps,
            update_env,
            parallel,
        } => crate::supervisor::cluster::reload(sup, &targets, apps, update_env, parallel, reply),
        Request::Scale { name, count } => {
            crate::supervisor::cluster::scale(sup, &name, count, reply)
        }
        Request::Change { targets, changes } => change(sup, &targets, changes, reply),
        Request::Delete { targets } => delete(sup, &targets, reply),
        Request::Reset { targets } => match sup.apps.resolve_some(&targets) {
            Ok(ids) => {
                let waiters = ids
                    .into_iter()
                    .map(|id| {
                        let (tx, rx) = oneshot::channel();
                        sup.apps.send(id, InstanceMsg::Reset(tx));
                        rx
                    })
                    .collect();
                sup.finish_after(waiters, Finish::List, reply);
            }
            Err(e) => fail(reply, e.kind, e.message),
        },
        Request::Signal { signal, targets } => send_signal(sup, &signal, &targets, reply),
        Request::Save { force } => save(sup, force, reply),
        Request::Resurrect => {
            let home = sup.services.home.clone();
            sup.pending.spawn(async move {
                let result =
                    tokio::task::spawn_blocking(move || crate::dump::load_setting_aside(&home))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                Back::DumpLoaded { result, reply }
            });
        }
        Request::Kill => kill(sup, reply),
        Request::Shutdown => sup.begin_shutdown("shutdown requested", Some(reply)),
        Request::Flush { targets, deleted } => {
            crate::supervisor::logs::flush_logs(sup, &targets, deleted, reply)
        }
        Request::ReloadLogs => crate::supervisor::logs::reload_logs(sup, Some(reply)),
        Request::Conf(request) => crate::supervisor::conf::conf_request(sup, request, reply),
        Request::Web {
            port,
            host,
            token,
            open_loopback,
            stop,
            show_token,
        } => sup.services.web.apply(
            crate::web::WebRequest {
                port,
                host,
                token,
                open_loopback,
                stop,
                show_token,
            },
            reply,
        ),
        Request::SendMessage { targets, message } => send_message(sup, &targets, message, reply),
        // The connection answers these itself (see `crate::server`).
        Request::Logs { .. }
        | Request::Events
        | Request::Trigger { .. }
        | Request::StartConfig { .. }
        | Request::Host
        | Request::Jlist { .. } => fail(
            reply,
            ErrorKind::Invalid,
            "the connection answers this request, not the supervisor".into(),
        ),
    }
}

fn control(
    sup: &mut Supervisor,
    targets: &[Target],
    control: Control,
    update_env: Option<BTreeMap<String, String>>,
    reply: oneshot::Sender<Reply>,
) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(e) => return fail(reply, e.kind, e.message),
    };
    if let Some(env) = update_env {
        sup.replace_inherited_env(&ids, env);
    }
    // A user's command wins over a start still waiting for its dependencies.
    for id in &ids {
        sup.dependencies.forget(*id);
    }
    if control == Control::Stop {
        // As in PM2, a stopped app is no longer watched, even once started again (until
        // `restart --watch` or its ecosystem file turns it back on).
        let watched: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| sup.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()))
            .collect();
        sup.change_specs(&watched, |spec| spec.watch.clear());
        let stopped = sup.stop_in_order(&ids, PendingAction::Control(Control::Stop));
        return sup.finish_after(stopped, Finish::List, reply);
    }
    let mut waiters: Vec<oneshot::Receiver<()>> = ids
        .iter()
        .map(|id| sup.apps.command(*id, control))
        .collect();
    // A stopped app that starts again is watched again: answered once the watch is in
    // place, so that a change made right after the command is seen.
    let names: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| sup.apps.get(*id).map(|e| e.spec.name.clone()))
        .collect();
    for name in names {
        waiters.extend(sup.watches.ensure(&name, &sup.apps));
    }
    sup.finish_after(waiters, Finish::List, reply);
}

/// `Request::Change`: PM2's `restart <app> --name new --node-args ... --watch`.
fn change(
    sup: &mut Supervisor,
    targets: &[Target],
    changes: SpecChanges,
    reply: oneshot::Sender<Reply>,
) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(e) => return fail(reply, e.kind, e.message),
    };
    let names: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| sup.apps.get(*id).map(|e| e.spec.name.clone()))
        .collect();
    if let Some(new_name) = &changes.name {
        if let Err(e) = kelpie_core::check_app_name(new_name) {
            return fail(reply, ErrorKind::Invalid, format!("--name: {e}"));
        }
        if names.len() > 1 {
            return fail(
                reply,
                ErrorKind::Invalid,
                "--name renames one app; these targets select several".into(),
            );
        }
        if !names.contains(new_name) && !sup.apps.ids_named(new_name).is_empty() {
            return fail(
                reply,
                ErrorKind::Conflict,
                format!("an app is already named `{new_name}`; nothing was changed"),
            );
        }
        // Every instance of the app takes the new name, with the port and watch it had.
        let all_ids: Vec<u32> = names.iter().flat_map(|n| sup.apps.ids_named(n)).collect();
        for old in &names {
            sup.ports.rename(old, new_name);
            sup.watches.forget(old);
        }
        sup.change_specs(&all_ids, |spec| spec.name = new_name.clone());
    }
    if let Some(args) = &changes.interpreter_args {
        sup.change_specs(&ids, |spec| {
            spec.interpreter_args = args.clone();
            spec.interpreter_args_cleared = args.is_empty();
        });
    }
    if changes.toggle_watch {
        let watched = ids
            .iter()
            .any(|id| sup.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()));
        sup.change_specs(&ids, |spec| {
            spec.watch = if watched {
                Vec::new()
            } else {
                vec![spec.cwd.clone()]
            };
        });
    }
    let names: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| sup.apps.get(*id).map(|e| e.spec.name.clone()))
        .collect();
    let mut waiters = Vec::new();
    for name in names {
        waiters.extend(sup.watches.ensure(&name, &sup.apps));
    }
    sup.finish_after(waiters, Finish::List, reply);
}

fn delete(sup: &mut Supervisor, targets: &[Target], reply: oneshot::Sender<Reply>) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(e) => return fail(reply, e.kind, e.message),
    };
    let removed = sup.stop_in_order(&ids, PendingAction::Remove);
    sup.finish_after(removed, Finish::List, reply);
}

fn send_signal(
    sup: &mut Supervisor,
    signal: &str,
    targets: &[Target],
    reply: oneshot::Sender<Reply>,
) {
    let Some(number) = kelpie_sys::signal_number(signal) else {
        return fail(
            reply,
            ErrorKind::Invalid,
            format!("unknown signal `{signal}` (try SIGUSR2, SIGHUP, 15...)"),
        );
    };
    let what = format!("sent {}", kelpie_sys::signal_name(number));
    ask_each(sup, targets, what, reply, |tx| {
        InstanceMsg::Signal(number, tx)
    });
}

/// PM2's `sendDataToProcessId`: a JSON message to processes over their Node IPC channel.
fn send_message(
    sup: &mut Supervisor,
    targets: &[Target],
    message: serde_json::Value,
    reply: oneshot::Sender<Reply>,
) {
    let message = Arc::new(message);
    ask_each(sup, targets, "sent the message".into(), reply, |tx| {
        InstanceMsg::SendMessage(Arc::clone(&message), tx)
    });
}

/// Ask each targeted instance to do something to its process, and answer how many did
/// (`what` to N processes) or, when some could not, why.
fn ask_each(
    sup: &mut Supervisor,
    targets: &[Target],
    what: String,
    reply: oneshot::Sender<Reply>,
    ask: impl Fn(oneshot::Sender<Result<(), String>>) -> InstanceMsg,
) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(e) => return fail(reply, e.kind, e.message),
    };
    let results: Vec<oneshot::Receiver<Result<(), String>>> = ids
        .iter()
        .map(|id| {
            let (tx, rx) = oneshot::channel();
            sup.apps.send(*id, ask(tx));
            rx
        })
        .collect();
    sup.pending.spawn(async move {
        let mut sent = 0;
        let mut errors = Vec::new();
        for result in results {
            match result.await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("the app was deleted meanwhile".into()),
            }
        }
        let finish = if errors.is_empty() {
            Finish::Done(format!(
                "{what} to {sent} process{}",
                if sent == 1 { "" } else { "es" }
            ))
        } else {
            Finish::Failed(WireError {
                kind: ErrorKind::Conflict,
                message: format!("{what} to {sent}; {}", errors.join("; ")),
            })
        };
        Back::Answer { finish, reply }
    });
}

fn save(sup: &mut Supervisor, force: bool, reply: oneshot::Sender<Reply>) {
    let (tx, rx) = oneshot::channel();
    sup.persistence
        .persister()
        .save_dump(sup.apps.dump(), force, tx);
    sup.pending.spawn(async move {
        let finish = match rx.await {
            Ok(Ok(message)) => Finish::Done(message),
            Ok(Err(message)) => Finish::Failed(WireError {
                kind: ErrorKind::Conflict,
                message,
            }),
            Err(_) => Finish::Failed(WireError {
                kind: ErrorKind::Internal,
                message: "the dump was not written".into(),
            }),
        };
        Back::Answer { finish, reply }
    });
}

pub(super) fn resurrect_loaded(
    sup: &mut Supervisor,
    result: Result<(DumpFile, Option<String>), String>,
    reply: oneshot::Sender<Reply>,
) {
    let (dump, note) = match result {
        Ok(loaded) => loaded,
        Err(message) => return fail(reply, ErrorKind::NotFound, message),
    };
    let mut notes: Vec<String> = note.into_iter().collect();
    let mut waiters = Vec::new();
    let mut outcomes = Vec::new();
    for app in dump.apps {
        if !sup.apps.ids_named(&app.spec.name).is_empty() {
            notes.push(format!(
                "`{}` is already in the list; left as it is",
                app.spec.name
            ));
            continue;
        }
        let spec = Arc::new((*app.spec).clone());
        let ids: Vec<u32> = (0..spec.instances.max(1))
            .map(|_| sup.create_one(spec.clone(), app.run, &mut waiters))
            .collect();
        if app.paused {
            // Stopped by a user when saved: its schedule stays paused, as it was.
            for id in &ids {
                waiters.push(sup.apps.command(*id, Control::Stop));
            }
        }
        outcomes.push(StartOutcome::Created(ids));
    }
    sup.finish_after(waiters, Finish::Started(outcomes, notes, Vec::new()), reply);
}

/// Stop and forget every app, then exit (PM2's `kill`: the dump is not touched).
fn kill(sup: &mut Supervisor, reply: oneshot::Sender<Reply>) {
    // PM2's `pm2:kill`, for the tools that follow the bus.
    sup.services
        .bus
        .publish(crate::bus::daemon_event("kill", 0));
    let waiters = sup.apps.shut_down_all();
    sup.apps.clear();
    sup.ports.clear();
    sup.finish_after(
        waiters,
        Finish::Exit("every app stopped; daemon exiting".into()),
        reply,
    );
}
