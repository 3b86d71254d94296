//! Why `kelpie export` leaves a setting out of a container engine's objects: the reasons several
//! rows share, and the rules that depend on the app. An exporter names each setting of the file
//! it leaves out in a warning and in a comment beside the object (never dropped silently).

use kelpie_core::AppSpec;

/// The log settings.
pub(super) const LOGS: &str = "the app's output goes to the engine's log collector (`kubectl logs`, `docker logs`), which stamps, rotates and keeps it";

/// The restart policy's settings.
pub(super) const RESTART_POLICY: &str = "the engine restarts a crashed container with its own backoff (Kubernetes: 10 s doubling up to 5 min; Compose: at once)";

/// The file watcher's settings.
pub(super) const DEVELOPMENT: &str =
    "restarting on file changes is a development feature; an image does not change";

/// Kelpie's own view of the app.
pub(super) const NODE_AGENT: &str =
    "it is about Kelpie's own view of the app (git metadata, Node runtime metrics)";

/// Carried over, whatever the app.
pub(super) fn carried(_: &AppSpec) -> Option<&'static str> {
    None
}

/// `increment_var`: replicas are copies.
pub(super) fn one_replica_only(app: &AppSpec) -> Option<&'static str> {
    (app.instances > 1).then_some("replicas get no index: each is a copy of the same container")
}

/// `autorestart: false` on Kubernetes.
pub(super) fn deployment_restarts(app: &AppSpec) -> Option<&'static str> {
    (!app.autorestart && !app.is_periodic_job()).then_some(
        "a Deployment always restarts its pods (use a Job, or add cron_restart to make it a periodic job: a CronJob)",
    )
}

/// `autostart: false` on Compose.
pub(super) fn compose_starts_every_service(app: &AppSpec) -> Option<&'static str> {
    (!app.autostart).then_some("`docker compose up` starts every service; leave it out of `up` by name, or give it a profile")
}

/// `kill_signal` on Kubernetes.
pub(super) fn kubernetes_stop_signal(app: &AppSpec) -> Option<&'static str> {
    (app.kill_signal != "SIGTERM").then_some(
        "Kubernetes stops a container with SIGTERM, or the STOPSIGNAL of its image: set `STOPSIGNAL` in the Dockerfile",
    )
}

/// `stop_exit_codes` on Kubernetes.
pub(super) fn deployment_exit_codes(app: &AppSpec) -> Option<&'static str> {
    (!app.is_periodic_job()).then_some("a Deployment restarts its pods whatever their exit code")
}

/// `stop_exit_codes` on Compose.
pub(super) fn compose_exit_codes(app: &AppSpec) -> Option<&'static str> {
    app.stop_exit_codes
        .iter()
        .any(|c| *c != 0)
        .then_some("Compose restart policies cannot exclude exit codes other than 0")
}
