//! Listening sockets the daemon owns for apps with a port: created once, kept for the app's
//! whole life, handed to every instance (fd 3). Because the daemon always holds a copy, the
//! port is never without a listener, even while every instance is being replaced.

use kelpie_core::ListenAddress;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

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
    pub fn open(address: &ListenAddress) -> Result<ListenSocket, ListenError> {
        let failed = |e: std::io::Error| ListenError::new(address, &e);
        match address {
            ListenAddress::Tcp { host, port } => {
                let ip = match host.as_deref() {
                    None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    Some(text) => text.parse().map_err(|_| ListenError {
                        message: format!("cannot listen on {address}: `{text}` is not an IP address (or `localhost`)"),
                        kind: std::io::ErrorKind::InvalidInput,
                        errno: None,
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

    /// Have the keeper hold a copy, as one of the sockets app `app` claimed (see
    /// [`ClaimedSockets`]).
    fn kept_as_claimed(mut self, app: &str) -> ListenSocket {
        self.kept = crate::keeper::hold(
            crate::keeper::Holding::Claimed {
                app: app.to_string(),
                address: self.address.clone(),
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

/// Why a socket could not be opened: the message names the address; the kind and the system's
/// error number (when there is one) let the Node shim give the error Node would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenError {
    /// What failed, naming the address.
    pub message: String,
    /// What kind of failure.
    pub kind: std::io::ErrorKind,
    /// The system error number.
    pub errno: Option<i32>,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ListenError {
    fn new(address: &ListenAddress, e: &std::io::Error) -> ListenError {
        ListenError {
            message: format!("cannot listen on {address}: {e}"),
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }

    /// The error's name as Node (libuv) names it (`EADDRINUSE`...), for the Node shim.
    pub fn code(&self) -> &'static str {
        use std::io::ErrorKind;
        match self.kind {
            ErrorKind::AddrInUse => "EADDRINUSE",
            ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
            ErrorKind::PermissionDenied => "EACCES",
            ErrorKind::InvalidInput => "EINVAL",
            _ => "EIO",
        }
    }
}

/// A claimed socket passed from one daemon to the next (`kelpie update`, or the keeper of one
/// that died): an app that asked for it, its address, the socket.
pub struct HandedSocket {
    /// An app that asked for it.
    pub app: String,
    /// The address it is bound to.
    pub address: ListenAddress,
    /// The listening socket.
    pub fd: OwnedFd,
}

/// Make the socket's open file description non-blocking (shared by every copy of it).
fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    std::net::TcpListener::from(fd.try_clone()?).set_nonblocking(true)
}

/// The sockets cluster-mode Node apps' code asked for (`app.listen(3000)`): the daemon binds an
/// address when an instance first asks for it (the Node shim asks on the app's `listen()`), and
/// hands that same socket to every instance that asks after, as Node's cluster primary does.
/// One socket per address for the whole daemon, as under PM2, whose daemon is one cluster
/// primary for every app: two apps listening on the same port share it. A socket is kept (and
/// held by the keeper) while an app that asked for it exists, so a reload or a restart never
/// leaves the port without a listener.
#[derive(Debug, Default)]
pub struct PortRegistry {
    sockets: Mutex<Vec<Claimed>>,
    /// How the apps' keep-alive connections are spread across their instances.
    loads: crate::balance::ConnectionLoads,
}

#[derive(Debug)]
struct Claimed {
    socket: Arc<ListenSocket>,
    /// The apps that asked for it.
    apps: std::collections::BTreeSet<String>,
}

impl PortRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Claimed>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The socket for `address`, for app `app`: the one already bound, or a new one (held by
    /// the keeper too). Binding does not block: no name lookup is made here.
    pub fn claim(
        &self,
        app: &str,
        address: &ListenAddress,
    ) -> Result<Arc<ListenSocket>, ListenError> {
        let mut sockets = self.lock();
        if let Some(claimed) = sockets.iter_mut().find(|c| c.socket.address() == address) {
            claimed.apps.insert(app.to_string());
            return Ok(claimed.socket.clone());
        }
        let socket = ListenSocket::open(address)?;
        // Node takes a handle passed over IPC as it is: left blocking, the instances that
        // lose the race for a connection would block in accept() (all of them are woken), and
        // stop serving and hearing signals until the next connection.
        set_nonblocking(&socket.fd).map_err(|e| ListenError::new(address, &e))?;
        let socket = Arc::new(socket.kept_as_claimed(app));
        sockets.push(Claimed {
            socket: socket.clone(),
            apps: [app.to_string()].into(),
        });
        Ok(socket)
    }

    /// A socket handed over by the daemon this one replaced (or kept by the keeper of one that
    /// died), for its app's instances to be given again.
    pub fn adopt(&self, handed: HandedSocket) {
        let HandedSocket { app, address, fd } = handed;
        let mut sockets = self.lock();
        if let Some(claimed) = sockets.iter_mut().find(|c| c.socket.address() == &address) {
            claimed.apps.insert(app);
            return; // this copy closes: the one kept is the same socket
        }
        let socket = ListenSocket::resume(&address, fd).kept_as_claimed(&app);
        sockets.push(Claimed {
            socket: Arc::new(socket),
            apps: [app].into(),
        });
    }

    /// Whether app `app` has asked for a socket: its processes then listen on shared sockets,
    /// and a new process is ready once it does.
    pub fn any_for(&self, app: &str) -> bool {
        self.lock().iter().any(|c| c.apps.contains(app))
    }

    /// App `app` is gone: the sockets no other app uses are closed (the processes still
    /// stopping hold their own copies until they exit).
    pub fn forget_app(&self, app: &str) {
        self.lock().retain_mut(|c| {
            c.apps.remove(app);
            !c.apps.is_empty()
        });
    }

    /// App `old` is now called `new`.
    pub fn rename_app(&self, old: &str, new: &str) {
        for claimed in self.lock().iter_mut() {
            if claimed.apps.remove(old) {
                claimed.apps.insert(new.to_string());
            }
        }
    }

    /// Every app is gone.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Second descriptors of every socket, with one app that uses it, for `kelpie update` to
    /// pass on.
    pub fn hand_over(&self) -> std::io::Result<Vec<HandedSocket>> {
        let mut handed = Vec::new();
        for claimed in self.lock().iter() {
            if let Some(app) = claimed.apps.first() {
                handed.push(HandedSocket {
                    app: app.clone(),
                    address: claimed.socket.address().clone(),
                    fd: claimed.socket.fd().try_clone_to_owned()?,
                });
            }
        }
        Ok(handed)
    }
}

/// One app's view of the [`PortRegistry`], given to its instances' links.
#[derive(Debug, Clone)]
pub struct ClaimedSockets {
    app: String,
    registry: Arc<PortRegistry>,
}

impl ClaimedSockets {
    /// App `app`'s view of `registry`.
    pub fn of(app: &str, registry: &Arc<PortRegistry>) -> Arc<ClaimedSockets> {
        Arc::new(ClaimedSockets {
            app: app.to_string(),
            registry: registry.clone(),
        })
    }

    /// See [`PortRegistry::claim`].
    pub fn claim(&self, address: &ListenAddress) -> Result<Arc<ListenSocket>, ListenError> {
        self.registry.claim(&self.app, address)
    }

    /// Whether the app has asked for a socket (see [`PortRegistry::any_for`]).
    pub fn any(&self) -> bool {
        self.registry.any_for(&self.app)
    }

    /// Process `process` of the app holds `connections` on its shared sockets; how many it
    /// should keep, when fewer (see [`crate::balance`]).
    pub fn report_connections(&self, process: u64, connections: u64) -> Option<u64> {
        self.registry.loads.report(&self.app, process, connections)
    }

    /// Process `process` of the app serves on its shared sockets: it counts in the app's
    /// spread from now on, with no connection until it reports some.
    pub fn join(&self, process: u64) {
        self.registry.loads.join(&self.app, process);
    }

    /// Process `process` of the app is gone.
    pub fn leave(&self, process: u64) {
        self.registry.loads.leave(&self.app, process);
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
        let error = again.expect_err("in use");
        assert_eq!(error.code(), "EADDRINUSE");
        let message = error.to_string();
        assert!(message.contains("cannot listen on 127.0.0.1:"), "{message}");
        let bad = ListenSocket::open(&ListenAddress::Tcp {
            host: Some("example.com".into()),
            port: 80,
        });
        assert!(bad
            .expect_err("no lookups")
            .message
            .contains("not an IP address"));
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

    #[test]
    fn a_claimed_address_is_bound_once_shared_and_non_blocking() {
        let registry = Arc::new(PortRegistry::default());
        let api = ClaimedSockets::of("api", &registry);
        assert!(!api.any());
        let address = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: free_port(),
        };
        let first = api.claim(&address).expect("bound");
        let again = api.claim(&address).expect("the same");
        assert!(Arc::ptr_eq(&first, &again));
        assert!(api.any());
        // Another app on the same port shares it, as under PM2's one cluster primary.
        let other = ClaimedSockets::of("other", &registry);
        assert!(Arc::ptr_eq(&first, &other.claim(&address).expect("shared")));
        assert_eq!(registry.hand_over().expect("dup").len(), 1);
        // Non-blocking: an accept with nobody waiting returns at once.
        let listener = std::net::TcpListener::from(first.fd().try_clone_to_owned().expect("dup"));
        let error = listener.accept().expect_err("nobody waits");
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
        drop((first, again, listener));
        // Kept while one of its apps exists; closed with the last.
        registry.forget_app("api");
        assert!(std::net::TcpStream::connect(address.to_string()).is_ok());
        registry.forget_app("other");
        assert!(registry.hand_over().expect("dup").is_empty());
        assert!(std::net::TcpStream::connect(address.to_string()).is_err());
        // A port some other program holds fails as Node's listen would.
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: held.local_addr().expect("addr").port(),
        };
        assert_eq!(api.claim(&taken).expect_err("in use").code(), "EADDRINUSE");
    }

    use kelpie_testkit::free_port;
}
