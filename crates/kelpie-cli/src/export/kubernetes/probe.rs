//! A health check as the container's probes: an `httpGet` or `tcpSocket` probe, or an `exec`
//! one; the timing carried over.

use super::super::seconds_up;
use super::super::yaml::{s, strs, Map, Yaml};
use kelpie_core::{HealthCheck, HealthProbe};

/// Liveness and readiness from the health check. The kubelet probes the pod's IP, so a probe
/// on 127.0.0.1 targets the pod itself (no `host`).
pub(super) fn probe(check: &HealthCheck, app: &str, warnings: &mut Vec<String>) -> Yaml {
    let mut probe = Map::new();
    match &check.probe {
        HealthProbe::Http { url, status } => {
            let (port, path) = split_url(url);
            let mut get = Map::new();
            get.put("path", s(path));
            get.put("port", Yaml::Int(i64::from(port)));
            probe.put("httpGet", get.build());
            if let Some(code) = status {
                warnings.push(format!(
                    "app `{app}`: field `health_check.status` ({code}): Kubernetes accepts any status from 200 to 399"
                ));
            }
        }
        HealthProbe::Tcp { host, port } => {
            let mut tcp = Map::new();
            tcp.put("port", Yaml::Int(i64::from(*port)));
            probe.put("tcpSocket", tcp.build());
            if host != "127.0.0.1" && host != "localhost" {
                warnings.push(format!(
                    "app `{app}`: field `health_check.tcp`: the probe checks port {port} of the pod, not {host}"
                ));
            }
        }
        HealthProbe::Exec { command } => {
            let mut exec = Map::new();
            exec.put("command", strs(["sh", "-c", command.as_str()]));
            probe.put("exec", exec.build());
        }
    }
    probe.put(
        "initialDelaySeconds",
        Yaml::Int(seconds_up(check.start_period_ms, 0) as i64),
    );
    probe.put(
        "periodSeconds",
        Yaml::Int(seconds_up(check.interval_ms, 1) as i64),
    );
    probe.put(
        "timeoutSeconds",
        Yaml::Int(seconds_up(check.timeout_ms, 1) as i64),
    );
    probe.put("failureThreshold", Yaml::Int(i64::from(check.failures)));
    probe.build()
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
