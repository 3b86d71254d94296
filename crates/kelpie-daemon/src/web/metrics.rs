//! `GET /metrics`: Prometheus's text format (version 0.0.4), per instance and for the daemon.

use super::body::Body;
use super::{error, respond, Shared};
use crate::supervisor::{Command, InstanceMetrics};
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write;
use tokio::sync::oneshot;

/// Answer a scrape.
pub async fn serve(shared: &Shared) -> hyper::Response<Body> {
    let (tx, rx) = oneshot::channel();
    if shared
        .commands
        .send(Command::Metrics { reply: tx })
        .await
        .is_err()
    {
        return error(500, "Internal", "the daemon is shutting down");
    }
    let Ok(instances) = rx.await else {
        return error(500, "Internal", "the daemon is shutting down");
    };
    let lines: HashMap<u32, (u64, u64)> = {
        let hub = shared.logs.lock_hub();
        hub.line_counts()
            .into_iter()
            .map(|(pm_id, out, err)| (pm_id, (out, err)))
            .collect()
    };
    // /proc is a file system: read off the async thread.
    let own = tokio::task::spawn_blocking(|| kelpie_sys::sample_process(std::process::id()))
        .await
        .ok()
        .flatten();
    let daemon = DaemonSample {
        cpu_seconds: own.map(|s| s.cpu_ticks as f64 / kelpie_sys::clock_ticks_per_second() as f64),
        memory_bytes: own.map(|s| s.rss_bytes),
        uptime_seconds: crate::clock::now().mono_ms as f64 / 1000.0,
    };
    let text = render(&instances, &lines, &daemon);
    respond(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        Bytes::from(text),
    )
}

/// The daemon's own use.
pub struct DaemonSample {
    /// CPU time used (seconds), when /proc could be read.
    pub cpu_seconds: Option<f64>,
    /// Resident memory (bytes), when /proc could be read.
    pub memory_bytes: Option<u64>,
    /// Since it started (seconds).
    pub uptime_seconds: f64,
}

/// One metric family: its header, then its samples.
struct Family<'a> {
    text: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(text: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        Family { text }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The whole exposition.
pub fn render(
    instances: &[InstanceMetrics],
    lines: &HashMap<u32, (u64, u64)>,
    daemon: &DaemonSample,
) -> String {
    let mut text = String::new();
    let ids: Vec<String> = instances.iter().map(|m| m.info.pm_id.to_string()).collect();
    let labels = |i: usize| -> [(&str, &str); 3] {
        let info = &instances[i].info;
        [
            ("app", info.spec.name.as_str()),
            ("namespace", info.spec.namespace.as_str()),
            ("pm_id", ids[i].as_str()),
        ]
    };
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
        let mut family = Family::new(&mut text, name, kind, help);
        for (i, m) in instances.iter().enumerate() {
            family.sample(name, &labels(i), value(m));
        }
    }
    {
        let name = "kelpie_log_lines_total";
        let mut family = Family::new(
            &mut text,
            name,
            "counter",
            "Lines the instance printed, by stream (out, err), since its id was given or the daemon started.",
        );
        for (i, m) in instances.iter().enumerate() {
            let (out, err) = lines.get(&m.info.pm_id).copied().unwrap_or_default();
            let [app, namespace, pm_id] = labels(i);
            for (stream, count) in [("out", out), ("err", err)] {
                family.sample(
                    name,
                    &[app, namespace, pm_id, ("stream", stream)],
                    count as f64,
                );
            }
        }
    }
    {
        let name = "kelpie_log_dropped_lines_total";
        let mut family = Family::new(
            &mut text,
            name,
            "counter",
            "Lines that never reached the instance's log file (writer behind, disk full, unwritable), by file (out, err, combined). A file shared by several instances is counted in each.",
        );
        for (i, m) in instances.iter().enumerate() {
            let [app, namespace, pm_id] = labels(i);
            for file in &m.info.log_files {
                family.sample(
                    name,
                    &[app, namespace, pm_id, ("file", file.kind.as_str())],
                    file.dropped_lines as f64,
                );
            }
        }
    }
    {
        // What the apps publish themselves (`X_KELPIE_METRIC=<name>=<number>` on their notify
        // socket): one gauge family, the app's name for it in a label, so no app can make up
        // (or clash with) a metric name of Kelpie's.
        let name = "kelpie_app_metric";
        let mut family = Family::new(
            &mut text,
            name,
            "gauge",
            "A value the instance's process published on its notify socket (X_KELPIE_METRIC=<name>=<number>), by its name.",
        );
        for (i, m) in instances.iter().enumerate() {
            let [app, namespace, pm_id] = labels(i);
            for (metric, value) in &m.info.metrics {
                family.sample(name, &[app, namespace, pm_id, ("name", metric)], *value);
            }
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    Family::new(
        &mut text,
        "kelpie_daemon_info",
        "gauge",
        "The daemon's version (always 1).",
    )
    .sample("kelpie_daemon_info", &[("version", version)], 1.0);
    if let Some(cpu) = daemon.cpu_seconds {
        Family::new(
            &mut text,
            "kelpie_daemon_cpu_seconds_total",
            "counter",
            "CPU time used by the daemon itself, in seconds.",
        )
        .sample("kelpie_daemon_cpu_seconds_total", &[], cpu);
    }
    if let Some(memory) = daemon.memory_bytes {
        Family::new(
            &mut text,
            "kelpie_daemon_memory_bytes",
            "gauge",
            "Resident memory of the daemon itself, in bytes.",
        )
        .sample("kelpie_daemon_memory_bytes", &[], memory as f64);
    }
    Family::new(
        &mut text,
        "kelpie_daemon_uptime_seconds",
        "gauge",
        "How long the daemon has run, in seconds.",
    )
    .sample("kelpie_daemon_uptime_seconds", &[], daemon.uptime_seconds);
    text
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
}
