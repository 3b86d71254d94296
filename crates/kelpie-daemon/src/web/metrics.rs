//! `GET /metrics`: Prometheus's text format (version 0.0.4), per instance, for the daemon and
//! for the host (`metrics/host_families.rs`), the Node runtime and the kernel's counters
//! (`metrics/runtime.rs`); the text format itself is in `metrics/text.rs`.

mod exceptions;
mod host_families;
mod runtime;
mod text;

use super::body::Body;
use super::{error, respond, Shared};
use crate::supervisor_channel::{Command, InstanceMetrics};
use bytes::Bytes;
use std::collections::HashMap;
#[cfg(test)]
use text::escape;
use text::{number, Family};
use tokio::sync::oneshot;

/// Answer a scrape.
pub(super) async fn serve(shared: &Shared) -> hyper::Response<Body> {
    let (tx, rx) = oneshot::channel();
    if shared
        .commands
        .send(Command::Metrics { reply: tx })
        .await
        .is_err()
    {
        return error(500, "Internal", crate::supervisor_channel::SHUTTING_DOWN);
    }
    let Ok(instances) = rx.await else {
        return error(500, "Internal", crate::supervisor_channel::SHUTTING_DOWN);
    };
    let lines: HashMap<u32, (u64, u64)> = {
        let hub = shared.logs.lock_hub();
        hub.line_counts()
            .into_iter()
            .map(|(pm_id, out, err)| (pm_id, (out, err)))
            .collect()
    };
    // /proc is a file system: read off the async thread.
    let (own, host) = crate::tasks::blocking(|| {
        (
            kelpie_sys::sample_process(std::process::id()),
            crate::host::read_now(),
        )
    })
    .await
    .unwrap_or_default();
    let daemon = DaemonSample {
        cpu_seconds: own.map(|s| s.cpu_ticks as f64 / kelpie_sys::clock_ticks_per_second() as f64),
        memory_bytes: own.map(|s| s.rss_bytes),
        uptime_seconds: crate::clock::now().mono_ms as f64 / 1000.0,
    };
    let mut text = render(&instances, &lines, &daemon);
    host_families::host_families(&mut text, &host.0, &host.1);
    exceptions::exceptions_family(&mut text, &shared.alerts.exception_counts());
    respond(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        Bytes::from(text),
    )
}

/// The daemon's own use.
pub(super) struct DaemonSample {
    /// CPU time used (seconds), when /proc could be read.
    pub cpu_seconds: Option<f64>,
    /// Resident memory (bytes), when /proc could be read.
    pub memory_bytes: Option<u64>,
    /// Since it started (seconds).
    pub uptime_seconds: f64,
}

/// An instance and the labels that name it in every per-instance family (app, namespace,
/// pm_id).
type Named<'a> = (&'a InstanceMetrics, [(&'static str, &'a str); 3]);

/// The whole exposition.
pub(super) fn render(
    instances: &[InstanceMetrics],
    lines: &HashMap<u32, (u64, u64)>,
    daemon: &DaemonSample,
) -> String {
    let mut text = String::new();
    let ids: Vec<String> = instances.iter().map(|m| m.info.pm_id.to_string()).collect();
    let named: Vec<Named> = instances
        .iter()
        .zip(&ids)
        .map(|(m, id)| {
            let info = &m.info;
            (
                m,
                [
                    ("app", info.spec.name.as_str()),
                    ("namespace", info.spec.namespace.as_str()),
                    ("pm_id", id.as_str()),
                ],
            )
        })
        .collect();
    plain_families(&mut text, &named);
    status_family(&mut text, &named);
    memory_limit_family(&mut text, &named);
    healthy_family(&mut text, &named);
    log_lines_family(&mut text, &named, lines);
    dropped_lines_family(&mut text, &named);
    app_metric_family(&mut text, &named);
    runtime::runtime_families(&mut text, &named);
    runtime::counter_families(&mut text, &named);
    daemon_families(&mut text, daemon);
    text
}

/// The per-instance families with one sample per instance and no label of their own: up,
/// restarts, CPU, memory, processes, uptime and health-check failures.
fn plain_families(text: &mut String, named: &[Named]) {
    type Value = fn(&InstanceMetrics) -> f64;
    let per_instance: [(&str, &str, &str, Value); 7] = [
        (
            "kelpie_up",
            "gauge",
            "Whether the instance's process is online (1) or not (0).",
            |m| f64::from(u8::from(m.info.state.status == kelpie_core::Status::Online)),
        ),
        (
            "kelpie_restarts_total",
            "counter",
            "Restarts of the instance since it was created or reset (the ↺ column of `kelpie list`).",
            |m| f64::from(m.info.state.restart_time),
        ),
        (
            "kelpie_cpu_seconds_total",
            "counter",
            "CPU time used by the instance's whole process tree since the daemon started, in seconds.",
            |m| m.cpu_seconds,
        ),
        (
            "kelpie_memory_bytes",
            "gauge",
            "Resident memory of the instance's whole process tree, in bytes (0 when not running).",
            |m| m.info.memory as f64,
        ),
        (
            "kelpie_processes",
            "gauge",
            "Processes in the instance's tree at the last reading.",
            |m| f64::from(m.processes),
        ),
        (
            "kelpie_uptime_seconds",
            "gauge",
            "How long the instance's current process has run, in seconds (0 when not running).",
            |m| m.info.uptime_ms as f64 / 1000.0,
        ),
        (
            "kelpie_health_check_failures_total",
            "counter",
            "Failed health-check probes of the instance that counted (after the start period), since the daemon started.",
            |m| m.health_failures as f64,
        ),
    ];
    for (name, kind, help, value) in per_instance {
        let mut family = Family::new(text, name, kind, help);
        for (m, labels) in named {
            family.sample(name, labels, value(m));
        }
    }
}

