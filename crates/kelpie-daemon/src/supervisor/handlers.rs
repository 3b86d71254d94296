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
    pub(super) fn handle(&mut self, request: Request, reply: oneshot::Sender<Reply>) {
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
            Request::List => self.reply_with_list(reply, Response::Processes),
            Request::Start {
                apps,
                force,
                from_file,
            } => self.start(apps, force, from_file, reply),
            Request::Stop { targets } => self.control(&targets, Control::Stop, None, reply),
            Request::Restart {
                targets,
                update_env,
            } => self.control(&targets, Control::Restart, update_env, reply),
            Request::Reload {
                targets,
                apps,
                update_env,
                parallel,
            } => self.reload(&targets, apps, update_env, parallel, reply),
            Request::Scale { name, count } => self.scale(&name, count, reply),
            Request::Change { targets, changes } => self.change(&targets, changes, reply),
            Request::Delete { targets } => self.delete(&targets, reply),
            Request::Reset { targets } => match self.apps.resolve_some(&targets) {
                Ok(ids) => {
                    let waiters = ids
                        .into_iter()
                        .map(|id| {
                            let (tx, rx) = oneshot::channel();
                            self.apps.send(id, InstanceMsg::Reset(tx));
                            rx
                        })
                        .collect();
                    self.finish_after(waiters, Finish::List, reply);
                }
                Err(e) => fail(reply, e.kind, e.message),
            },
            Request::Signal { signal, targets } => self.signal(&signal, &targets, reply),
            Request::Save { force } => self.save(force, reply),
            Request::Resurrect => {
                let home = self.services.home.clone();
                self.pending.spawn(async move {
                    let result =
                        tokio::task::spawn_blocking(move || crate::dump::load_setting_aside(&home))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                    Back::DumpLoaded { result, reply }
                });
            }
            Request::Kill => self.kill(reply),
            Request::Shutdown => self.begin_shutdown("shutdown requested", Some(reply)),
            Request::Flush { targets, deleted } => self.flush_logs(&targets, deleted, reply),
            Request::ReloadLogs => self.reload_logs(Some(reply)),
            Request::Conf(request) => self.conf_request(request, reply),
            Request::Web {
                port,
                host,
                token,
                open_loopback,
                stop,
                show_token,
            } => self.services.web.apply(
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
            Request::SendMessage { targets, message } => {
                self.send_message(&targets, message, reply)
            }
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
        &mut self,
        targets: &[Target],
        control: Control,
        update_env: Option<BTreeMap<String, String>>,
        reply: oneshot::Sender<Reply>,
    ) {
        let ids = match self.apps.resolve_some(targets) {
            Ok(ids) => ids,
            Err(e) => return fail(reply, e.kind, e.message),
        };
        if let Some(env) = update_env {
            self.replace_inherited_env(&ids, env);
        }
        // A user's command wins over a start still waiting for its dependencies.
        for id in &ids {
            self.dependencies.forget(*id);
        }
        if control == Control::Stop {
            // As in PM2, a stopped app is no longer watched, even once started again (until
            // `restart --watch` or its ecosystem file turns it back on).
            let watched: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|id| self.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()))
                .collect();
            self.change_specs(&watched, |spec| spec.watch.clear());
            let stopped = self.stop_in_order(&ids, PendingAction::Control(Control::Stop));
            return self.finish_after(stopped, Finish::List, reply);
        }
        let mut waiters: Vec<oneshot::Receiver<()>> = ids
            .iter()
            .map(|id| self.apps.command(*id, control))
            .collect();
        // A stopped app that starts again is watched again: answered once the watch is in
        // place, so that a change made right after the command is seen.
        let names: BTreeSet<String> = ids
            .iter()
            .filter_map(|id| self.apps.get(*id).map(|e| e.spec.name.clone()))
            .collect();
        for name in names {
            waiters.extend(self.watches.ensure(&name, &self.apps));
        }
        self.finish_after(waiters, Finish::List, reply);
    }

    /// `--update-env`: the inherited environment is replaced, not merged, so a variable that
    /// is gone from the shell is gone from the app.
    pub(super) fn replace_inherited_env(&mut self, ids: &[u32], env: BTreeMap<String, String>) {
        let env = Arc::new(env);
        self.change_specs(ids, |spec| spec.inherited_env = env.clone());
    }

    /// `Request::Change`: PM2's `restart <app> --name new --node-args ... --watch`.
    fn change(&mut self, targets: &[Target], changes: SpecChanges, reply: oneshot::Sender<Reply>) {
        let ids = match self.apps.resolve_some(targets) {
            Ok(ids) => ids,
            Err(e) => return fail(reply, e.kind, e.message),
        };
        let names: BTreeSet<String> = ids
            .iter()
            .filter_map(|id| self.apps.get(*id).map(|e| e.spec.name.clone()))
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
            if !names.contains(new_name) && !self.apps.ids_named(new_name).is_empty() {
                return fail(
                    reply,
                    ErrorKind::Conflict,
                    format!("an app is already named `{new_name}`; nothing was changed"),
                );
            }
            // Every instance of the app takes the new name, with the port and watch it had.
            let all_ids: Vec<u32> = names.iter().flat_map(|n| self.apps.ids_named(n)).collect();
            for old in &names {
                self.ports.rename(old, new_name);
                self.watches.forget(old);
            }
            self.change_specs(&all_ids, |spec| spec.name = new_name.clone());
        }
        if let Some(args) = &changes.interpreter_args {
            self.change_specs(&ids, |spec| {
                spec.interpreter_args = args.clone();
                spec.interpreter_args_cleared = args.is_empty();
            });
        }
        if changes.toggle_watch {
            let watched = ids
                .iter()
                .any(|id| self.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()));
            self.change_specs(&ids, |spec| {
                spec.watch = if watched {
                    Vec::new()
                } else {
                    vec![spec.cwd.clone()]
                };
            });
        }
        let names: BTreeSet<String> = ids
            .iter()
            .filter_map(|id| self.apps.get(*id).map(|e| e.spec.name.clone()))
            .collect();
        let mut waiters = Vec::new();
        for name in names {
            waiters.extend(self.watches.ensure(&name, &self.apps));
        }
        self.finish_after(waiters, Finish::List, reply);
    }

    fn delete(&mut self, targets: &[Target], reply: oneshot::Sender<Reply>) {
        let ids = match self.apps.resolve_some(targets) {
            Ok(ids) => ids,
            Err(e) => return fail(reply, e.kind, e.message),
        };
        let removed = self.stop_in_order(&ids, PendingAction::Remove);
        self.finish_after(removed, Finish::List, reply);
    }

    fn signal(&mut self, signal: &str, targets: &[Target], reply: oneshot::Sender<Reply>) {
        let Some(number) = kelpie_sys::signal_number(signal) else {
            return fail(
                reply,
                ErrorKind::Invalid,
                format!("unknown signal `{signal}` (try SIGUSR2, SIGHUP, 15...)"),
            );
        };
        let what = format!("sent {}", kelpie_sys::signal_name(number));
        self.ask_each(targets, what, reply, |tx| InstanceMsg::Signal(number, tx));
    }

    /// PM2's `sendDataToProcessId`: a JSON message to processes over their Node IPC channel.
    fn send_message(
        &mut self,
        targets: &[Target],
        message: serde_json::Value,
        reply: oneshot::Sender<Reply>,
    ) {
        let message = Arc::new(message);
        self.ask_each(targets, "sent the message".into(), reply, |tx| {
            InstanceMsg::SendMessage(Arc::clone(&message), tx)
        });
    }

    /// Ask each targeted instance to do something to its process, and answer how many did
    /// (`what` to N processes) or, when some could not, why.
    fn ask_each(
        &mut self,
        targets: &[Target],
        what: String,
        reply: oneshot::Sender<Reply>,
        ask: impl Fn(oneshot::Sender<Result<(), String>>) -> InstanceMsg,
    ) {
        let ids = match self.apps.resolve_some(targets) {
            Ok(ids) => ids,
            Err(e) => return fail(reply, e.kind, e.message),
        };
        let results: Vec<oneshot::Receiver<Result<(), String>>> = ids
            .iter()
            .map(|id| {
                let (tx, rx) = oneshot::channel();
                self.apps.send(*id, ask(tx));
                rx
            })
            .collect();
        self.pending.spawn(async move {
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

    fn save(&mut self, force: bool, reply: oneshot::Sender<Reply>) {
        let (tx, rx) = oneshot::channel();
        self.persistence
            .persister()
            .save_dump(self.apps.dump(), force, tx);
        self.pending.spawn(async move {
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
        &mut self,
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
            if !self.apps.ids_named(&app.spec.name).is_empty() {
                notes.push(format!(
                    "`{}` is already in the list; left as it is",
                    app.spec.name
                ));
                continue;
            }
            let spec = Arc::new((*app.spec).clone());
            let ids: Vec<u32> = (0..spec.instances.max(1))
                .map(|_| self.create_one(spec.clone(), app.run, &mut waiters))
                .collect();
            if app.paused {
                // Stopped by a user when saved: its schedule stays paused, as it was.
                for id in &ids {
                    waiters.push(self.apps.command(*id, Control::Stop));
                }
            }
            outcomes.push(StartOutcome::Created(ids));
        }
        self.finish_after(waiters, Finish::Started(outcomes, notes, Vec::new()), reply);
    }

    /// Stop and forget every app, then exit (PM2's `kill`: the dump is not touched).
    fn kill(&mut self, reply: oneshot::Sender<Reply>) {
        // PM2's `pm2:kill`, for the tools that follow the bus.
        self.services
            .bus
            .publish(crate::bus::daemon_event("kill", 0));
        let waiters = self.apps.shut_down_all();
        self.apps.clear();
        self.ports.clear();
        self.finish_after(
            waiters,
            Finish::Exit("every app stopped; daemon exiting".into()),
            reply,
        );
    }
}
