//! The app's Deployment: its container in a secured pod, its replicas (or none, for the
//! autoscaler), a rolling update that keeps capacity, and its autoscaler when `instances` is
//! relative to the CPUs.

use super::super::yaml::{s, Map, Yaml};
use super::super::Context;
use super::container::{container, grace_period, Parts};
use super::pod::secure;
use super::{labels, metadata};
use kelpie_core::AppSpec;

/// The autoscaler's bounds and target for `instances: "max"` (or `0`, `-N`): at least two
/// replicas (a rolling update and a node's loss then leave one serving), at most ten, and a
/// new replica when the replicas use 70 % of the CPU they request on average.
pub(super) const HPA_MIN_REPLICAS: i64 = 2;
pub(super) const HPA_MAX_REPLICAS: i64 = 10;
pub(super) const HPA_CPU_PERCENT: i64 = 70;

/// The app's Deployment: its container in a pod template, its replicas, annotated with the
/// app's name and dependencies; `notes` (what the file set that is not carried over) are
/// comments on it.
pub(super) fn deployment(
    app: &AppSpec,
    parts: &Parts<'_>,
    notes: &[String],
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Yaml {
    let name = parts.name;
    let mut pod = Map::new();
    if let Some(seconds) = grace_period(app, ctx, true) {
        pod.put("terminationGracePeriodSeconds", Yaml::Int(seconds));
    }
    secure(&mut pod, Some(app), None, warnings);
    pod.put(
        "containers",
        Yaml::Seq(vec![container(app, parts, ctx, warnings)]),
    );
    let mut template = Map::new();
    template.put("metadata", {
        let mut m = Map::new();
        m.put("labels", labels(name));
        m.build()
    });
    template.put("spec", pod.build());

    let mut selector = Map::new();
    selector.put("matchLabels", labels(name));
    let mut spec = Map::new();
    if parts.cpu_relative {
        spec.comment(&format!(
            "No replicas: instances is relative to the CPUs, so the autoscaler ({name}-hpa.yaml) sets them."
        ));
    } else if !app.autostart {
        spec.comment("autostart: false: no replica runs until you scale it up.");
        spec.put("replicas", Yaml::Int(0));
    } else {
        spec.put("replicas", Yaml::Int(i64::from(app.instances)));
    }
    spec.put("selector", selector.build());
    spec.comment(
        "A new pod is ready before an old one stops: the Kubernetes form of `kelpie reload`.",
    );
    spec.put("strategy", rolling_update());
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
    let mut root = Map::new();
    for note in notes {
        root.comment(note);
    }
    root.put("apiVersion", s("apps/v1"));
    root.put("kind", s("Deployment"));
    root.put("metadata", metadata(name, Some(annotations.build())));
    root.put("spec", spec.build());
    root.build()
}

/// One new pod at a time, none stopped before its replacement is ready.
fn rolling_update() -> Yaml {
    let mut rolling = Map::new();
    rolling.put("maxUnavailable", Yaml::Int(0));
    rolling.put("maxSurge", Yaml::Int(1));
    let mut strategy = Map::new();
    strategy.put("type", s("RollingUpdate"));
    strategy.put("rollingUpdate", rolling.build());
    strategy.build()
}

/// The autoscaler of a Deployment whose `instances` is relative to the CPUs.
pub(super) fn autoscaler(name: &str, cpu_left_out: u32) -> Yaml {
    let mut target_ref = Map::new();
    target_ref.put("apiVersion", s("apps/v1"));
    target_ref.put("kind", s("Deployment"));
    target_ref.put("name", s(name));
    let mut target = Map::new();
    target.put("type", s("Utilization"));
    target.put("averageUtilization", Yaml::Int(HPA_CPU_PERCENT));
    let mut resource = Map::new();
    resource.put("name", s("cpu"));
    resource.put("target", target.build());
    let mut metric = Map::new();
    metric.put("type", s("Resource"));
    metric.put("resource", resource.build());
    let mut spec = Map::new();
    spec.put("scaleTargetRef", target_ref.build());
    spec.put("minReplicas", Yaml::Int(HPA_MIN_REPLICAS));
    spec.put("maxReplicas", Yaml::Int(HPA_MAX_REPLICAS));
    spec.put("metrics", Yaml::Seq(vec![metric.build()]));
    let mut root = Map::new();
    let what = match cpu_left_out {
        0 => "one process per CPU".to_string(),
        n => format!("one process per CPU but {n}"),
    };
    root.comment(&format!(
        "instances {} ({what} of the machine) has no fixed count on a cluster: each replica requests one CPU, and replicas are added while they use more than {HPA_CPU_PERCENT} % of it, from {HPA_MIN_REPLICAS} to {HPA_MAX_REPLICAS} (set the bounds to your cluster).",
        match cpu_left_out {
            0 => "\"max\"".to_string(),
            n => format!("-{n}"),
        }
    ));
    root.put("apiVersion", s("autoscaling/v2"));
    root.put("kind", s("HorizontalPodAutoscaler"));
    root.put("metadata", metadata(&format!("{name}-hpa"), None));
    root.put("spec", spec.build());
    root.build()
}
