//! `reload` and `scale`.

use crate::instance::InstanceMsg;
use crate::supervisor::apps::Entry;
use crate::supervisor::failure::Failure;
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor::{Finish, Reply, Supervisor};
use kelpie_core::Lifecycle;
use kelpie_proto::{ReloadRequest, ScaleCount};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A reload's order: which instances, in which app, through which mailbox.
struct ReloadStep {
    pm_id: u32,
    mailbox: crate::mailbox::Sender<InstanceMsg>,
}

/// Reload one app's instances, `parallel` at a time; stop at the first failure, so a broken
/// release does not take more instances down. Returns what failed.
async fn reload_app(name: String, steps: Vec<ReloadStep>, parallel: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let mut reloaded = Vec::new();
    for (n, batch) in steps.chunks(parallel).enumerate() {
        let answers: Vec<(u32, oneshot::Receiver<_>)> = batch
            .iter()
            .map(|step| {
                let (tx, rx) = oneshot::channel();
                let _ = step.mailbox.send(InstanceMsg::Reload(tx));
                (step.pm_id, rx)
            })
            .collect();
        for (pm_id, answer) in answers {
            match answer.await {
                Ok(Ok(())) => reloaded.push(pm_id),
                Ok(Err(why)) => failures.push(format!("app `{name}` (id {pm_id}): {why}")),
                Err(_) => failures.push(format!(
                    "app `{name}` (id {pm_id}): deleted during the reload"
                )),
            }
        }
        if !failures.is_empty() {
            let left: Vec<u32> = steps
                .iter()
                .skip((n + 1) * parallel)
                .map(|step| step.pm_id)
                .collect();
            if !left.is_empty() {
                failures.push(format!(
                    "app `{name}`: {} not reloaded (a reload stops at its first failure, so a broken release takes no more instances down)",
                    ids_text(&left)
                ));
            }
            if !reloaded.is_empty() {
                // Instances on two versions: said loudly, with the ways out.
                failures.push(format!(
                    "app `{name}` runs two versions now: {} the new one, the others the old; `kelpie reload {name}` again finishes the reload, `kelpie restart {name}` starts every instance anew at once",
                    ids_text(&reloaded)
                ));
            }
            break;
        }
    }
    failures
}

/// `id 3` or `ids 3, 5`.
fn ids_text(ids: &[u32]) -> String {
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    match ids.len() {
        1 => format!("id {}", list[0]),
        _ => format!("ids {}", list.join(", ")),
    }
}

/// Reload `targets` (and the apps of a file, with their new config), `parallel` instances of
/// an app at a time; apps are reloaded side by side. Answered once every old process is
/// gone, or with an error naming each instance whose new process failed.
pub(in crate::supervisor) fn reload(
    sup: &mut Supervisor,
    request: ReloadRequest,
    reply: oneshot::Sender<Reply>,
) {
    let ReloadRequest {
        targets,
        apps,
        update_env,
        parallel,
    } = request;
    let mut ids = if targets.is_empty() {
        Vec::new()
    } else {
        match sup.apps.resolve_some(&targets) {
            Ok(ids) => ids,
            Err(refusal) => return fail(reply, refusal),
        }
    };
    // A file's apps: sockets first (a port in use fails the request before any change).
    let mut sockets = Vec::new();
    for spec in &apps {
        match sup.ports.open(spec) {
            Ok(socket) => sockets.push(socket),
            Err(e) => return fail(reply, Refusal::Port(e)),
        }
    }
    let mut started = Vec::new();
    for (spec, socket) in apps.into_iter().zip(sockets) {
        let existing = sup.apps.ids_named(&spec.name);
        if existing.is_empty() {
            sup.create(spec, socket, true, &mut started);
            continue;
        }
        let count = existing.len().min(spec.instances.max(1) as usize);
        let kept = sup.update_instances(existing, spec, socket, true, &mut started);
        // New instances were started above; the existing ones are reloaded.
        ids.extend(&kept[..count]);
    }
    if let Some(env) = update_env {
        // Replaced, not merged (as `restart --update-env`).
        let env = std::sync::Arc::new(env);
        sup.change_specs(&ids, |spec| spec.inherited_env = env.clone());
    }
    let mut by_app: BTreeMap<String, Vec<ReloadStep>> = BTreeMap::new();
    for id in ids {
        if let Some(entry) = sup.apps.get(id) {
            by_app
                .entry(entry.spec.name.clone())
                .or_default()
                .push(ReloadStep {
                    pm_id: id,
                    mailbox: entry.mailbox.clone(),
                });
        }
    }
    let parallel = parallel.max(1) as usize;
    sup.pending.spawn(async move {
        for waiter in started {
            let _ = waiter.await;
        }
        let apps = by_app
            .into_iter()
            .map(|(name, steps)| crate::tasks::spawn(reload_app(name, steps, parallel)));
        let mut failures = Vec::new();
        for app in apps.collect::<Vec<_>>() {
            failures.extend(app.await.unwrap_or_default());
        }
        let finish = if failures.is_empty() {
            Finish::List
        } else {
            Finish::Failed(Failure::ScaleIncomplete(failures).into())
        };
        crate::supervisor::Back::Settled { finish, reply }
    });
}

