//! Listening sockets the daemon owns and hands to instances, and the receiving side of systemd's
//! socket activation (`LISTEN_FDS`), used by test apps.

use rustix::net::{sockopt, AddressFamily, SocketType};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

/// Pending connections a listening socket may queue (the kernel caps it at `somaxconn`).
/// Generous: while instances are replaced during a reload, the queue holds what arrives.
pub const LISTEN_BACKLOG: i32 = 4096;

/// First descriptor of socket activation (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A TCP socket bound to `address` and listening, close-on-exec (it is handed to children
/// explicitly). `SO_REUSEADDR` lets a new daemon bind while old connections linger in
/// TIME_WAIT; an IPv6 wildcard also accepts IPv4 (`IPV6_V6ONLY` off), like Node's default.
pub fn listen_tcp(address: SocketAddr) -> io::Result<OwnedFd> {
    listen_tcp_with(address, false)
}

/// Like [`listen_tcp`], with `SO_REUSEPORT` set before binding: several sockets (of processes
/// of the same user that all set it) may then listen on the same port, the kernel spreading
/// new connections among them. Unlike one shared socket, each has its own queue, and what is
/// queued on one is lost when it closes.
pub fn listen_tcp_reuse_port(address: SocketAddr) -> io::Result<OwnedFd> {
    listen_tcp_with(address, true)
}

fn listen_tcp_with(address: SocketAddr, reuse_port: bool) -> io::Result<OwnedFd> {
    let family = if address.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let socket = crate::portable::new_socket(family, SocketType::STREAM, false)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    if reuse_port {
        sockopt::set_socket_reuseport(&socket, true)?;
    }
    if let SocketAddr::V6(v6) = address {
        if v6.ip().is_unspecified() {
            sockopt::set_ipv6_v6only(&socket, false)?;
        }
    }
    // What a server sets itself: Linux gives accepted sockets the listening one's TCP_NODELAY,
    // and a server handed this socket (uvicorn `--fd 3` wraps it as a Unix socket, so asyncio
    // never sets it) would otherwise hold each small response back for the client's delayed
    // ACK: 40 ms per keep-alive request.
    sockopt::set_tcp_nodelay(&socket, true)?;
    rustix::net::bind(&socket, &address)?;
    rustix::net::listen(&socket, LISTEN_BACKLOG)?;
    Ok(socket)
}

/// (Re)start listening with [`LISTEN_BACKLOG`]; on a socket that already listens this only
/// changes the queue's length (std's listeners use a short one).
pub fn set_backlog(socket: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::net::listen(socket, LISTEN_BACKLOG)?)
}

/// The sockets passed to this process by socket activation (`LISTEN_PID` = our pid,
/// `LISTEN_FDS` = how many, from fd 3), made close-on-exec; the variables are removed so
/// children do not take them too (`sd_listen_fds(1)`). Empty when none were passed to us. A
/// number that is not open, or is close-on-exec (so was not passed across the exec), is
/// skipped.
///
/// Call it early, before anything clears close-on-exec on a descriptor of its own: it takes
/// ownership of the inheritable fds 3... (see `handoff::adopt_inherited`).
pub fn take_listen_fds() -> Vec<OwnedFd> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0);
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    if !ours || count <= 0 {
        return Vec::new();
    }
    // Passed across exec, they are inheritable; one that is not open is skipped.
    (LISTEN_FDS_START..LISTEN_FDS_START + count)
        .filter_map(crate::handoff::adopt_inherited)
        .collect()
}

/// Where Linux says whether a closing listener's queued connections move to the other
/// listeners of its `SO_REUSEPORT` group (1) or are reset (0, the default).
#[cfg(target_os = "linux")]
const TCP_MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Turn on `net.ipv4.tcp_migrate_req` (Linux 5.14) in this network namespace: a listener of an
/// `SO_REUSEPORT` group that closes then hands its queued connections to the group's other
/// listeners instead of resetting them. `Ok(true)` when it was off and is now on, `Ok(false)`
/// when it already was (or the system has no such setting to turn: not Linux).
pub fn enable_tcp_migrate_req() -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        if std::fs::read_to_string(TCP_MIGRATE_REQ)?.trim() != "0" {
            return Ok(false);
        }
        std::fs::write(TCP_MIGRATE_REQ, "1")?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_tcp_listener_accepts_on_ipv4_and_ipv6() {
        let socket = listen_tcp("[::]:0".parse().expect("addr")).expect("listen");
        let listener = std::net::TcpListener::from(socket);
        let port = listener.local_addr().expect("addr").port();
        for host in ["127.0.0.1", "[::1]"] {
            let mut client = std::net::TcpStream::connect(format!("{host}:{port}")).expect(host);
            let (mut served, _) = listener.accept().expect("accept");
            client.write_all(b"x").expect("write");
            let mut byte = [0u8];
            served.read_exact(&mut byte).expect("read");
            assert_eq!(&byte, b"x");
        }
    }

    #[test]
    fn binding_a_used_port_fails() {
        let first = std::net::TcpListener::from(
            listen_tcp("127.0.0.1:0".parse().expect("addr")).expect("listen"),
        );
        let again = listen_tcp(first.local_addr().expect("addr"));
        assert_eq!(
            again.err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
    }

    #[test]
    fn sockets_with_reuse_port_share_a_port_and_others_are_refused() {
        let first = std::net::TcpListener::from(
            listen_tcp_reuse_port("127.0.0.1:0".parse().expect("addr")).expect("listen"),
        );
        let address = first.local_addr().expect("addr");
        let second = listen_tcp_reuse_port(address).expect("a second reuse-port socket");
        assert_eq!(
            std::net::TcpListener::from(second)
                .local_addr()
                .expect("addr"),
            address
        );
        assert_eq!(
            listen_tcp(address).err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
    }
}
