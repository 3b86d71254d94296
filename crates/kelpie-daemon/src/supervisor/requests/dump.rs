//! `save` and `resurrect`: the list written to the dump, and brought back from it.

use crate::control::{Finish, Reply};
use crate::dump::DumpFile;
use crate::supervisor::requests::fail;
use crate::supervisor::{Back, Supervisor};
use kelpie_core::Control;
use kelpie_proto::StartOutcome;
use kelpie_proto::{ErrorKind, WireError};
use std::sync::Arc;
use tokio::sync::oneshot;

/// `resurrect`: the dump is read off the loop (and set aside if unreadable, the backup read
/// instead); its apps are then added by [`resurrect_loaded`].
pub(super) fn resurrect(sup: &mut Supervisor, reply: oneshot::Sender<Reply>) {
    let home = sup.services.home.clone();
    sup.pending.spawn(async move {
        let result = crate::tasks::blocking(move || crate::dump::load_setting_aside(&home))
            .await
            .unwrap_or_else(|e| Err(e.into()));
        Back::DumpLoaded { result, reply }
    });
}

/// `save`: the list written to the dump, the last one kept as its backup.
pub(super) fn save(sup: &mut Supervisor, force: bool, reply: oneshot::Sender<Reply>) {
    let (tx, rx) = oneshot::channel();
    sup.persistence
        .persister()
        .save_dump(sup.apps.dump(), force, tx);
    sup.pending.spawn(async move {
        let finish = match rx.await {
            Ok(Ok(message)) => Finish::Done(message),
            Ok(Err(e)) => Finish::Failed(WireError {
                kind: ErrorKind::Conflict,
                message: e.to_string(),
            }),
            Err(_) => Finish::Failed(WireError {
                kind: ErrorKind::Internal,
                message: "the dump was not written".into(),
            }),
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
        Err(e) => return fail(reply, ErrorKind::NotFound, e.to_string()),
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
