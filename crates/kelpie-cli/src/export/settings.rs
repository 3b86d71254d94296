//! Every setting a file can write, and what each container engine does with it: carried over,
//! or left out for a reason. An exporter names each setting of the file it leaves out in a
//! warning and in a comment beside the object (never dropped silently); a test walks every
//! field Kelpie reads through both tables, so a new field cannot be forgotten here.

use kelpie_core::AppSpec;

/// Why a setting the file wrote is left out for this app; `None` when it is carried over.
type Rule = fn(&AppSpec) -> Option<&'static str>;

fn carried(_: &AppSpec) -> Option<&'static str> {
    None
}

fn logs(_: &AppSpec) -> Option<&'static str> {
    Some("the app's output goes to the engine's log collector (`kubectl logs`, `docker logs`), which stamps, rotates and keeps it")
}

fn restart_policy(_: &AppSpec) -> Option<&'static str> {
    Some("the engine restarts a crashed container with its own backoff (Kubernetes: 10 s doubling up to 5 min; Compose: at once)")
}

fn development(_: &AppSpec) -> Option<&'static str> {
    Some("restarting on file changes is a development feature; an image does not change")
}

fn node_agent(_: &AppSpec) -> Option<&'static str> {
    Some("it is about Kelpie's own view of the app (git metadata, Node runtime metrics)")
}

fn one_replica_only(app: &AppSpec) -> Option<&'static str> {
    (app.instances > 1).then_some("replicas get no index: each is a copy of the same container")
}

/// The settings both container engines treat alike.
const SHARED: &[(&str, Rule)] = &[
    ("name", carried),
    ("script", carried),
    ("args", carried),
    ("interpreter", carried),
    ("interpreter_args", carried),
    ("exec_mode", carried),
    ("cwd", carried),
    ("env", carried),
    ("env_file", carried),
    // A container inherits no shell: what `filter_env` leaves out is never there to begin with.
    ("filter_env", carried),
    ("append_env_to_name", carried),
    ("instances", carried),
    ("port", carried),
    ("reuse_port", carried),
    ("health_check", carried),
    ("http", carried),
    ("max_memory_restart", carried),
    ("max_cpu", carried),
    ("disable_source_map_support", carried),
    ("source_map_support", carried),
    ("uid", carried),
    ("gid", carried),
    ("depends_on", carried),
    ("cron_restart", carried),
    ("cron_timezone", carried),
    ("restart_delay", restart_policy),
    ("exp_backoff_restart_delay", restart_policy),
    ("max_restarts", restart_policy),
    ("min_uptime", restart_policy),
    ("max_cpu_window", |_| {
        Some("a CPU limit throttles at once; there is no restart after a window over the limit")
    }),
    ("max_processes", |_| {
        Some("the number of processes of a container is the node's setting (kubelet `podPidsLimit`, Docker's `pids_limit` per service is not in the Compose file Kelpie writes)")
    }),
    ("nice", |_| {
        Some("a container's share of CPU comes from its CPU request, not its niceness")
    }),
    ("watch", development),
    ("ignore_watch", development),
    ("watch_delay", development),
    ("watchdog", |_| {
        Some("there is no sd_notify watchdog in a container; liveness comes from the probes")
    }),
    ("out_file", logs),
    ("error_file", logs),
    ("log_file", logs),
    ("merge_logs", logs),
    ("log_type", logs),
    ("log_date_format", logs),
    ("time", logs),
    ("disable_logs", logs),
    ("log_max_size", logs),
    ("log_retain", logs),
    ("log_compress", logs),
    ("log_rotate_interval", logs),
    ("pid_file", |_| {
        Some("the app is the container's main process; its pid is not written to a file")
    }),
    ("ready_pattern", |_| {
        Some("readiness from an output line has no equivalent; the probes decide")
    }),
    ("shutdown_with_message", |_| {
        Some("there is no Node IPC channel in a container; the app gets the stop signal")
    }),
    ("vizion", node_agent),
    ("pmx", node_agent),
    // The exporters set it with one replica and warn with several, written or not: code that
    // runs only in instance 0 is worth a word even when the file keeps PM2's default name.
    ("instance_var", carried),
    ("increment_var", one_replica_only),
    ("namespace", |_| {
        Some("Kelpie's namespaces group apps for its commands; the objects carry only the app's name")
    }),
];

