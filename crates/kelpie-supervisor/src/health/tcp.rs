//! The TCP probe (does something accept a connection?), and connecting for the HTTP probe.

use super::{within, ProbeError};
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// `host:port` as people write it, brackets around an IPv6 address.
pub(super) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connect to the first address of `host` that accepts; `shown` names it in reasons.
pub async fn connect(host: &str, port: u16, shown: &str) -> Result<TcpStream, ProbeError> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ProbeError::Resolve {
            host: host.to_string(),
            cause: source,
        })?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        None => ProbeError::NoAddress {
            host: host.to_string(),
        },
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => ProbeError::Refused {
            at: shown.to_string(),
        },
        Some(source) => ProbeError::Connect {
            at: shown.to_string(),
            cause: source,
        },
    })
}

pub(super) async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Result<(), ProbeError> {
    // A host may come bracketed (`[::1]`) from a config; the resolver wants it bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let shown = authority(bare, port);
    // Dropping the stream closes it: the probe only asks whether something accepts.
    within(timeout, &shown, connect(bare, port, &shown))
        .await
        .map(drop)
}
