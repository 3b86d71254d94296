//! Listening sockets the daemon owns and hands to instances, and the receiving side of systemd's
//! socket activation (`LISTEN_FDS`), used by test apps.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Pending connections a listening socket may queue (the kernel caps it at `somaxconn`).
/// Generous: while instances are replaced during a reload, the queue holds what arrives.
pub const LISTEN_BACKLOG: i32 = 4096;

/// First descriptor of socket activation (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a live local integer, on a
    // descriptor owned by the caller.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

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
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: socket() takes integers and returns a new descriptor or -1.
    let raw = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` was just returned by socket() and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: bind reads a fully initialised sockaddr_in of the size given.
            check(unsafe {
                libc::bind(
                    raw,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            })?;
        }
        SocketAddr::V6(v6) => {
            if v6.ip().is_unspecified() {
                set_int_option(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
            }
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: bind reads a fully initialised sockaddr_in6 of the size given.
            check(unsafe {
                libc::bind(
                    raw,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            })?;
        }
    }
    set_backlog(socket.as_fd())?;
    Ok(socket)
}

/// (Re)start listening with [`LISTEN_BACKLOG`]; on a socket that already listens this only
/// changes the queue's length (std's listeners use a short one).
pub fn set_backlog(socket: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: listen() on a descriptor the BorrowedFd keeps open; integers only.
    check(unsafe { libc::listen(socket.as_raw_fd(), LISTEN_BACKLOG) }).map(drop)
}

/// The sockets passed to this process by socket activation (`LISTEN_PID` = our pid,
/// `LISTEN_FDS` = how many, from fd 3), made close-on-exec; the variables are removed so
/// children do not take them too (`sd_listen_fds(1)`). Empty when none were passed to us.
///
/// Call it early, before other threads may have opened files: it takes ownership of fds 3...
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
    (LISTEN_FDS_START..LISTEN_FDS_START + count)
        .filter_map(|fd| {
            // SAFETY: fcntl(F_SETFD) on an integer descriptor; fails harmlessly if not open.
            let ok = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0;
            // SAFETY: socket activation hands these descriptors to this process and nothing
            // else in it knows about them; we take them exactly once.
            ok.then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
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
