//! The app's container: image, command, environment (secrets by reference), port, resources,
//! probes, the drain before it stops, and a locked-down security context.

use super::super::secrets::SplitEnv;
use super::super::yaml::{s, strs, Map, Yaml};
use super::super::{seconds_up, tcp_port, Context};
use super::lit;
use super::pod::{container_security, tmp_mount};
use super::probe::Probes;
use kelpie_core::AppSpec;

/// How long a stopping pod keeps serving before it gets its signal, when the file sets
/// `kill_timeout`: the time for its endpoint to leave every Service and load balancer, so no
/// new request reaches a process that is stopping (the Kubernetes form of Kelpie's drain).
pub(super) const DRAIN_SECONDS: i64 = 5;

/// CPU requested per replica when `instances` is relative to the CPUs (`max`, `-1`): a PM2
/// instance had a CPU to itself, so each replica asks for one, and the autoscaler adds
/// replicas when they use 70 % of it.
pub(super) const CPU_PER_CPU_RELATIVE_REPLICA: &str = "1";
/// CPU requested by other replicas: a share the scheduler can count on, for a process that
/// set no CPU limit.
const DEFAULT_CPU_REQUEST: &str = "100m";
/// Memory requested (at most the limit).
const DEFAULT_MEMORY_REQUEST: u64 = 128 << 20;
/// The memory limit when the file sets no `max_memory_restart`.
const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;

/// What the container is built from besides the app.
pub(super) struct Parts<'a> {
    pub name: &'a str,
    pub env: &'a SplitEnv<'a>,
    /// The Secret holding the app's secret variables.
    pub secret: &'a str,
    /// The pod is a Deployment's (probes and the drain), not a Job's.
    pub serves: bool,
    /// `instances` is relative to the CPUs: the autoscaler sets the replicas.
    pub cpu_relative: bool,
}

pub(super) fn container(
    app: &AppSpec,
    parts: &Parts<'_>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Yaml {
    let written = ctx.written(app);
    let mut container = Map::new();
    container.put("name", s(parts.name));
    let (image, placeholder) = ctx.image.image(parts.name);
    if placeholder {
        container.comment(
            "A placeholder: build the image from the project (its Dockerfile), then export with `--image`, or `kubectl set image`.",
        );
    }
    container.put("image", s(image));
    container.put(
        "command",
        strs(ctx.image.command(app, warnings).iter().map(|a| lit(a))),
    );
    container.put("workingDir", s(ctx.image.cwd(app, warnings)));
    let env = env_vars(app, parts, warnings);
    if !env.is_empty() {
        container.put("env", Yaml::Seq(env));
    }
    if let Some(port) = tcp_port(app) {
        let mut p = Map::new();
        p.put("containerPort", Yaml::Int(i64::from(port)));
        container.put("ports", Yaml::Seq(vec![p.build()]));
    }
    let resources = resources(app, parts.cpu_relative, &mut container, warnings);
    container.put("resources", resources);
    if parts.serves {
        let probes = Probes::of(app, written, warnings);
        for (key, probe) in probes.entries() {
            container.put(key, probe);
        }
        if written.fields.contains("kill_timeout") {
            container.comment(&format!(
                "preStop: the pod keeps serving {DRAIN_SECONDS} s while its endpoint leaves the Service, then gets SIGTERM and kill_timeout to finish."
            ));
            let mut sleep = Map::new();
            sleep.put("seconds", Yaml::Int(DRAIN_SECONDS));
            let mut pre_stop = Map::new();
            pre_stop.put("sleep", sleep.build());
            let mut lifecycle = Map::new();
            lifecycle.put("preStop", pre_stop.build());
            container.put("lifecycle", lifecycle.build());
        }
    }
    container.put("securityContext", container_security());
    container.put("volumeMounts", Yaml::Seq(vec![tmp_mount()]));
    container.build()
}

