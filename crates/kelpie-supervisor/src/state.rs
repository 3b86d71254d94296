//! The daemon's persisted state: every app, its spec and counters.

use kelpie_core::shared_env;
use kelpie_core::{AppSpec, InstanceState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Current format of `state.json`.
pub(crate) const STATE_VERSION: u32 = 1;

/// Content of `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateFile {
    /// Format version.
    pub version: u32,
    /// Next `pm_id` to hand out.
    pub next_id: u32,
    /// Every instance.
    pub apps: Vec<PersistedInstance>,
}

/// One instance as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistedInstance {
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    #[serde(default)]
    pub instance: u32,
    /// Its app's spec.
    pub spec: Arc<AppSpec>,
    /// Its state when written.
    pub state: InstanceState,
    /// Whether it should run (a new daemon starts it).
    pub run: bool,
    /// Start time (clock ticks after boot) of `state.pid`, to recognise that exact process later
    /// even if the pid number has been reused.
    #[serde(default)]
    pub pid_start_ticks: Option<u64>,
}

/// `state.json` as written: the apps' shared inherited environment once (`env`), and the
/// indices of the instances that take it (`shared_env`), instead of a copy in every spec.
#[derive(Serialize)]
struct Written<'a> {
    version: u32,
    next_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a shared_env::Env>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shared_env: Vec<usize>,
    apps: &'a [PersistedInstance],
}

/// `state.json` as read: written by [`StateFile::to_json`], or by a daemon that wrote a copy
/// of the environment in every spec.
#[derive(Deserialize)]
struct Read {
    version: u32,
    next_id: u32,
    #[serde(default)]
    env: Option<shared_env::Env>,
    #[serde(default)]
    shared_env: Vec<usize>,
    apps: Vec<PersistedInstance>,
}

impl StateFile {
    /// The bytes of `state.json`, the shared environment written once.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let env = shared_env::pick(self.apps.iter().map(|app| &app.spec.inherited_env));
        let shared: Vec<usize> = self
            .apps
            .iter()
            .enumerate()
            .filter(|(_, app)| {
                !env.is_empty() && shared_env::is_shared(&app.spec.inherited_env, &env)
            })
            .map(|(index, _)| index)
            .collect();
        let written = Written {
            version: self.version,
            next_id: self.next_id,
            env: (!shared.is_empty()).then_some(&env),
            shared_env: shared,
            apps: &self.apps,
        };
        shared_env::write_once(&env, || serde_json::to_vec(&written))
    }

    /// Read `state.json`.
    pub(crate) fn from_json(bytes: &[u8]) -> serde_json::Result<StateFile> {
        let read: Read = serde_json::from_slice(bytes)?;
        let mut apps = read.apps;
        if let Some(env) = read.env {
            for index in read.shared_env {
                if let Some(app) = apps.get_mut(index) {
                    Arc::make_mut(&mut app.spec).inherited_env = env.clone();
                }
            }
        }
        Ok(StateFile {
            version: read.version,
            next_id: read.next_id,
            apps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::AppSpec;

    #[test]
    fn the_shell_environment_is_written_once_for_every_instance() {
        let env: shared_env::Env = Arc::new(
            (0..40)
                .map(|i| (format!("SHELL_VAR_{i}"), "v".repeat(50)))
                .collect(),
        );
        let apps: Vec<PersistedInstance> = (0..100)
            .map(|pm_id| PersistedInstance {
                pm_id,
                instance: 0,
                spec: Arc::new(AppSpec {
                    name: format!("app-{pm_id}"),
                    inherited_env: env.clone(),
                    ..AppSpec::default()
                }),
                state: Default::default(),
                run: true,
                pid_start_ticks: None,
            })
            .collect();
        let state = StateFile {
            version: STATE_VERSION,
            next_id: 100,
            apps,
        };
        let bytes = state.to_json().expect("json");
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("SHELL_VAR_39").count(), 1, "written once");
        let read = StateFile::from_json(&bytes).expect("read");
        assert!(read.apps.iter().all(|app| *app.spec.inherited_env == *env));
        // A state written with a copy in every spec (by an earlier daemon) reads the same.
        let old = serde_json::to_vec(&state).expect("old form");
        assert_eq!(
            String::from_utf8_lossy(&old)
                .matches("SHELL_VAR_39")
                .count(),
            100
        );
        let read = StateFile::from_json(&old).expect("read old");
        assert!(read.apps.iter().all(|app| *app.spec.inherited_env == *env));
    }
}
