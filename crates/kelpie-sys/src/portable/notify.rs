//! The notify socket without Linux's abstract names and `SO_PASSCRED`: a datagram socket at a
//! path, whose datagrams come without their sender's pid (macOS attaches none to a datagram).
//! A caller that needs the sender tells processes apart another way (a socket per process, as
//! the daemons before the shared socket did).

use rustix::net::{AddressFamily, RecvFlags, SocketAddrUnix, SocketType};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// A datagram socket bound at `path` (a file: an older one there is replaced), non-blocking
/// and close-on-exec, that any local user may send to (as anyone may send to an abstract
/// name).
pub(crate) fn bind(path: &str) -> io::Result<OwnedFd> {
    let socket = super::new_socket(AddressFamily::UNIX, SocketType::DGRAM, true)?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}

/// The path a socket is bound at.
pub(crate) fn name(socket: BorrowedFd<'_>) -> io::Result<String> {
    let address = rustix::net::getsockname(socket)?;
    let unix = SocketAddrUnix::try_from(address).map_err(io::Error::from)?;
    let path = unix
        .path()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a socket at a path"))?;
    path.to_str()
        .map(str::to_string)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a path that is not UTF-8"))
}

/// One datagram without waiting; no sender is known. Descriptors sent with it are not
/// received (no control buffer), so the kernel closes them.
pub(crate) fn recv(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    let (n, _) =
        rustix::io::retry_on_intr(|| rustix::net::recv(socket, &mut *buf, RecvFlags::DONTWAIT))?;
    Ok((n.min(buf.len()), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_datagram_sent_to_the_path_is_read_without_a_sender() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify");
        let path = path.to_str().expect("utf-8");
        let socket = bind(path).expect("bind");
        assert_eq!(name(socket.as_fd()).expect("name"), path);
        let mut buf = [0u8; 64];
        let empty = recv(socket.as_fd(), &mut buf).expect_err("nothing queued");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        let sender = std::os::unix::net::UnixDatagram::unbound().expect("sender");
        sender.send_to(b"READY=1", path).expect("send");
        let (n, pid) = recv(socket.as_fd(), &mut buf).expect("recv");
        assert_eq!((&buf[..n], pid), (&b"READY=1"[..], None));
        drop(socket);
        let again = bind(path).expect("bound again over the old file");
        drop(again);
    }
}
