//! Where an app's Kelpie-owned socket listens ([`ListenAddress`]): a TCP port (with a host) or
//! a Unix socket path; parsed from and printed as the config writes it.

use serde::{Deserialize, Serialize};

/// Where the daemon listens for an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListenAddress {
    /// A TCP port; no host = every address, IPv6 and IPv4.
    Tcp {
        /// The host to bind (`127.0.0.1`, `::1`...), if not every address.
        host: Option<String>,
        /// The port.
        port: u16,
    },
    /// A Unix socket at this absolute path.
    Unix {
        /// The socket's path.
        path: String,
    },
}

/// Text that is none of the forms [`ListenAddress::parse`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock), got `{text}`"
)]
pub struct BadListenAddress {
    /// The text, trimmed.
    pub text: String,
}

impl ListenAddress {
    /// Read `3000`, `127.0.0.1:3000`, `[::1]:3000`, `unix:/run/app.sock` or `/run/app.sock`.
    pub fn parse(text: &str) -> Result<ListenAddress, BadListenAddress> {
        let text = text.trim();
        let bad = || BadListenAddress {
            text: text.to_string(),
        };
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad()),
            Ok(port) => Ok(port),
        };
        if let Some(path) = text
            .strip_prefix("unix:")
            .or_else(|| text.starts_with('/').then_some(text))
        {
            return if path.starts_with('/') {
                Ok(ListenAddress::Unix {
                    path: path.to_string(),
                })
            } else {
                Err(bad())
            };
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            return Ok(ListenAddress::Tcp {
                host: Some(host.to_string()),
                port: port_of(port)?,
            });
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                Ok(ListenAddress::Tcp {
                    host: Some(host.to_string()),
                    port: port_of(port)?,
                })
            }
            Some(_) => Err(bad()),
            None => Ok(ListenAddress::Tcp {
                host: None,
                port: port_of(text)?,
            }),
        }
    }

    /// The TCP port, if it is one.
    pub fn port(&self) -> Option<u16> {
        match self {
            ListenAddress::Tcp { port, .. } => Some(*port),
            ListenAddress::Unix { .. } => None,
        }
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp { host: None, port } => write!(f, "{port}"),
            ListenAddress::Tcp {
                host: Some(host),
                port,
            } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            ListenAddress::Tcp {
                host: Some(host),
                port,
            } => write!(f, "{host}:{port}"),
            ListenAddress::Unix { path } => write!(f, "unix:{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_and_print_back() {
        for text in ["3000", "127.0.0.1:3000", "[::1]:3000", "unix:/run/app.sock"] {
            let address = ListenAddress::parse(text).expect(text);
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            ListenAddress::parse("/run/a.sock"),
            Ok(ListenAddress::Unix {
                path: "/run/a.sock".into()
            })
        );
        assert_eq!(
            ListenAddress::parse("localhost:80").map(|a| a.port()),
            Ok(Some(80))
        );
        for bad in ["0", "70000", "x", "::1:80", "unix:rel.sock", ""] {
            assert!(ListenAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