/// Kubernetes: what differs from [`SHARED`].
const KUBERNETES: &[(&str, Rule)] = &[
    ("autorestart", |app| {
        (!app.autorestart && !app.is_periodic_job()).then_some(
            "a Deployment always restarts its pods (use a Job, or add cron_restart to make it a periodic job: a CronJob)",
        )
    }),
    ("autostart", carried),
    ("kill_timeout", carried),
    ("kill_signal", |app| {
        (app.kill_signal != "SIGTERM").then_some(
            "Kubernetes stops a container with SIGTERM, or the STOPSIGNAL of its image: set `STOPSIGNAL` in the Dockerfile",
        )
    }),
    ("stop_exit_codes", |app| {
        (!app.is_periodic_job())
            .then_some("a Deployment restarts its pods whatever their exit code")
    }),
    ("wait_ready", carried),
    ("listen_timeout", carried),
];

/// Compose: what differs from [`SHARED`].
const COMPOSE: &[(&str, Rule)] = &[
    ("autorestart", carried),
    ("autostart", |app| {
        (!app.autostart).then_some("`docker compose up` starts every service; leave it out of `up` by name, or give it a profile")
    }),
    ("kill_timeout", carried),
    ("kill_signal", carried),
    ("stop_exit_codes", |app| {
        app.stop_exit_codes
            .iter()
            .any(|c| *c != 0)
            .then_some("Compose restart policies cannot exclude exit codes other than 0")
    }),
    ("wait_ready", |_| {
        Some("Compose has no readiness signal; `depends_on` waits for the health check")
    }),
    ("listen_timeout", |_| {
        Some("Compose has no start timeout; the health check's `start_period` gives the app time")
    }),
];

/// A container engine's table of settings.
#[derive(Debug, Clone, Copy)]
pub(super) enum Engine {
    Kubernetes,
    Compose,
}

impl Engine {
    fn rule(self, field: &str) -> Option<Rule> {
        let own = match self {
            Engine::Kubernetes => KUBERNETES,
            Engine::Compose => COMPOSE,
        };
        own.iter()
            .chain(SHARED)
            .find(|(name, _)| *name == field)
            .map(|(_, rule)| *rule)
    }
}

/// The settings `written` holds that `engine` leaves out for `app`, each with why, in the
/// file's order of fields (sorted by name).
pub(super) fn left_out<'a>(
    engine: Engine,
    app: &AppSpec,
    written: impl IntoIterator<Item = &'a &'static str>,
) -> Vec<(&'static str, &'static str)> {
    written
        .into_iter()
        .filter_map(|field| {
            let why = match engine.rule(field) {
                Some(rule) => rule(app)?,
                None => "Kelpie does not know how to carry it over",
            };
            Some((*field, why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_kelpie_reads_is_mapped_or_explained_by_each_engine() {
        for engine in [Engine::Kubernetes, Engine::Compose] {
            for field in kelpie_config::supported_fields() {
                assert!(
                    engine.rule(field).is_some(),
                    "{engine:?} does not say what it does with `{field}`"
                );
            }
            let own = match engine {
                Engine::Kubernetes => KUBERNETES,
                Engine::Compose => COMPOSE,
            };
            for (field, _) in own.iter().chain(SHARED) {
                assert!(
                    kelpie_config::supported_fields().contains(field),
                    "{engine:?} maps `{field}`, which no file can set"
                );
            }
        }
    }

    #[test]
    fn conditional_settings_depend_on_the_app() {
        let app = AppSpec {
            kill_signal: "SIGTERM".into(),
            instances: 3,
            ..AppSpec::default()
        };
        let out = left_out(
            Engine::Kubernetes,
            &app,
            &["kill_signal", "increment_var", "max_restarts"],
        );
        let fields: Vec<&str> = out.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["increment_var", "max_restarts"]);
        let out = left_out(Engine::Compose, &app, &["kill_signal"]);
        assert!(out.is_empty());
    }
}
