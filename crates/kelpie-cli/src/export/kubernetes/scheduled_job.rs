//! A periodic job (`autorestart: false` with `cron_restart`) as a CronJob that runs the app
//! itself at each tick, as Kelpie does; a long-running app with `cron_restart` keeps its
//! Deployment and the rolling-restart CronJob of `restart_job`.

use super::super::yaml::{s, Map, Yaml};
use super::super::Context;
use super::container::{container, grace_period, Parts};
use super::pod::secure;
use super::{labels, metadata};
use kelpie_core::AppSpec;

/// How late a missed run may still start. Kelpie runs a job at the ticks its daemon is up for
/// and never catches up a missed one; Kubernetes starts a run missed while its controller was
/// down or the cluster full, unless later than this (and without it, stops scheduling a CronJob
/// that missed 100 runs). One minute: a run late by more is skipped, as Kelpie would skip it.
pub(super) const STARTING_DEADLINE_SECONDS: i64 = 60;

/// The CronJob that runs the app at each tick of `schedule` (five fields).
pub(super) fn scheduled_job(
    app: &AppSpec,
    parts: &Parts<'_>,
    schedule: &str,
    notes: &[String],
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Yaml {
    let name = parts.name;
    let mut pod = Map::new();
    pod.comment(
        "restartPolicy Never with backoffLimit 0: a failed run is not retried, it waits for the next tick, as under Kelpie (autorestart: false).",
    );
    pod.put("restartPolicy", s("Never"));
    if let Some(seconds) = grace_period(app, ctx, false) {
        pod.put("terminationGracePeriodSeconds", Yaml::Int(seconds));
    }
    secure(&mut pod, Some(app), None, warnings);
    pod.put(
        "containers",
        Yaml::Seq(vec![container(app, parts, ctx, warnings)]),
    );
    let mut pod_template = Map::new();
    pod_template.put("metadata", {
        let mut m = Map::new();
        m.put("labels", labels(name));
        m.build()
    });
    pod_template.put("spec", pod.build());

    let mut job_spec = Map::new();
    job_spec.put("backoffLimit", Yaml::Int(0));
    if app.instances > 1 {
        // Kelpie runs each instance at every tick.
        job_spec.put("parallelism", Yaml::Int(i64::from(app.instances)));
        job_spec.put("completions", Yaml::Int(i64::from(app.instances)));
    }
    job_spec.put("template", pod_template.build());
    let mut job_template = Map::new();
    job_template.put("metadata", {
        let mut m = Map::new();
        m.put("labels", labels(name));
        m.build()
    });
    job_template.put("spec", job_spec.build());

    let mut spec = Map::new();
    spec.put("schedule", s(schedule));
    if let Some(zone) = &app.cron_timezone {
        spec.put("timeZone", s(zone));
    }
    spec.comment(
        "concurrencyPolicy Replace: a run still going at the next tick is replaced by a new one, as Kelpie (and PM2) restart it.",
    );
    spec.put("concurrencyPolicy", s("Replace"));
    spec.comment(
        "startingDeadlineSeconds: a run missed by more than a minute (controller down, no room) is skipped; Kelpie never catches up a missed run either.",
    );
    spec.put(
        "startingDeadlineSeconds",
        Yaml::Int(STARTING_DEADLINE_SECONDS),
    );
    spec.put("jobTemplate", job_template.build());

    let mut annotations = Map::new();
    annotations.put("kelpie.dev/app", s(&app.name));
    let mut cronjob = Map::new();
    for note in notes {
        cronjob.comment(note);
    }
    cronjob.put("apiVersion", s("batch/v1"));
    cronjob.put("kind", s("CronJob"));
    cronjob.put("metadata", metadata(name, Some(annotations.build())));
    cronjob.comment(&format!(
        "A periodic job (autorestart: false, cron_restart `{}`): each tick runs the app once.",
        app.cron_restart.as_deref().unwrap_or_default()
    ));
    cronjob.put("spec", spec.build());
    if app.health_check.is_some() {
        warnings.push(format!(
            "app `{}`: field `health_check` is not exported for a periodic job: a Job's pod has no probes to gate",
            app.name
        ));
    }
    cronjob.build()
}
