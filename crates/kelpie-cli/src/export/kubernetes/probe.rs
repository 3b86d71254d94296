//! The container's probes: the health check (or the app's port) as liveness and readiness, and
//! a startup probe for the time the file gives the app to start; the timing carried over.

use super::super::yaml::{s, strs, Map, Yaml};
use super::super::{seconds_up, tcp_port};
use kelpie_config::Written;
use kelpie_core::{AppSpec, HealthCheck, HealthProbe};

/// The container's probes: liveness and readiness from the health check (a TCP probe on the
/// app's port without one), and a startup probe when the file gives the app time to start
/// (`wait_ready`, `listen_timeout`).
pub(super) struct Probes {
    check: Option<(&'static str, Yaml)>,
    timing: Timing,
    startup_ms: Option<u64>,
}

/// A probe's timing, in milliseconds as Kelpie keeps them.
struct Timing {
    start_period_ms: u64,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
}

impl Probes {
    pub(super) fn of(app: &AppSpec, written: &Written, warnings: &mut Vec<String>) -> Probes {
        let (check, timing) = match (&app.health_check, tcp_port(app)) {
            (Some(check), _) => (
                Some(action(check, &app.name, warnings)),
                Timing {
                    start_period_ms: check.start_period_ms,
                    interval_ms: check.interval_ms,
                    timeout_ms: check.timeout_ms,
                    failures: check.failures,
                },
            ),
            (None, port) => {
                let defaults = HealthCheck::default();
                let check = port.map(|port| {
                    let mut tcp = Map::new();
                    tcp.put("port", Yaml::Int(i64::from(port)));
                    ("tcpSocket", tcp.build())
                });
                let timing = Timing {
                    start_period_ms: defaults.start_period_ms,
                    interval_ms: defaults.interval_ms,
                    timeout_ms: defaults.timeout_ms,
                    failures: defaults.failures,
                };
                (check, timing)
            }
        };
        let gives_time = ["wait_ready", "listen_timeout"]
            .iter()
            .any(|f| written.fields.contains(f));
        if gives_time && check.is_none() {
            warnings.push(format!(
                "app `{}`: fields `wait_ready`/`listen_timeout` give no startup probe: the app has no health check and no port to probe",
                app.name
            ));
        }
        Probes {
            check,
            timing,
            startup_ms: gives_time.then_some(app.listen_timeout_ms),
        }
    }

    /// The probes as the container's keys, in the order Kubernetes documents them.
    pub(super) fn entries(&self) -> Vec<(&'static str, Yaml)> {
        let Some((kind, action)) = &self.check else {
            return Vec::new();
        };
        let with = |initial_ms: u64, period_ms: u64, failures: u32| {
            let mut probe = Map::new();
            probe.put(kind, action.clone());
            probe.put(
                "initialDelaySeconds",
                Yaml::Int(seconds_up(initial_ms, 0) as i64),
            );
            probe.put("periodSeconds", Yaml::Int(seconds_up(period_ms, 1) as i64));
            probe.put(
                "timeoutSeconds",
                Yaml::Int(seconds_up(self.timing.timeout_ms, 1) as i64),
            );
            probe.put("failureThreshold", Yaml::Int(i64::from(failures.max(1))));
            probe.build()
        };
        let t = &self.timing;
        let mut entries = vec![
            (
                "livenessProbe",
                with(t.start_period_ms, t.interval_ms, t.failures),
            ),
            (
                "readinessProbe",
                with(t.start_period_ms, t.interval_ms, t.failures),
            ),
        ];
        if let Some(ms) = self.startup_ms {
            // Checked every second for `listen_timeout`; the others wait for it to succeed.
            let tries = u32::try_from(seconds_up(ms, 1)).unwrap_or(u32::MAX);
            entries.push(("startupProbe", with(0, 1000, tries)));
        }
        entries
    }
}

/// The check itself: an `httpGet` or `tcpSocket` probe, or an `exec` one. The kubelet probes
/// the pod's IP, so a check of 127.0.0.1 targets the pod itself (no `host`).
fn action(check: &HealthCheck, app: &str, warnings: &mut Vec<String>) -> (&'static str, Yaml) {
    match &check.probe {
        HealthProbe::Http { url, status } => {
            let (port, path) = split_url(url);
            let mut get = Map::new();
            get.put("path", s(path));
            get.put("port", Yaml::Int(i64::from(port)));
            if let Some(code) = status {
                warnings.push(format!(
                    "app `{app}`: field `health_check.status` ({code}): Kubernetes accepts any status from 200 to 399"
                ));
            }
            ("httpGet", get.build())
        }
        HealthProbe::Tcp { host, port } => {
            let mut tcp = Map::new();
            tcp.put("port", Yaml::Int(i64::from(*port)));
            if host != "127.0.0.1" && host != "localhost" {
                warnings.push(format!(
                    "app `{app}`: field `health_check.tcp`: the probe checks port {port} of the pod, not {host}"
                ));
            }
            ("tcpSocket", tcp.build())
        }
        HealthProbe::Exec { command } => {
            let mut exec = Map::new();
            exec.put("command", strs(["sh", "-c", command.as_str()]));
            ("exec", exec.build())
        }
    }
}

/// Port and path of `http://host[:port]/path` (kelpie-config only accepts plain http).
fn split_url(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let port = authority
        .rsplit_once(':')
        .filter(|(host, _)| !host.ends_with(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80);
    (port, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_port_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:3000/h?x=1"),
            (3000, "/h?x=1".to_string())
        );
        assert_eq!(split_url("http://[::1]:81"), (81, "/".to_string()));
        assert_eq!(split_url("http://example"), (80, "/".to_string()));
    }
}
