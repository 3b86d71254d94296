//! Processes of this home's apps that nothing handed to the new daemon describes: spawned just
//! before the last daemon died (before the keeper or `state.json` knew them), or started after
//! the state that could be read was written (`state.json.bak`, the state before its last
//! change). They are found in /proc by the variables every app process gets (`KELPIE_HOME`,
//! `KELPIE_APP_NAME`, `pm_id`), then adopted under their app when the state or the dump knows
//! it, else stopped with their app's signal; kelpie.log says which, and why. None is dropped
//! unseen or left running unmanaged.

use crate::state::{PersistedInstance, StateFile, STATE_VERSION};
use kelpie_core::{AppSpec, InstanceState, Status};
use kelpie_proto::Home;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// A running process of one of this home's apps.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub pid: u32,
    /// Its app (`KELPIE_APP_NAME`).
    pub name: String,
    /// Its instance (`pm_id`), unless the app overrode the variable with something else.
    pub pm_id: Option<u32>,
    /// With the pid, tells it from a later process that reused the number.
    pub start_ticks: u64,
}

/// Every process that leads the process group of one of this home's apps (each app process is
/// started in a group of its own; its children inherit its variables but not its group).
/// One whose parent is itself an app's process (a child that made a group of its own) is left
/// to its app. Blocking (/proc).
pub(super) fn scan(home: &Home) -> Vec<Found> {
    let Ok(entries) = kelpie_sys::scan_processes() else {
        return Vec::new();
    };
    let own = std::process::id();
    let root = home.root().as_os_str().as_bytes();
    entries
        .iter()
        .filter(|e| e.pid != own && !e.sample.zombie && e.sample.pgrp == e.pid)
        .filter_map(|e| {
            let vars = app_variables(e.pid, root)?;
            if app_variables(e.sample.ppid, root).is_some() {
                return None;
            }
            Some(Found {
                pid: e.pid,
                name: vars.name,
                pm_id: vars.pm_id,
                start_ticks: e.sample.start_ticks,
            })
        })
        .collect()
}

/// The cgroup a daemon made for process `pid` (in a `kelpie-<daemon pid>` directory), as a path
/// in the mounted hierarchy; `None` for a process in any other cgroup (it is never the new
/// daemon's to kill as a whole). Blocking (/proc).
pub(super) fn kelpie_cgroup(pid: u32) -> Option<std::path::PathBuf> {
    let path = kelpie_sys::cgroup::cgroup_dir_of(pid)?;
    let base = path.parent()?.file_name()?.to_str()?;
    (base.starts_with("kelpie-") && path.is_dir()).then_some(path)
}

/// Kelpie's variables in an app process's environment.
struct Variables {
    name: String,
    pm_id: Option<u32>,
    kill_signal: Option<String>,
}

/// Kelpie's variables of process `pid`, when it is an app process of the home at `root`.
fn app_variables(pid: u32, root: &[u8]) -> Option<Variables> {
    let environment = kelpie_sys::process_environment(pid)?;
    let text = |value: &[u8]| String::from_utf8_lossy(value).into_owned();
    let (mut home, mut name, mut pm_id, mut kill_signal) = (None, None, None, None);
    for var in &environment {
        if let Some(value) = var.strip_prefix(b"KELPIE_HOME=") {
            home = Some(value);
        } else if let Some(value) = var.strip_prefix(b"KELPIE_APP_NAME=") {
            name = Some(text(value));
        } else if let Some(value) = var.strip_prefix(b"pm_id=") {
            pm_id = text(value).parse().ok();
        } else if let Some(value) = var.strip_prefix(b"KELPIE_KILL_SIGNAL=") {
            kill_signal = Some(text(value));
        }
    }
    if home != Some(root) {
        return None;
    }
    Some(Variables {
        name: name.filter(|name| !name.is_empty())?,
        pm_id,
        kill_signal,
    })
}

