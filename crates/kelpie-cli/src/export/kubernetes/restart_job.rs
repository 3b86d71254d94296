//! `cron_restart` as a CronJob running `kubectl rollout restart`, with the ServiceAccount, Role
//! and RoleBinding it needs.

use super::super::yaml::{s, strs, Map, Yaml};
use super::metadata;
use super::pod::{container_security, secure, tmp_mount};
use kelpie_core::AppSpec;

/// The image that runs `kubectl`: the Kubernetes project's own, at a fixed version (any
/// `kubectl` within one minor version of the cluster's can restart a Deployment).
pub(super) const KUBECTL_IMAGE: &str = "registry.k8s.io/kubectl:v1.34.1";

/// The CronJob and the permission to restart this one Deployment.
pub(super) fn restart_job(
    app: &AppSpec,
    name: &str,
    schedule: &str,
    warnings: &mut Vec<String>,
) -> Vec<(&'static str, Yaml)> {
    let job = format!("{name}-restart");
    let mut account = Map::new();
    account.put("apiVersion", s("v1"));
    account.put("kind", s("ServiceAccount"));
    account.put("metadata", metadata(&job, None));

    let mut rule = Map::new();
    rule.put("apiGroups", strs(["apps"]));
    rule.put("resources", strs(["deployments"]));
    rule.put("resourceNames", strs([name]));
    rule.put("verbs", strs(["get", "patch"]));
    let mut role = Map::new();
    role.put("apiVersion", s("rbac.authorization.k8s.io/v1"));
    role.put("kind", s("Role"));
    role.put("metadata", metadata(&job, None));
    role.put("rules", Yaml::Seq(vec![rule.build()]));

    let mut role_ref = Map::new();
    role_ref.put("apiGroup", s("rbac.authorization.k8s.io"));
    role_ref.put("kind", s("Role"));
    role_ref.put("name", s(&job));
    let mut subject = Map::new();
    subject.put("kind", s("ServiceAccount"));
    subject.put("name", s(&job));
    let mut binding = Map::new();
    binding.put("apiVersion", s("rbac.authorization.k8s.io/v1"));
    binding.put("kind", s("RoleBinding"));
    binding.put("metadata", metadata(&job, None));
    binding.put("roleRef", role_ref.build());
    binding.put("subjects", Yaml::Seq(vec![subject.build()]));

    let mut container = Map::new();
    container.put("name", s("kubectl"));
    container.put("image", s(KUBECTL_IMAGE));
    container.put(
        "command",
        strs([
            "kubectl",
            "rollout",
            "restart",
            &format!("deployment/{name}"),
        ]),
    );
    let mut requests = Map::new();
    requests.put("cpu", s("50m"));
    requests.put("memory", s("64Mi"));
    let mut limits = Map::new();
    limits.put("cpu", s("500m"));
    limits.put("memory", s("128Mi"));
    let mut resources = Map::new();
    resources.put("requests", requests.build());
    resources.put("limits", limits.build());
    container.put("resources", resources.build());
    container.put("securityContext", container_security());
    container.put("volumeMounts", Yaml::Seq(vec![tmp_mount()]));
    let mut pod = Map::new();
    // The only pod that calls the API: it gets its account's token.
    secure(&mut pod, None, Some(&job), warnings);
    pod.put("restartPolicy", s("OnFailure"));
    pod.put("containers", Yaml::Seq(vec![container.build()]));
    let mut pod_template = Map::new();
    pod_template.put("spec", pod.build());
    let mut job_spec = Map::new();
    job_spec.put("template", pod_template.build());
    let mut job_template = Map::new();
    job_template.put("spec", job_spec.build());
    let mut spec = Map::new();
    spec.put("schedule", s(schedule));
    if let Some(zone) = &app.cron_timezone {
        spec.put("timeZone", s(zone));
    }
    spec.put("concurrencyPolicy", s("Forbid"));
    spec.put("jobTemplate", job_template.build());
    let mut cronjob = Map::new();
    cronjob.put("apiVersion", s("batch/v1"));
    cronjob.put("kind", s("CronJob"));
    cronjob.put("metadata", metadata(&job, None));
    cronjob.comment(&format!(
        "cron_restart `{}`: a rolling restart of the Deployment.",
        app.cron_restart.as_deref().unwrap_or_default()
    ));
    cronjob.put("spec", spec.build());
    vec![
        ("serviceaccount", account.build()),
        ("role", role.build()),
        ("rolebinding", binding.build()),
        ("cronjob", cronjob.build()),
    ]
}
