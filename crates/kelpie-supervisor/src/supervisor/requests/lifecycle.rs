//! `stop`, `restart` (with `--update-env`, or PM2's changes of name, interpreter arguments and
//! watch), `delete` and `kill`.

use crate::supervisor::apps::Apps;
use crate::supervisor::order::PendingAction;
use crate::supervisor::pending::PendingWork;
use crate::supervisor::ports::Ports;
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor::services::Services;
use crate::supervisor::Supervisor;
use crate::supervisor_channel::{Finish, Reply};
use kelpie_core::Lifecycle;
use kelpie_proto::SpecChanges;
use kelpie_proto::Target;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::oneshot;

/// `stop` and `restart`: a stop in reverse dependency order (and the end of the apps'
/// watches), a restart of each instance (with the shell's environment for `--update-env`).
pub(super) fn stop_or_restart(
    sup: &mut Supervisor,
    targets: &[Target],
    lifecycle: Lifecycle,
    update_env: Option<BTreeMap<String, String>>,
    reply: oneshot::Sender<Reply>,
) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(refusal) => return fail(reply, refusal),
    };
    if let Some(env) = update_env {
        // `--update-env`: the inherited environment is replaced, not merged, so a variable
        // that is gone from the shell is gone from the app.
        let env = Arc::new(env);
        sup.change_specs(&ids, |spec| spec.inherited_env = env.clone());
    }
    // A user's command wins over a start still waiting for its dependencies.
    for id in &ids {
        sup.dependencies.forget(*id);
    }
    if lifecycle == Lifecycle::Stop {
        // As in PM2, a stopped app is no longer watched, even once started again (until
        // `restart --watch` or its ecosystem file turns it back on).
        let watched: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| sup.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()))
            .collect();
        sup.change_specs(&watched, |spec| spec.watch.clear());
        let stopped = sup.stop_in_order(&ids, PendingAction::Lifecycle(Lifecycle::Stop));
        return sup.pending.finish_after(stopped, Finish::List, reply);
    }
    let mut waiters: Vec<oneshot::Receiver<()>> = ids
        .iter()
        .map(|id| sup.apps.command(*id, lifecycle))
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
    sup.pending.finish_after(waiters, Finish::List, reply);
}

/// `Request::Change`: PM2's `restart <app> --name new --node-args ... --watch --no-autorestart`.
pub(super) fn change(
    sup: &mut Supervisor,
    targets: &[Target],
    changes: SpecChanges,
    reply: oneshot::Sender<Reply>,
) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(refusal) => return fail(reply, refusal),
    };
    let names: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| sup.apps.get(*id).map(|e| e.spec.name.clone()))
        .collect();
    if let Some(new_name) = &changes.name {
        if let Err(e) = kelpie_core::check_app_name(new_name) {
            return fail(reply, Refusal::BadName(e));
        }
        if names.len() > 1 {
            return fail(reply, Refusal::RenameSeveral);
        }
        if !names.contains(new_name) && !sup.apps.ids_named(new_name).is_empty() {
            return fail(reply, Refusal::NameTaken(new_name.clone()));
        }
        // Every instance of the app takes the new name, with the port and watch it had.
        let all_ids: Vec<u32> = names.iter().flat_map(|n| sup.apps.ids_named(n)).collect();
        for old in &names {
            sup.ports.rename(old, new_name);
            sup.watches.forget(old);
        }
        sup.change_specs(&all_ids, |spec| spec.name = new_name.clone());
    }
    let others = SpecChanges {
        name: None,
        ..changes
    };
    if !others.is_empty() {
        let watched = ids
            .iter()
            .any(|id| sup.apps.get(*id).is_some_and(|e| !e.spec.watch.is_empty()));
        sup.change_specs(&ids, |spec| others.apply_to(spec, watched));
    }
    let names: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| sup.apps.get(*id).map(|e| e.spec.name.clone()))
        .collect();
    let mut waiters = Vec::new();
    for name in names {
        waiters.extend(sup.watches.ensure(&name, &sup.apps));
    }
    sup.pending.finish_after(waiters, Finish::List, reply);
}

pub(super) fn delete(sup: &mut Supervisor, targets: &[Target], reply: oneshot::Sender<Reply>) {
    let ids = match sup.apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(refusal) => return fail(reply, refusal),
    };
    let removed = sup.stop_in_order(&ids, PendingAction::Remove);
    sup.pending.finish_after(removed, Finish::List, reply);
}

/// Stop and forget every app, then exit (PM2's `kill`: the dump is not touched).
pub(super) fn kill(
    (apps, ports, services, pending): (&mut Apps, &mut Ports, &Services, &mut PendingWork),
    reply: oneshot::Sender<Reply>,
) {
    // PM2's `pm2:kill`, for the tools that follow the bus.
    services.bus.publish(crate::bus::daemon_event("kill", 0));
    let waiters = apps.shut_down_all();
    apps.clear();
    ports.clear();
    pending.finish_after(
        waiters,
        Finish::Exit("every app stopped; daemon exiting".into()),
        reply,
    );
}
