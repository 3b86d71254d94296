//! `start`: every app planned first (a conflict fails the whole request and starts nothing),
//! then the plans carried out: new instances created, existing ones re-applied, and the reply
//! sent once they have settled.

use crate::sockets::ListenSocket;
use crate::supervisor::apps::Apps;
use crate::supervisor::pending::PendingWork;
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor::services::Services;
use crate::supervisor::{Finish, Reply, Supervisor};
use kelpie_core::{AppSpec, Lifecycle};
use kelpie_proto::{StartOutcome, StartRequest};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a start does with one spec (with the listening socket it needs, opened beforehand so
/// a port in use fails the whole request before anything changes).
enum StartPlan {
    Create(AppSpec, Option<Arc<ListenSocket>>),
    Restart(Vec<u32>, AppSpec, Option<Arc<ListenSocket>>),
    StartStopped(Vec<u32>),
}

/// Why an app of a start cannot be started: the whole request fails, and starts nothing.
#[derive(Debug, thiserror::Error)]
enum Conflict {
    #[error("app `{app}`: {why}")]
    TooManyInstances {
        app: String,
        why: kelpie_core::TooManyInstances,
    },
    #[error(transparent)]
    Port(#[from] crate::supervisor::ports::PortError),
    #[error(
        "app `{app}` is already running (id {ids}): use `kelpie restart {app}` to restart it, or `-f` to start another copy"
    )]
    Running { app: String, ids: String },
}

/// The starts of a request that wait for their dependencies.
#[derive(Default)]
struct Gated {
    /// Still waiting: each says how it went.
    waiting: Vec<oneshot::Receiver<Option<String>>>,
    /// Failed at once, and why.
    failed: Vec<String>,
}