/// `scale <app> N|+N|-N`: start more instances (numbered after the others) or delete the
/// oldest ones.
pub(in crate::supervisor) fn scale(
    sup: &mut Supervisor,
    name: &str,
    count: ScaleCount,
    reply: oneshot::Sender<Reply>,
) {
    let ids = sup.apps.ids_named(name);
    let Some(first) = ids.first().and_then(|id| sup.apps.get(*id)) else {
        return fail(reply, Refusal::NoAppNamed(name.to_string()));
    };
    let running = meant_to_run(ids.iter().filter_map(|id| sup.apps.get(*id)));
    let current = ids.len() as u32;
    let wanted = count.apply(current);
    if let Err(cause) = kelpie_core::check_instances(wanted) {
        let app = name.to_string();
        return fail(reply, Refusal::TooManyInstances { app, cause });
    }
    if wanted == 0 {
        return fail(reply, Refusal::ScaleToNone(name.to_string()));
    }
    let mut spec = (*first.spec).clone();
    spec.instances = wanted;
    let spec = Arc::new(spec);
    let socket = sup.ports.socket_of(name);
    for id in &ids {
        if let Some(entry) = sup.apps.get_mut(*id) {
            entry.spec = spec.clone();
        }
        sup.apps
            .send(*id, InstanceMsg::UpdateSpec(spec.clone(), socket.clone()));
    }
    let mut waiters = Vec::new();
    for _ in current..wanted {
        let id = sup.create_one(spec.clone(), false, &mut waiters);
        if running {
            waiters.push(sup.apps.command(id, Lifecycle::Start));
        }
    }
    // As in PM2, scaling down removes the oldest instances (the lowest ids: PM2's `scale`
    // deletes the first of its list, which is in id order); the next scale up gives new ones
    // the lowest free indexes again.
    for id in ids.iter().take(current.saturating_sub(wanted) as usize) {
        waiters.push(sup.remove(*id));
    }
    sup.pending.finish_after(waiters, Finish::List, reply);
}

/// Whether an app is meant to run, from what was asked of it rather than from what its
/// processes are doing at this instant: the new instances of a `scale` start when it is. Right
/// after a daemon restart, the instances it brings back are still `stopped` until their start
/// is carried out (once the dead daemon's processes are stopped, which takes up to their
/// `kill_timeout`, and the apps they depend on are up).
///
/// An instance is meant to run when it runs or is about to
/// ([`kelpie_core::InstanceState::wants_to_run`]), or when it has run (or tried to) and no
/// user stopped it: one a new daemon is bringing back, or one that ended or failed by itself
/// (PM2's `scale` starts every new instance). Not meant to run: one a user stopped, one never
/// started (`autostart: false`), and a periodic job between runs, whose new instances wait for
/// the schedule as it does.
fn meant_to_run<'a>(mut instances: impl Iterator<Item = &'a Entry>) -> bool {
    instances.any(|entry| {
        let state = &entry.state;
        let has_run = state.started_at_ms > 0 || state.last_error.is_some();
        state.wants_to_run()
            || (has_run && !state.stopped_by_user && !state.waits_for_schedule(&entry.spec))
    })
}