/// `kelpie_status`: the status as `kelpie list` spells it, so that an alert can tell an
/// instance that is down on purpose (`stopped`) from one that should run (`errored`, `waiting
/// restart`).
fn status_family(text: &mut String, named: &[Named]) {
    let name = "kelpie_status";
    let mut family = Family::new(
        text,
        name,
        "gauge",
        "The instance's status as `kelpie list` shows it (online, stopped, errored, waiting restart, launching, stopping), in the label `status`; always 1.",
    );
    for (m, [app, namespace, pm_id]) in named {
        let status = ("status", m.info.state.status.as_str());
        family.sample(name, &[*app, *namespace, *pm_id, status], 1.0);
    }
}

/// `kelpie_memory_limit_bytes`: each `max_memory_restart`, for the instances that have one.
fn memory_limit_family(text: &mut String, named: &[Named]) {
    let name = "kelpie_memory_limit_bytes";
    let mut family = Family::new(
        text,
        name,
        "gauge",
        "The instance's max_memory_restart, in bytes: it is restarted when kelpie_memory_bytes goes over it. Only instances that have one.",
    );
    for (m, labels) in named {
        if let Some(limit) = m.info.spec.max_memory_restart {
            family.sample(name, labels, limit as f64);
        }
    }
}

/// `kelpie_healthy`: the last health check's result, for instances with a health check and
/// a running process.
fn healthy_family(text: &mut String, named: &[Named]) {
    let name = "kelpie_healthy";
    let mut family = Family::new(
        text,
        name,
        "gauge",
        "Whether the instance's last health check passed (1) or not (0: failed, or none passed yet since its process started). Only instances with a health check and a running process.",
    );
    for (m, labels) in named {
        if let Some(health) = m.info.state.health {
            let healthy = health == kelpie_core::Health::Healthy;
            family.sample(name, labels, f64::from(u8::from(healthy)));
        }
    }
}

/// `kelpie_log_lines_total`: the lines each instance printed, by stream.
fn log_lines_family(text: &mut String, named: &[Named], lines: &HashMap<u32, (u64, u64)>) {
    let name = "kelpie_log_lines_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Lines the instance printed, by stream (out, err), since its id was given or the daemon started.",
    );
    for (m, [app, namespace, pm_id]) in named {
        let (out, err) = lines.get(&m.info.pm_id).copied().unwrap_or_default();
        for (stream, count) in [("out", out), ("err", err)] {
            family.sample(
                name,
                &[*app, *namespace, *pm_id, ("stream", stream)],
                count as f64,
            );
        }
    }
}

/// `kelpie_log_dropped_lines_total`: the lines that never reached each log file.
fn dropped_lines_family(text: &mut String, named: &[Named]) {
    let name = "kelpie_log_dropped_lines_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Lines that never reached the instance's log file (writer behind, disk full, unwritable), by file (out, err, combined). A file shared by several instances is counted in each.",
    );
    for (m, [app, namespace, pm_id]) in named {
        for file in &m.info.log_files {
            family.sample(
                name,
                &[*app, *namespace, *pm_id, ("file", file.kind.as_str())],
                file.dropped_lines as f64,
            );
        }
    }
}

/// `kelpie_app_metric`: what the apps publish themselves (`X_KELPIE_METRIC=<name>=<number>` on
/// their notify socket): one gauge family, the app's name for it in a label, so no app can
/// make up (or clash with) a metric name of Kelpie's.
fn app_metric_family(text: &mut String, named: &[Named]) {
    let name = "kelpie_app_metric";
    let mut family = Family::new(
        text,
        name,
        "gauge",
        "A value the instance's process published (X_KELPIE_METRIC=<name>=<number> on its notify socket, or a numeric @pm2/io metric), by its name. Deprecated for the Node runtime's metrics (Heap Size, Event Loop Latency...): use the nodejs_* families; the next release lists only the app's own here.",
    );
    for (m, [app, namespace, pm_id]) in named {
        for (metric, value) in &m.info.metrics {
            family.sample(name, &[*app, *namespace, *pm_id, ("name", metric)], *value);
        }
        // And what its PM2 SDK (`@pm2/io`) reports, when the value is a number (the SDK sends
        // some as text, "10.48"): under the metric's own name, unless a notify metric has it.
        for (metric, entry) in &m.info.sdk.monitor {
            if m.info.metrics.contains_key(metric) {
                continue;
            }
            if let Some(value) = sdk_number(&entry["value"]) {
                family.sample(name, &[*app, *namespace, *pm_id, ("name", metric)], value);
            }
        }
    }
}