impl Gated {
    /// Keep the outcome of a gated start. False when it failed at once: its instances will not
    /// run (nor report), so the starts waiting for them must not wait for a report.
    fn add(&mut self, mut done: oneshot::Receiver<Option<String>>) -> bool {
        match done.try_recv() {
            Ok(Some(why)) => {
                self.failed.push(why);
                false
            }
            Ok(None) => true,
            Err(_) => {
                self.waiting.push(done);
                true
            }
        }
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `start`: plan every app first (a conflict fails the whole request, nothing started),
/// then carry the plans out; answered once the instances have settled.
pub(in crate::supervisor) fn start(
    sup: &mut Supervisor,
    request: StartRequest,
    reply: oneshot::Sender<Reply>,
) {
    let StartRequest {
        apps,
        force,
        from_file,
    } = request;
    let plans = match plan_start(sup, apps, force, from_file) {
        Ok(plans) => plans,
        Err(conflicts) => return fail(reply, Refusal::StartConflicts(conflicts)),
    };
    let mut waiters = Vec::new();
    let mut outcomes = Vec::new();
    // Instances acted on by this request so far, and the starts that wait for them.
    let mut in_flight = BTreeSet::new();
    let mut gated = Gated::default();
    let mut given = numbered(&mut sup.apps, &plans).into_iter();
    for plan in plans {
        let ids = given.next().unwrap_or_default();
        let (outcome, acts) = carry_out(sup, plan, &ids, &in_flight, &mut gated, &mut waiters);
        let (StartOutcome::Created(ids)
        | StartOutcome::Restarted(ids)
        | StartOutcome::Started(ids)) = &outcome;
        if !acts {
            outcomes.push(outcome);
            continue;
        }
        in_flight.extend(ids.iter().copied());
        // Answered once the watch is in place: a change right after `start` is seen.
        let name = ids
            .first()
            .and_then(|id| sup.apps.get(*id))
            .map(|e| e.spec.name.clone());
        if let Some(set_up) = name.and_then(|name| sup.watches.ensure(&name, &sup.apps)) {
            waiters.push(set_up);
        }
        outcomes.push(outcome);
    }
    finish_start_after(
        (&sup.services, &mut sup.pending),
        waiters,
        gated,
        outcomes,
        reply,
    );
}

/// The ids of the instances each plan creates, given in PM2's order (see
/// [`super::numbering`]) and set aside: instances a plan adds to a running app come after.
fn numbered(table: &mut Apps, plans: &[StartPlan]) -> Vec<Vec<u32>> {
    let counts: Vec<u32> = plans
        .iter()
        .map(|plan| match plan {
            StartPlan::Create(spec, _) => spec.instances.max(1),
            _ => 0,
        })
        .collect();
    let first = table.reserve(counts.iter().sum());
    super::numbering::in_pm2_order(&counts)
        .into_iter()
        .map(|offsets| offsets.into_iter().map(|offset| first + offset).collect())
        .collect()
}

/// The specs of an ecosystem file, about to be applied (`start`, `restart` or `reload` of the
/// file), with the instance count of a running app kept where the file's `instances` is the
/// one it was last given from the file: a count `scale` changed stays, as in PM2, whose
/// restarts never change it. A file whose `instances` changed since is followed, and an app
/// that did not come from the file takes the file's count.
pub(in crate::supervisor) fn keep_scaled_counts(
    sup: &Supervisor,
    specs: Vec<AppSpec>,
) -> Vec<AppSpec> {
    specs
        .into_iter()
        .map(|mut spec| {
            let asked = spec.instances;
            spec.file_instances = Some(asked);
            let ids = sup.apps.ids_named(&spec.name);
            let given_before = ids
                .first()
                .and_then(|id| sup.apps.get(*id))
                .and_then(|entry| entry.spec.file_instances);
            if given_before == Some(asked) && !ids.is_empty() {
                spec.instances = ids.len() as u32;
            }
            spec
        })
        .collect()
}

/// What a start does with each app (with the daemon's `conf` environment), or every
/// reason it cannot start them all.
fn plan_start(
    sup: &mut Supervisor,
    apps: Vec<AppSpec>,
    force: bool,
    from_file: bool,
) -> Result<Vec<StartPlan>, Vec<String>> {
    let apps: Vec<AppSpec> = apps
        .into_iter()
        .map(|spec| sup.settings.with_conf_env(spec))
        .collect();
    let mut plans = Vec::new();
    let mut conflicts = sup.apps.missing_dependencies(&apps);
    conflicts.extend(sup.apps.shared_log_files(&apps));
    if let Some(cycle) = sup.apps.dependency_cycle(&apps) {
        conflicts.push(format!("depends_on has a cycle: {cycle}"));
    }
    // Dependencies first, whatever order the client sent (files come that way already): a
    // dependency is then registered before the app that waits for it.
    for spec in kelpie_config::in_start_order(apps) {
        match plan_app(sup, spec, force, from_file) {
            Ok(plan) => plans.push(plan),
            Err(conflict) => conflicts.push(conflict.to_string()),
        }
    }
    if conflicts.is_empty() {
        conflicts.extend(descriptors_short(sup, &plans));
    }
    if conflicts.is_empty() {
        Ok(plans)
    } else {
        Err(conflicts)
    }
}

/// Why the daemon cannot hold the instances `plans` add, if it runs out of descriptors
/// before the end: refused before anything is spawned (it would start part of them, then
/// fail to write its state and to accept commands).
fn descriptors_short(sup: &Supervisor, plans: &[StartPlan]) -> Option<String> {
    use crate::descriptors::{fixed, per_instance};
    let (mut added, mut needed) = (0, 0);
    for plan in plans {
        let (spec, new) = match plan {
            StartPlan::Create(spec, _) => (spec, spec.instances.max(1) as usize),
            StartPlan::Restart(ids, spec, _) => (
                spec,
                (spec.instances.max(1) as usize).saturating_sub(ids.len()),
            ),
            StartPlan::StartStopped(_) => continue,
        };
        added += new;
        needed += new * per_instance(spec);
    }
    let limit = kelpie_sys::fd_limit();
    let in_use = fixed(limit) + crate::descriptors::connections_for(limit) + sup.apps.descriptors();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if in_use.saturating_add(needed) <= limit {
        return None;
    }
    let each = needed.div_ceil(added.max(1));
    let fit = limit.saturating_sub(in_use) / each.max(1);
    Some(format!(
        "starting {added} instances needs about {needed} open files ({each} each), and the daemon's limit is {limit} with about {in_use} in use: about {fit} more instances fit. Raise the limit (LimitNOFILE in the service, `ulimit -n` before the daemon starts, then `kelpie update`), or start fewer apps"
    ))
}

/// What a start does with one app: create it (new, or `-f` for another copy), apply a
/// file's spec to its instances, or start its stopped instances; `Err` when it is running
/// already, has too many instances, or its port cannot be opened.
fn plan_app(
    sup: &mut Supervisor,
    spec: AppSpec,
    force: bool,
    from_file: bool,
) -> Result<StartPlan, Conflict> {
    if let Err(why) = kelpie_core::check_instances(spec.instances) {
        return Err(Conflict::TooManyInstances {
            app: spec.name,
            why,
        });
    }
    let ids = sup.apps.ids_named(&spec.name);
    let creates = ids.is_empty() || (force && !from_file);
    let socket = if creates || from_file {
        sup.ports.open(&spec)?
    } else {
        None
    };
    if creates {
        Ok(StartPlan::Create(spec, socket))
    } else if from_file {
        Ok(StartPlan::Restart(ids, spec, socket))
    } else if ids
        .iter()
        .all(|id| sup.apps.get(*id).is_some_and(|e| e.state.status.is_down()))
    {
        // `start app.js --watch` on a stopped app watches it again, as in PM2 (a stop
        // turned watching off).
        if !spec.watch.is_empty() {
            let watch = spec.watch.clone();
            sup.change_specs(&ids, |s| s.watch = watch.clone());
        }
        Ok(StartPlan::StartStopped(ids))
    } else {
        Err(Conflict::Running {
            app: spec.name,
            ids: join_ids(&ids),
        })
    }
}

/// Carry out one plan: create (as `ids`), update or start the app's instances, now or once
/// their dependencies are up. Gives what was done and whether instances were acted on (an app
/// registered without being started is not in flight: nothing will report).
fn carry_out(
    sup: &mut Supervisor,
    plan: StartPlan,
    ids: &[u32],
    in_flight: &BTreeSet<u32>,
    gated: &mut Gated,
    waiters: &mut Vec<oneshot::Receiver<()>>,
) -> (StartOutcome, bool) {
    let mut acts = match &plan {
        StartPlan::Create(spec, _) => spec.autostart,
        _ => true,
    };
    let outcome = match plan {
        StartPlan::Create(spec, socket) if !spec.depends_on.is_empty() => {
            let run = spec.autostart;
            let ids = sup.create_as(spec, ids, socket, false, waiters);
            if run {
                let done = sup.after_dependencies(ids.clone(), Lifecycle::Start, in_flight);
                acts = gated.add(done);
            }
            StartOutcome::Created(ids)
        }
        StartPlan::Create(spec, socket) => {
            StartOutcome::Created(sup.create_as(spec, ids, socket, true, waiters))
        }
        StartPlan::Restart(ids, spec, socket) if !spec.depends_on.is_empty() => {
            let kept = sup.update_instances(ids, spec, socket, false, waiters);
            let done = sup.after_dependencies(kept.clone(), Lifecycle::Restart, in_flight);
            acts = gated.add(done);
            StartOutcome::Restarted(kept)
        }
        StartPlan::Restart(ids, spec, socket) => {
            StartOutcome::Restarted(reapply(sup, ids, spec, socket, waiters))
        }
        StartPlan::StartStopped(ids) => {
            let depends = ids
                .first()
                .and_then(|id| sup.apps.get(*id))
                .is_some_and(|e| !e.spec.depends_on.is_empty());
            if depends {
                let done = sup.after_dependencies(ids.clone(), Lifecycle::Start, in_flight);
                acts = gated.add(done);
            } else {
                for id in &ids {
                    waiters.push(sup.apps.command(*id, Lifecycle::Start));
                }
            }
            StartOutcome::Started(ids)
        }
    };
    (outcome, acts)
}

/// Answer a start once its instances have settled and the starts waiting for dependencies
/// are done (or failed: said in the answer).
fn finish_start_after(
    (services, pending): (&Services, &mut PendingWork),
    waiters: Vec<oneshot::Receiver<()>>,
    gated: Gated,
    outcomes: Vec<StartOutcome>,
    reply: oneshot::Sender<Reply>,
) {
    let logs = services.logs.clone();
    pending.spawn(async move {
        for waiter in waiters {
            let _ = waiter.await;
        }
        // The new log files are opened by then, so that a path that cannot be opened is
        // in the answer's list (and `start` says so).
        logs.written().await;
        let mut failures = gated.failed;
        for start in gated.waiting {
            if let Ok(Some(why)) = start.await {
                failures.push(why);
            }
        }
        let finish = Finish::Started(crate::supervisor_channel::Started {
            outcomes,
            notes: Vec::new(),
            failures,
        });
        crate::supervisor::Back::Settled { finish, reply }
    });
}

/// Restart existing instances with a new spec (ecosystem smart start), adding or removing
/// instances to match its `instances`.
fn reapply(
    sup: &mut Supervisor,
    ids: Vec<u32>,
    spec: AppSpec,
    socket: Option<Arc<ListenSocket>>,
    waiters: &mut Vec<oneshot::Receiver<()>>,
) -> Vec<u32> {
    let existing = ids.len().min(spec.instances.max(1) as usize);
    let kept = sup.update_instances(ids, spec, socket, true, waiters);
    for id in &kept[..existing] {
        waiters.push(sup.apps.command(*id, Lifecycle::Restart));
    }
    kept
}