/// The spec of app `name` as the state (any of its instances) or else the dump has it.
fn known_spec(
    state: &StateFile,
    dump: Option<&crate::dump::DumpFile>,
    name: &str,
) -> Option<Arc<AppSpec>> {
    state
        .apps
        .iter()
        .find(|app| app.spec.name == name)
        .map(|app| app.spec.clone())
        .or_else(|| {
            dump?
                .apps
                .iter()
                .find(|app| app.spec.name == name)
                .map(|app| app.spec.clone())
        })
}

/// Whether the process `state` records for `app` still runs (same pid and start time).
fn recorded_runs(app: &PersistedInstance) -> bool {
    let (Some(pid), Some(ticks)) = (app.state.pid, app.pid_start_ticks) else {
        return false;
    };
    kelpie_sys::sample_process(pid).is_some_and(|live| live.start_ticks == ticks && !live.zombie)
}

/// Make `state` describe the processes `running` (`pm_id` → pid, what a keeper kept or was
/// found running) it does not know, when their app is known (the state or the dump): a later
/// process of an instance whose recorded one is gone (a restart was the last change) becomes
/// that instance's, one of an instance the state lacks (a start or a scale was the last
/// change) is added under its app. The others are left to be stopped as strays. Blocking.
pub(super) fn describe_unknown(home: &Home, state: &mut StateFile, running: &BTreeMap<u32, u32>) {
    let dump = crate::dump::load(home).map(|(dump, _)| dump).ok();
    let now = crate::clock::now();
    for (&pm_id, &pid) in running {
        let Some(live) = kelpie_sys::sample_process(pid).filter(|live| !live.zombie) else {
            continue;
        };
        let Some(vars) = app_variables(pid, home.root().as_os_str().as_bytes()) else {
            continue;
        };
        let running_state = |mut state: InstanceState| {
            state.status = Status::Online;
            state.pid = Some(pid);
            state.started_at_ms = now.wall_ms;
            state
        };
        match state.apps.iter_mut().find(|app| app.pm_id == pm_id) {
            Some(app) if app.state.pid == Some(pid) => {}
            // Another app's id, or the recorded process still runs (a reload's second one).
            Some(app) if app.spec.name != vars.name || recorded_runs(app) => {}
            Some(app) => {
                crate::daemon_log!(
                    "app `{}` (id {pm_id}): adopting process {pid}, which the state did not record (it records {}: the state was written before its last restart)",
                    vars.name,
                    app.state.pid.map_or("none".to_string(), |p| format!("pid {p}"))
                );
                app.state =
                    running_state(std::mem::replace(&mut app.state, InstanceState::new(now)));
                app.pid_start_ticks = Some(live.start_ticks);
                app.run = true;
            }
            None => {
                let Some(spec) = known_spec(state, dump.as_ref(), &vars.name) else {
                    continue;
                };
                let instance = state
                    .apps
                    .iter()
                    .filter(|app| app.spec.name == vars.name)
                    .map(|app| app.instance + 1)
                    .max()
                    .unwrap_or(0);
                crate::daemon_log!(
                    "app `{}` (id {pm_id}): adopting process {pid}, which the state did not describe (it was started after the state was written)",
                    vars.name
                );
                state.apps.push(PersistedInstance {
                    pm_id,
                    instance,
                    spec,
                    state: running_state(InstanceState::new(now)),
                    run: true,
                    pid_start_ticks: Some(live.start_ticks),
                });
                state.next_id = state.next_id.max(pm_id + 1);
            }
        }
    }
    state.apps.sort_by_key(|app| app.pm_id);
}