/// The container's `env`: plain variables by value, secrets by reference to the Secret, and
/// the instance variable when there is one replica (replicas get no index).
fn env_vars(app: &AppSpec, parts: &Parts<'_>, warnings: &mut Vec<String>) -> Vec<Yaml> {
    let mut env = Vec::new();
    let mut names: Vec<&str> = parts
        .env
        .plain
        .keys()
        .chain(parts.env.secret.keys())
        .copied()
        .collect();
    names.sort_unstable();
    for key in names {
        let mut var = Map::new();
        var.put("name", s(key));
        match parts.env.plain.get(key) {
            Some(value) => {
                var.put("value", s(lit(value)));
            }
            None => {
                let mut reference = Map::new();
                reference.put("name", s(parts.secret));
                reference.put("key", s(key));
                let mut from = Map::new();
                from.put("secretKeyRef", reference.build());
                var.put("valueFrom", from.build());
            }
        }
        env.push(var.build());
    }
    if app.instances > 1 || parts.cpu_relative {
        warnings.push(format!(
            "app `{}`: `{}` (the instance index) is not set: Deployment replicas get no index, so code that runs only in instance 0 runs in every replica",
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

/// Requests (documented defaults) and limits: memory from `max_memory_restart` (else a
/// default), CPU from `max_cpu` (else none: the app may use what the node has free).
fn resources(
    app: &AppSpec,
    cpu_relative: bool,
    container: &mut Map,
    warnings: &mut Vec<String>,
) -> Yaml {
    let memory_limit = app.max_memory_restart.unwrap_or(DEFAULT_MEMORY_LIMIT);
    let mut requests = Map::new();
    requests.put(
        "cpu",
        s(if cpu_relative {
            CPU_PER_CPU_RELATIVE_REPLICA
        } else {
            DEFAULT_CPU_REQUEST
        }),
    );
    requests.put(
        "memory",
        s(quantity(DEFAULT_MEMORY_REQUEST.min(memory_limit))),
    );
    let mut limits = Map::new();
    if app.max_memory_restart.is_some() {
        container.comment(
            "max_memory_restart is the memory limit: Kubernetes kills the container at the limit (OOMKilled) and restarts it, where Kelpie restarts it gracefully.",
        );
    } else {
        container.comment(&format!(
            "No max_memory_restart in the file: a default limit of {}; set it to what the app needs.",
            quantity(DEFAULT_MEMORY_LIMIT)
        ));
    }
    limits.put("memory", s(quantity(memory_limit)));
    if let Some(percent) = app.max_cpu {
        limits.put("cpu", s(format!("{}m", u64::from(percent) * 10)));
        warnings.push(format!(
            "app `{}`: field `max_cpu` becomes a CPU limit (throttling), not a restart",
            app.name
        ));
    }
    let mut resources = Map::new();
    resources.put("requests", requests.build());
    resources.put("limits", limits.build());
    resources.build()
}

/// Bytes as a Kubernetes quantity: `1Gi`, `200Mi`, `64Ki`, else a plain number.
pub(super) fn quantity(bytes: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// The pod's grace period: written only when the file sets `kill_timeout` (Kubernetes' own
/// default, 30 s, otherwise), covering the drain and the app's own stop.
pub(super) fn grace_period(app: &AppSpec, ctx: &Context<'_>, drains: bool) -> Option<i64> {
    ctx.written(app).fields.contains("kill_timeout").then(|| {
        let drain = if drains { DRAIN_SECONDS } else { 0 };
        seconds_up(app.kill_timeout_ms, 1) as i64 + drain
    })
}

#[cfg(test)]
mod tests {
    use super::quantity;

    #[test]
    fn memory_is_written_in_kubernetes_units() {
        assert_eq!(quantity(1 << 30), "1Gi");
        assert_eq!(quantity(200 << 20), "200Mi");
        assert_eq!(quantity(1536 << 20), "1536Mi");
        assert_eq!(quantity(1000), "1000");
    }
}
