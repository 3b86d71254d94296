//! The app's container: image, command, environment, port, resources, probes and the user it
//! runs as.

use super::super::yaml::{s, strs, Map, Yaml};
use super::super::{container_command, image_for, tcp_port};
use super::lit;
use super::probe::probe;
use kelpie_core::AppSpec;

/// The app's container: image, command, environment, port, limits, probes and the user it
/// runs as.
pub(super) fn container(
    app: &AppSpec,
    name: &str,
    node_major: Option<&str>,
    warnings: &mut Vec<String>,
) -> Yaml {
    let mut container = Map::new();
    container.put("name", s(name));
    container.put("image", s(image_for(app, node_major)));
    container
        .comment("The image is a placeholder chosen by interpreter: use an image holding the app.");
    container.put(
        "command",
        strs(container_command(app).iter().map(|a| lit(a))),
    );
    container.put("workingDir", s(&app.cwd));
    let env = env_vars(app, warnings);
    if !env.is_empty() {
        container.put("env", Yaml::Seq(env));
    }
    if let Some(port) = tcp_port(app) {
        let mut p = Map::new();
        p.put("containerPort", Yaml::Int(i64::from(port)));
        container.put("ports", Yaml::Seq(vec![p.build()]));
    }
    if let Some(resources) = resources(app, warnings) {
        container.put("resources", resources);
    }
    // A periodic job's pod runs to its end: no probe gates it (scheduled_job warns).
    if let Some(check) = app.health_check.as_ref().filter(|_| !app.is_periodic_job()) {
        let probe = probe(check, &app.name, warnings);
        container.put("livenessProbe", probe.clone());
        container.put("readinessProbe", probe);
    }
    if let Some(security) = security_context(app, warnings) {
        container.put("securityContext", security);
    }
    container.build()
}

/// The container's `env`: the app's variables, and its instance variable when it has one
/// instance (replicas get no index).
fn env_vars(app: &AppSpec, warnings: &mut Vec<String>) -> Vec<Yaml> {
    let mut env = Vec::new();
    for (key, value) in &app.env {
        let mut var = Map::new();
        var.put("name", s(key));
        var.put("value", s(lit(value)));
        env.push(var.build());
    }
    if app.instances > 1 {
        warnings.push(format!(
            "app `{}`: field `instance_var` (`{}`): Deployment replicas get no index; it is not set",
            app.name, app.instance_var
        ));
    } else {
        let mut var = Map::new();
        var.put("name", s(&app.instance_var));
        var.put("value", s("0"));
        env.push(var.build());
    }
    env
}

/// The container's `resources.limits` from `max_memory_restart` and `max_cpu`; none without
/// either.
fn resources(app: &AppSpec, warnings: &mut Vec<String>) -> Option<Yaml> {
    let mut limits = Map::new();
    if let Some(bytes) = app.max_memory_restart {
        limits.put("memory", s(bytes.to_string()));
    }
    if let Some(percent) = app.max_cpu {
        limits.put("cpu", s(format!("{}m", u64::from(percent) * 10)));
        warnings.push(format!(
            "app `{}`: field `max_cpu` becomes a CPU limit (throttling), not a restart",
            app.name
        ));
    }
    if limits.is_empty() {
        return None;
    }
    let mut resources = Map::new();
    resources.put("limits", limits.build());
    Some(resources.build())
}

/// The container's `securityContext` from a numeric `uid` and `gid` (names cannot be
/// exported); none without either.
fn security_context(app: &AppSpec, warnings: &mut Vec<String>) -> Option<Yaml> {
    let mut security = Map::new();
    for (field, value, key) in [
        ("uid", &app.user, "runAsUser"),
        ("gid", &app.group, "runAsGroup"),
    ] {
        if let Some(value) = value {
            match value.parse::<i64>() {
                Ok(id) => {
                    security.put(key, Yaml::Int(id));
                }
                Err(_) => warnings.push(format!(
                    "app `{}`: field `{field}` (`{value}`) is a name; Kubernetes needs a number for {key}, so it is left out",
                    app.name
                )),
            }
        }
    }
    if security.is_empty() {
        None
    } else {
        Some(security.build())
    }
}
