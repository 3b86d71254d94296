//! Listening sockets the daemon owns for apps with a port: created once, kept for the app's
//! whole life, handed to every instance (fd 3). Because the daemon always holds a copy, the
//! port is never without a listener, even while every instance is being replaced.

use kelpie_core::ListenAddress;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// One listening socket and the address it was asked for.
#[derive(Debug)]
pub struct ListenSocket {
    address: ListenAddress,
    fd: OwnedFd,
    /// The file of a Unix socket, removed when the socket is closed.
    unix_path: Option<PathBuf>,
    /// The keeper's copy, so the port stays open if the daemon dies.
    kept: Option<crate::keeper::Held>,
}

impl ListenSocket {
    /// Bind and listen. Hosts are IP addresses or `localhost` (no name lookup: it would block
    /// the daemon). The error names the address, for a message that also names the app.
    pub fn open(address: &ListenAddress) -> Result<ListenSocket, String> {
        let failed = |e: std::io::Error| format!("cannot listen on {address}: {e}");
        match address {
            ListenAddress::Tcp { host, port } => {
                let ip = match host.as_deref() {
                    None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    Some(text) => text.parse().map_err(|_| {
                        format!("cannot listen on {address}: `{text}` is not an IP address (or `localhost`)")
                    })?,
                };
                let fd = match kelpie_sys::listen_tcp(SocketAddr::new(ip, *port)) {
                    // A host without IPv6: every IPv4 address instead.
                    Err(e)
                        if host.is_none()
                            && !matches!(
                                e.kind(),
                                std::io::ErrorKind::AddrInUse
                                    | std::io::ErrorKind::PermissionDenied
                            ) =>
                    {
                        kelpie_sys::listen_tcp(SocketAddr::new(
                            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            *port,
                        ))
                    }
                    other => other,
                }
                .map_err(failed)?;
                Ok(ListenSocket {
                    address: address.clone(),
                    fd,
                    unix_path: None,
                    kept: None,
                })
            }
            ListenAddress::Unix { path } => {
                remove_stale_socket(path);
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(failed)?;
                let fd = OwnedFd::from(listener);
                kelpie_sys::set_backlog(fd.as_fd()).map_err(failed)?;
                Ok(ListenSocket {
                    address: address.clone(),
                    fd,
                    unix_path: Some(PathBuf::from(path)),
                    kept: None,
                })
            }
        }
    }

    /// The socket of `address` handed over by the daemon this one replaced (`kelpie update`):
    /// still bound and listening, with its queue of waiting connections.
    pub fn resume(address: &ListenAddress, fd: OwnedFd) -> ListenSocket {
        let unix_path = match address {
            ListenAddress::Unix { path } => Some(PathBuf::from(path)),
            ListenAddress::Tcp { .. } => None,
        };
        ListenSocket {
            address: address.clone(),
            fd,
            unix_path,
            kept: None,
        }
    }

    /// Have the keeper hold a copy for app `app`, so clients are still queued (never refused)
    /// while no daemon runs.
    pub fn kept_for(mut self, app: &str) -> ListenSocket {
        self.kept = crate::keeper::hold(
            crate::keeper::Holding::Socket {
                app: app.to_string(),
            },
            &[self.fd.as_fd()],
        );
        self
    }

    /// The address it was opened for.
    pub fn address(&self) -> &ListenAddress {
        &self.address
    }

    /// The descriptor, to hand to a child.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A socket file left by a process that is gone (nobody accepts on it) is in the way of a new
/// bind; a live one, or any other kind of file, is left alone so the bind reports it.
fn remove_stale_socket(path: &str) {
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_socket_is_shared_and_a_used_port_is_an_error() {
        let socket = ListenSocket::open(&ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: free_port(),
        })
        .expect("open");
        let again = ListenSocket::open(socket.address());
        let message = again.expect_err("in use");
        assert!(message.contains("cannot listen on 127.0.0.1:"), "{message}");
        let bad = ListenSocket::open(&ListenAddress::Tcp {
            host: Some("example.com".into()),
            port: 80,
        });
        assert!(bad.expect_err("no lookups").contains("not an IP address"));
    }

    #[test]
    fn a_unix_socket_file_is_replaced_when_stale_and_removed_at_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.sock").display().to_string();
        let address = ListenAddress::Unix { path: path.clone() };
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale"));
        let socket = ListenSocket::open(&address).expect("replaces the stale file");
        assert!(ListenSocket::open(&address).is_err(), "a live one is kept");
        std::os::unix::net::UnixStream::connect(&path).expect("accepts");
        drop(socket);
        assert!(!std::path::Path::new(&path).exists());
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    }
}
