//! Processes a keeper handed over that no state describes (`state.json` and its backup could
//! not be read): they are still the user's apps, and must be managed until they end, never left
//! running unseen nor started a second time. Each becomes an instance running that process: its
//! name is the app's (from `KELPIE_APP_NAME`, which every app process gets), its spec the one the
//! dump saved for that name, else what `/proc` tells (command line, directory; not restarted
//! when it ends, since its environment is not known). `resurrect` then skips their names.

use crate::state::{PersistedInstance, StateFile, STATE_VERSION};
use kelpie_core::{AppSpec, InstanceState, Status};
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A state describing `processes` (`pm_id` → pid), each running; `None` without any.
/// Blocking (/proc, the dump).
pub(super) fn describe(home: &Home, processes: &BTreeMap<u32, u32>) -> Option<StateFile> {
    if processes.is_empty() {
        return None;
    }
    let saved = crate::dump::load(home).map(|(dump, _)| dump).ok();
    let now = crate::clock::now();
    let mut instances: BTreeMap<String, u32> = BTreeMap::new();
    let mut apps = Vec::new();
    for (&pm_id, &pid) in processes {
        let name = app_name(pid).unwrap_or_else(|| format!("recovered-{pid}"));
        let from_dump = saved
            .as_ref()
            .and_then(|dump| dump.apps.iter().find(|app| app.spec.name == name))
            .map(|app| app.spec.clone());
        let spec = match from_dump {
            Some(spec) => spec,
            None => Arc::new(from_proc(pid, name.clone())),
        };
        let index = instances.entry(name).or_default();
        let mut state = InstanceState::new(now);
        state.status = Status::Online;
        state.pid = Some(pid);
        state.started_at_ms = now.wall_ms;
        apps.push(PersistedInstance {
            pm_id,
            instance: *index,
            spec,
            state,
            run: true,
            pid_start_ticks: None,
        });
        *index += 1;
    }
    let described: Vec<String> = apps
        .iter()
        .map(|app| format!("`{}` (pid {:?})", app.spec.name, app.state.pid.unwrap_or(0)))
        .collect();
    crate::notices::post(
        home,
        &format!(
            "{} processes kept running by the last daemon were described by no state: they are listed and managed again ({}); `stop`, `delete` and `kill` end them, `resurrect` skips their names",
            apps.len(),
            described.join(", ")
        ),
    );
    let next_id = processes.keys().max().map_or(0, |id| id + 1);
    Some(StateFile {
        version: STATE_VERSION,
        next_id,
        apps,
    })
}

/// The Kelpie app name process `pid` was started as (`KELPIE_APP_NAME` in its environment).
fn app_name(pid: u32) -> Option<String> {
    kelpie_sys::process_environment(pid)?
        .iter()
        .find_map(|var| var.strip_prefix(b"KELPIE_APP_NAME="))
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .filter(|name| !name.is_empty())
}

/// What the system tells of process `pid`: its command line and directory. Not restarted when it
/// ends (`autorestart: false`): its environment and interpreter settings are not known.
fn from_proc(pid: u32, name: String) -> AppSpec {
    let mut argv = kelpie_sys::process_arguments(pid)
        .unwrap_or_default()
        .into_iter();
    let script = argv.next().unwrap_or_else(|| format!("(process {pid})"));
    let cwd = kelpie_sys::process_directory(pid)
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|| "/".into());
    AppSpec {
        name,
        script,
        args: argv.collect(),
        cwd,
        autorestart: false,
        ..AppSpec::default()
    }
}
