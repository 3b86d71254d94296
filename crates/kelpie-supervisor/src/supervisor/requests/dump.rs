//! `save` and `resurrect`: the list written to the dump, and brought back from it.

use crate::dump::{DumpFile, DumpedApp};
use crate::supervisor::apps::Apps;
use crate::supervisor::failure::Failure;
use crate::supervisor::pending::PendingWork;
use crate::supervisor::persistence::Persistence;
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor::services::Services;
use crate::supervisor::{Back, Supervisor};
use crate::supervisor_channel::{Finish, Reply};
use kelpie_core::Lifecycle;
use kelpie_proto::StartOutcome;
use std::sync::Arc;
use tokio::sync::oneshot;

/// `resurrect`: the dump is read off the loop (and set aside if unreadable, the backup read
/// instead); its apps are then added by [`resurrect_loaded`].
pub(super) fn resurrect(
    (services, pending): (&Services, &mut PendingWork),
    reply: oneshot::Sender<Reply>,
) {
    let home = services.home.clone();
    pending.spawn(async move {
        let result = crate::tasks::blocking(move || crate::dump::load_setting_aside(&home))
            .await
            .unwrap_or_else(|e| Err(e.into()));
        Back::DumpLoaded { result, reply }
    });
}

/// `save`: the list written to the dump, the last one kept as its backup.
pub(super) fn save(
    (apps, persistence, pending): (&Apps, &Persistence, &mut PendingWork),
    force: bool,
    reply: oneshot::Sender<Reply>,
) {
    let (tx, rx) = oneshot::channel();
    persistence.persister().save_dump(apps.dump(), force, tx);
    pending.spawn(async move {
        let finish = match rx.await {
            Ok(Ok(message)) => Finish::Done(message),
            Ok(Err(e)) => Finish::Failed(Failure::DumpNotSaved(e.to_string()).into()),
            Err(_) => Finish::Failed(Failure::DumpNoAnswer.into()),
        };
        Back::Answer { finish, reply }
    });
}

pub(in crate::supervisor) fn resurrect_loaded(
    sup: &mut Supervisor,
    result: Result<(DumpFile, Option<String>), crate::dump::DumpError>,
    reply: oneshot::Sender<Reply>,
) {
    let (dump, note) = match result {
        Ok(loaded) => loaded,
        Err(e) => return fail(reply, Refusal::Dump(e)),
    };
    let mut notes: Vec<String> = note.into_iter().collect();
    let mut waiters = Vec::new();
    let mut outcomes = Vec::new();
    let (apps, present): (Vec<DumpedApp>, Vec<DumpedApp>) = dump
        .apps
        .into_iter()
        .partition(|app| sup.apps.ids_named(&app.spec.name).is_empty());
    for app in present {
        notes.push(format!(
            "`{}` is already in the list; left as it is",
            app.spec.name
        ));
    }
    let mut given = renumbered(&mut sup.apps, &apps).into_iter();
    for app in apps {
        let spec = Arc::new((*app.spec).clone());
        let ids = match given.next().flatten() {
            Some(ids) => sup.create_as((*app.spec).clone(), &ids, None, app.run, &mut waiters),
            None => (0..spec.instances.max(1))
                .map(|_| sup.create_one(spec.clone(), app.run, &mut waiters))
                .collect(),
        };
        if app.paused {
            // Stopped by a user when saved: its schedule stays paused, as it was.
            for id in &ids {
                waiters.push(sup.apps.command(*id, Lifecycle::Stop));
            }
        }
        outcomes.push(StartOutcome::Created(ids));
    }
    sup.pending.finish_after(
        waiters,
        Finish::Started(crate::supervisor_channel::Started {
            outcomes,
            notes,
            failures: Vec::new(),
        }),
        reply,
    );
}

/// The ids the apps brought back get, as PM2's `resurrect` gives them: the next ids, in the
/// order of the ids they had when saved (so ids 0 to n kept as they were, and log files named
/// by them found again; gaps closed). None for all when an app was saved without its ids (a
/// dump written before they were kept, or edited): they are numbered app by app, as then.
fn renumbered(table: &mut Apps, apps: &[DumpedApp]) -> Vec<Option<Vec<u32>>> {
    let complete = apps
        .iter()
        .all(|app| app.ids.len() == app.spec.instances.max(1) as usize);
    if !complete {
        return apps.iter().map(|_| None).collect();
    }
    let mut saved: Vec<u32> = apps
        .iter()
        .flat_map(|app| app.ids.iter().copied())
        .collect();
    saved.sort_unstable();
    if saved.windows(2).any(|pair| pair[0] == pair[1]) {
        // An id given twice (a dump edited by hand): no order to follow.
        return apps.iter().map(|_| None).collect();
    }
    let first = table.reserve(saved.len() as u32);
    let new_id = |old: &u32| first + saved.partition_point(|id| id < old) as u32;
    apps.iter()
        .map(|app| Some(app.ids.iter().map(new_id).collect()))
        .collect()
}
