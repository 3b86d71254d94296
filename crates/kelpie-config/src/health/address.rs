//! Where a probe of the app goes (its Kelpie-owned TCP port, else a numeric `PORT`), and the
//! `tcp` probe: a port, `host:port`, or the app's own port.

use super::keys::Errors;
use super::LOCALHOST;
use crate::convert::{self, describe};
use kelpie_core::{AppSpec, HealthProbe, ListenAddress};
use serde_json::Value;

/// `tcp`: a port (on 127.0.0.1), `host:port`, or `true` for the app's own port.
pub(super) fn tcp(
    key: &str,
    value: &Value,
    spec: &AppSpec,
    errors: &mut Errors<'_>,
) -> Option<HealthProbe> {
    let expected = || {
        format!(
            "expected a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or true (the app's port), got {}",
            describe(value)
        )
    };
    let own_port = match value {
        Value::Bool(b) => *b,
        // `--health-tcp true` arrives as text.
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    if own_port {
        return match app_address(spec) {
            Ok((host, port)) => Some(HealthProbe::Tcp { host, port }),
            Err(message) => {
                errors.push(Some(key), message);
                None
            }
        };
    }
    let address = match value {
        Value::Number(_) => convert::port(value)
            .ok()
            .map(|port| ListenAddress::Tcp { host: None, port }),
        Value::String(s) if !s.trim().starts_with('/') && !s.trim().starts_with("unix:") => {
            ListenAddress::parse(s).ok()
        }
        _ => None,
    };
    match address {
        Some(ListenAddress::Tcp { host, port }) => Some(HealthProbe::Tcp {
            host: host.unwrap_or_else(|| LOCALHOST.to_string()),
            port,
        }),
        _ => {
            errors.push(Some(key), expected());
            None
        }
    }
}

/// The host and port a probe of "the app" goes to: its Kelpie-owned TCP port (on its host when
/// that is one address, not a wildcard), else a numeric `PORT` in its environment.
pub(super) fn app_address(spec: &AppSpec) -> Result<(String, u16), NoAppAddress> {
    if spec.increment_var.as_deref() == Some("PORT") && spec.instances > 1 {
        // Each instance listens on its own PORT, but a probe has one address for all of them.
        return Err(NoAppAddress::PortPerInstance);
    }
    if let Some(ListenAddress::Tcp { host, port }) = &spec.listen {
        let host = match host.as_deref() {
            Some(h) if !matches!(h, "0.0.0.0" | "::" | "") => h.to_string(),
            _ => LOCALHOST.to_string(),
        };
        return Ok((host, *port));
    }
    match spec.env_port() {
        Some(port) => Ok((LOCALHOST.to_string(), port)),
        None => Err(NoAppAddress::NoPort),
    }
}

/// Why a probe cannot go to "the app" ([`app_address`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NoAppAddress {
    /// `increment_var: PORT` with several instances: one address cannot reach them all.
    #[error(
        "each instance has its own PORT (`increment_var: PORT`), so a check on the app's port would probe only the first instance; use an `exec` check (it runs with the instance's PORT) or give an explicit address"
    )]
    PortPerInstance,
    /// Neither a Kelpie-owned TCP port nor a numeric `PORT`.
    #[error(
        "the app has no TCP port to check: set its `port`, or PORT in its `env`, or give a full URL (http://127.0.0.1:3000/health)"
    )]
    NoPort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_address_prefers_its_listen_host_unless_it_is_a_wildcard() {
        let with = |listen: &str| AppSpec {
            listen: ListenAddress::parse(listen).ok(),
            ..AppSpec::default()
        };
        assert_eq!(app_address(&with("3000")), Ok((LOCALHOST.into(), 3000)));
        assert_eq!(
            app_address(&with("0.0.0.0:3000")),
            Ok((LOCALHOST.into(), 3000))
        );
        assert_eq!(
            app_address(&with("[::]:3000")),
            Ok((LOCALHOST.into(), 3000))
        );
        assert_eq!(
            app_address(&with("10.0.0.5:3000")),
            Ok(("10.0.0.5".into(), 3000))
        );
        assert!(app_address(&with("unix:/run/a.sock")).is_err());
    }
}
