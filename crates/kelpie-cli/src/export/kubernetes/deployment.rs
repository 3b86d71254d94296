//! The app's Deployment: its container in a pod template with N replicas, annotated with the
//! app's name and dependencies; and the settings that do not carry over.

use super::super::seconds_up;
use super::super::yaml::{s, Map, Yaml};
use super::container::container;
use super::{labels, metadata};
use kelpie_core::AppSpec;

/// The app's Deployment: its container in a pod template, with N replicas, annotated with the
/// app's name and dependencies.
pub(super) fn deployment(
    app: &AppSpec,
    name: &str,
    node_major: Option<&str>,
    warnings: &mut Vec<String>,
) -> Yaml {
    let container = container(app, name, node_major, warnings);
    let mut pod_spec = Map::new();
    pod_spec.put(
        "terminationGracePeriodSeconds",
        Yaml::Int(seconds_up(app.kill_timeout_ms, 1) as i64),
    );
    pod_spec.put("containers", Yaml::Seq(vec![container]));
    let mut template = Map::new();
    template.put("metadata", {
        let mut m = Map::new();
        m.put("labels", labels(name));
        m.build()
    });
    template.put("spec", pod_spec.build());

    let mut selector = Map::new();
    selector.put("matchLabels", labels(name));
    let mut spec = Map::new();
    spec.put("replicas", Yaml::Int(i64::from(app.instances)));
    spec.put("selector", selector.build());
    spec.put("template", template.build());

    let mut annotations = Map::new();
    annotations.put("kelpie.dev/app", s(&app.name));
    if !app.depends_on.is_empty() {
        annotations.put("kelpie.dev/depends-on", s(app.depends_on.join(",")));
        warnings.push(format!(
            "app `{}`: field `depends_on` is only an annotation: Kubernetes has no start order (use readiness and retries, or an init container)",
            app.name
        ));
    }
    unexported_warnings(app, warnings);
    let mut root = Map::new();
    root.put("apiVersion", s("apps/v1"));
    root.put("kind", s("Deployment"));
    root.put("metadata", metadata(name, Some(annotations.build())));
    root.put("spec", spec.build());
    root.build()
}

/// Warnings for the settings a Deployment (or a periodic job's CronJob) cannot express: the
/// kill signal, `autorestart: false` (but for a periodic job: a CronJob runs it at each tick),
/// niceness, the watchdog and `wait_ready`.
pub(super) fn unexported_warnings(app: &AppSpec, warnings: &mut Vec<String>) {
    let app_name = &app.name;
    if app.kill_signal != "SIGTERM" {
        warnings.push(format!(
            "app `{app_name}`: field `kill_signal` ({}) is not exported: Kubernetes stops containers with SIGTERM (or the image's STOPSIGNAL)",
            app.kill_signal
        ));
    }
    if !app.autorestart && !app.is_periodic_job() {
        warnings.push(format!(
            "app `{app_name}`: field `autorestart: false` is not exported: a Deployment always restarts its pods (use a Job, or add cron_restart to make it a periodic job: a CronJob)"
        ));
    }
    for (field, set, why) in [
        (
            "nice",
            app.nice.is_some(),
            "a container's CPU share comes from `resources.requests.cpu`",
        ),
        (
            "watchdog",
            app.watchdog_ms.is_some(),
            "liveness comes from probes",
        ),
        ("wait_ready", app.wait_ready, "readiness comes from probes"),
    ] {
        if set {
            warnings.push(format!(
                "app `{app_name}`: field `{field}` is not exported: Kubernetes has no equivalent ({why})"
            ));
        }
    }
}