/// A metric value of PM2's SDK as a number: a JSON number, or text holding one.
fn sdk_number(value: &serde_json::Value) -> Option<f64> {
    let number = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    number.is_finite().then_some(number)
}

/// The daemon's own families: its version, CPU and memory (when /proc could be read) and
/// uptime.
fn daemon_families(text: &mut String, daemon: &DaemonSample) {
    let version = env!("CARGO_PKG_VERSION");
    Family::new(
        text,
        "kelpie_daemon_info",
        "gauge",
        "The daemon's version (always 1).",
    )
    .sample("kelpie_daemon_info", &[("version", version)], 1.0);
    if let Some(cpu) = daemon.cpu_seconds {
        Family::new(
            text,
            "kelpie_daemon_cpu_seconds_total",
            "counter",
            "CPU time used by the daemon itself, in seconds.",
        )
        .sample("kelpie_daemon_cpu_seconds_total", &[], cpu);
    }
    if let Some(memory) = daemon.memory_bytes {
        Family::new(
            text,
            "kelpie_daemon_memory_bytes",
            "gauge",
            "Resident memory of the daemon itself, in bytes.",
        )
        .sample("kelpie_daemon_memory_bytes", &[], memory as f64);
    }
    Family::new(
        text,
        "kelpie_daemon_uptime_seconds",
        "gauge",
        "How long the daemon has run, in seconds.",
    )
    .sample("kelpie_daemon_uptime_seconds", &[], daemon.uptime_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_numbers_plain() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn daemon_families_have_help_and_type() {
        let text = render(
            &[],
            &HashMap::new(),
            &DaemonSample {
                cpu_seconds: Some(1.5),
                memory_bytes: Some(4096),
                uptime_seconds: 2.0,
            },
        );
        for line in [
            "# TYPE kelpie_up gauge",
            "# TYPE kelpie_restarts_total counter",
            "kelpie_daemon_cpu_seconds_total 1.5",
            "kelpie_daemon_memory_bytes 4096",
            "kelpie_daemon_uptime_seconds 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }

    /// An instance named `name` with id `pm_id`, as the supervisor would report it.
    fn instance(name: &str, pm_id: u32) -> InstanceMetrics {
        InstanceMetrics {
            info: kelpie_proto::ProcessInfo {
                pm_id,
                instance: 0,
                spec: kelpie_core::AppSpec {
                    name: name.into(),
                    namespace: "default".into(),
                    ..kelpie_core::AppSpec::default()
                },
                state: kelpie_core::InstanceState::default(),
                memory: 0,
                cpu: 0.0,
                uptime_ms: 0,
                out_log: String::new(),
                err_log: String::new(),
                username: String::new(),
                log_files: Vec::new(),
                status_text: None,
                metrics: Default::default(),
                sdk: Default::default(),
                counters: None,
            },
            cpu_seconds: 0.0,
            processes: 0,
            health_failures: 0,
        }
    }

    #[test]
    fn status_memory_limit_and_health_are_shown_only_where_they_exist() {
        let mut api = instance("api", 0);
        api.info.state.status = kelpie_core::Status::Errored;
        api.info.spec.max_memory_restart = Some(300 << 20);
        api.info.state.health = Some(kelpie_core::Health::Unhealthy);
        let mut web = instance("web", 1);
        web.info.state.status = kelpie_core::Status::Online;
        web.info.state.health = Some(kelpie_core::Health::Healthy);
        let plain = instance("plain", 2);
        let text = render(
            &[api, web, plain],
            &HashMap::new(),
            &DaemonSample {
                cpu_seconds: None,
                memory_bytes: None,
                uptime_seconds: 1.0,
            },
        );
        for line in [
            "# TYPE kelpie_status gauge",
            "kelpie_status{app=\"api\",namespace=\"default\",pm_id=\"0\",status=\"errored\"} 1",
            "kelpie_status{app=\"web\",namespace=\"default\",pm_id=\"1\",status=\"online\"} 1",
            "kelpie_status{app=\"plain\",namespace=\"default\",pm_id=\"2\",status=\"stopped\"} 1",
            "# TYPE kelpie_memory_limit_bytes gauge",
            "kelpie_memory_limit_bytes{app=\"api\",namespace=\"default\",pm_id=\"0\"} 314572800",
            "# TYPE kelpie_healthy gauge",
            "kelpie_healthy{app=\"api\",namespace=\"default\",pm_id=\"0\"} 0",
            "kelpie_healthy{app=\"web\",namespace=\"default\",pm_id=\"1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // No limit, no health check: no sample, rather than a made-up 0.
        for family in ["kelpie_memory_limit_bytes", "kelpie_healthy"] {
            let samples: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect();
            assert!(
                samples.iter().all(|l| !l.contains("app=\"plain\"")),
                "{samples:?}"
            );
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("kelpie_memory_limit_bytes{"))
                .count(),
            1,
            "{text}"
        );
    }
}