/// Why a process of this home's apps that is not adopted is stopped, and with which spec (its
/// app's; for an app neither the state nor the dump knows, the defaults with the signal its
/// environment names).
pub(super) fn why_stopped(
    home: &Home,
    state: &StateFile,
    pm_id: Option<u32>,
    pid: u32,
) -> (String, Arc<AppSpec>) {
    let vars = app_variables(pid, home.root().as_os_str().as_bytes());
    let name = vars.as_ref().map(|v| v.name.clone());
    let recorded = pm_id.and_then(|id| state.apps.iter().find(|app| app.pm_id == id));
    if let Some(app) = recorded {
        let why = match (&name, app.state.pid) {
            (Some(name), _) if *name != app.spec.name => format!(
                "it is app `{name}`'s but id {} is `{}`'s in the state",
                app.pm_id, app.spec.name
            ),
            (_, Some(recorded)) if recorded_runs(app) => {
                format!("its instance runs process {recorded} (a reload's second process)")
            }
            _ => "it is not the process the state records for its instance".to_string(),
        };
        return (why, app.spec.clone());
    }
    let dump = crate::dump::load(home).map(|(dump, _)| dump).ok();
    let spec = name
        .as_deref()
        .and_then(|name| known_spec(state, dump.as_ref(), name));
    let why = match (&name, &spec) {
        (Some(name), None) => {
            format!("neither the state nor the dump knows its app `{name}`")
        }
        (Some(_), Some(_)) => "its app has no instance for it in the state".to_string(),
        (None, _) => "it has no KELPIE_APP_NAME".to_string(),
    };
    let spec = spec.unwrap_or_else(|| {
        let mut spec = AppSpec {
            name: name.unwrap_or_else(|| format!("process {pid}")),
            ..AppSpec::default()
        };
        if let Some(signal) = vars.and_then(|v| v.kill_signal) {
            spec.kill_signal = signal;
        }
        Arc::new(spec)
    });
    (why, spec)
}

/// A state for the processes found running when neither the state nor its backup can be read
/// and no keeper kept their pipes: those of apps the dump knows, each an instance of its app
/// recorded with its pid (so it is stopped as an orphan and its app started again from the
/// dump). The others are left out (and stopped). `None` when none is known. Blocking.
pub(super) fn describe_found(home: &Home, found: &[Found]) -> Option<StateFile> {
    let dump = crate::dump::load(home).map(|(dump, _)| dump).ok()?;
    let now = crate::clock::now();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    let mut next_free = found
        .iter()
        .filter_map(|f| f.pm_id)
        .max()
        .map_or(0, |id| id + 1);
    let mut apps: Vec<PersistedInstance> = Vec::new();
    for process in found {
        let Some(saved) = dump.apps.iter().find(|app| app.spec.name == process.name) else {
            continue;
        };
        let pm_id = match process.pm_id.filter(|id| !taken.contains(id)) {
            Some(id) => id,
            None => {
                next_free += 1;
                next_free - 1
            }
        };
        taken.insert(pm_id);
        let instance = apps
            .iter()
            .filter(|app| app.spec.name == process.name)
            .count() as u32;
        let mut state = InstanceState::new(now);
        state.status = Status::Online;
        state.pid = Some(process.pid);
        state.started_at_ms = now.wall_ms;
        apps.push(PersistedInstance {
            pm_id,
            instance,
            spec: saved.spec.clone(),
            state,
            run: true,
            pid_start_ticks: Some(process.start_ticks),
        });
    }
    if apps.is_empty() {
        return None;
    }
    let named: Vec<String> = apps
        .iter()
        .map(|app| format!("`{}` (pid {})", app.spec.name, app.state.pid.unwrap_or(0)))
        .collect();
    crate::notices::post(
        home,
        &format!(
            "neither the state nor a keeper described the {} processes of saved apps found running ({}): their output could not be kept, so each is stopped and its app started again from the dump",
            apps.len(),
            named.join(", ")
        ),
    );
    apps.sort_by_key(|app| app.pm_id);
    Some(StateFile {
        version: STATE_VERSION,
        next_id: next_free.max(apps.iter().map(|a| a.pm_id + 1).max().unwrap_or(0)),
        apps,
    })
}
