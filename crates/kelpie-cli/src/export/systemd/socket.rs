//! The `.socket` unit of a port Kelpie owned, passed to the app as fd 3.

use super::{header, Unit};
use kelpie_core::{AppSpec, ListenAddress};
use std::fmt::Write as _;

/// `kelpie-<name>.socket` (or a `@.socket` template whose instances each bind the port with
/// SO_REUSEPORT, the kernel spreading connections, since systemd cannot hand one socket to
/// several services) for a port Kelpie owns.
pub(super) fn socket_unit(
    app: &AppSpec,
    unit: &Unit,
    warnings: &mut Vec<String>,
) -> Option<(String, String)> {
    let listen = app.listen.as_ref()?;
    let name = &app.name;
    let address = match listen {
        ListenAddress::Tcp { host: None, port } => port.to_string(),
        ListenAddress::Tcp {
            host: Some(h),
            port,
        } if h.contains(':') => format!("[{h}]:{port}"),
        ListenAddress::Tcp {
            host: Some(h),
            port,
        } => format!("{h}:{port}"),
        ListenAddress::Unix { path } => {
            if unit.template {
                warnings.push(format!(
                    "app `{name}`: field `port` (`{listen}`): a Unix socket cannot be shared by template instances; no .socket unit is written"
                ));
                return None;
            }
            path.clone()
        }
    };
    let socket_name = if unit.template {
        format!("{}@.socket", unit.base)
    } else {
        format!("{}.socket", unit.base)
    };
    let mut text = header(app);
    text.push_str("# The port Kelpie owned: the socket is passed as fd 3 (LISTEN_FDS=1).\n");
    text.push_str("\n[Socket]\n");
    let _ = writeln!(text, "ListenStream={address}");
    if unit.template {
        text.push_str("ReusePort=true\n");
    }
    text.push_str("\n[Install]\nWantedBy=sockets.target\n");
    Some((socket_name, text))
}
