//! The receiving side of systemd's notify protocol for many processes at once: one datagram
//! socket in the abstract namespace, each datagram coming with its sender's pid
//! (`SO_PASSCRED`), so that one socket serves every app instead of one per process. The
//! portable backend's socket is a file, and tells no sender (`portable/notify.rs`).

use rustix::net::SocketAddrUnix;
#[cfg(target_os = "linux")]
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags, SocketType,
};
use std::io;
#[cfg(target_os = "linux")]
use std::io::IoSliceMut;
#[cfg(target_os = "linux")]
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Room for the sender's credentials and a few descriptors (`sd_notify_barrier` sends one; any
/// sent is closed at once, which is what the barrier waits for).
#[cfg(target_os = "linux")]
const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmCredentials(1), ScmRights(4));

/// A datagram socket bound to `name` in the abstract namespace (no file, no path length
/// limit, gone with its last descriptor), non-blocking and close-on-exec, that learns each
/// sender's pid.
///
/// The portable backend binds at the path `name` instead (see `portable/notify.rs`).
pub fn bind_notify_socket(name: &str) -> io::Result<OwnedFd> {
    if crate::platform::portable() {
        return crate::portable::notify::bind(name);
    }
    bind_abstract(name)
}

#[cfg(not(target_os = "linux"))]
fn bind_abstract(_: &str) -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
fn bind_abstract(name: &str) -> io::Result<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(
        &socket,
        &SocketAddrUnix::new_abstract_name(name.as_bytes())?,
    )?;
    rustix::net::sockopt::set_socket_passcred(&socket, true)?;
    Ok(socket)
}

/// The abstract name a socket is bound to (what `NOTIFY_SOCKET` names, without its `@`).
pub fn notify_socket_name(socket: BorrowedFd<'_>) -> io::Result<String> {
    if crate::platform::portable() {
        return crate::portable::notify::name(socket);
    }
    let address = rustix::net::getsockname(socket)?;
    let unix = SocketAddrUnix::try_from(address).map_err(io::Error::from)?;
    #[cfg(not(target_os = "linux"))]
    let name: Option<&[u8]> = {
        let _ = unix;
        None
    };
    #[cfg(target_os = "linux")]
    let name = unix.abstract_name();
    let name =
        name.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an abstract socket"))?;
    String::from_utf8(name.to_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a name that is not UTF-8"))
}

/// Make a socket handed over by an earlier daemon learn its senders' pids too.
pub fn learn_sender_pids(socket: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        return Ok(rustix::net::sockopt::set_socket_passcred(socket, true)?);
    }
    // No system call tells a datagram's sender: the caller tells senders apart itself.
    let _ = socket;
    Ok(())
}

/// What `NOTIFY_SOCKET` holds for a socket bound with [`bind_notify_socket`]: `@name` for an
/// abstract name, the path itself for the portable backend's file.
pub fn notify_socket_address(name: &str) -> String {
    if crate::platform::portable() {
        return name.to_string();
    }
    format!("@{name}")
}

/// One datagram without waiting: its length and its sender's pid (`None` when the kernel gave
/// none). `WouldBlock` when none is queued. A datagram longer than `buf` is cut, as systemd
/// does; descriptors it carries are closed.
pub fn recv_notify(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    if crate::platform::portable() {
        return crate::portable::notify::recv(socket, buf);
    }
    recv_with_sender(socket, buf)
}

#[cfg(not(target_os = "linux"))]
fn recv_with_sender(_: BorrowedFd<'_>, _: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
fn recv_with_sender(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let received = rustix::io::retry_on_intr(|| {
        rustix::net::recvmsg(
            socket,
            &mut iov,
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        )
    })?;
    let mut sender = None;
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmCredentials(credentials) => {
                sender = u32::try_from(credentials.pid.as_raw_nonzero().get()).ok();
            }
            // Dropped here: closed.
            RecvAncillaryMessage::ScmRights(descriptors) => descriptors.for_each(drop),
            _ => {}
        }
    }
    Ok((received.bytes, sender))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_datagram_comes_with_its_senders_pid_and_the_socket_tells_its_name() {
        let name = format!("kelpie-sys-test/{}/notify", std::process::id());
        let socket = bind_notify_socket(&name).expect("bind");
        assert_eq!(notify_socket_name(socket.as_fd()).expect("name"), name);
        let mut buf = [0u8; 64];
        let empty = recv_notify(socket.as_fd(), &mut buf).expect_err("nothing queued");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);

        let sender = std::os::unix::net::UnixDatagram::unbound().expect("sender");
        use std::os::linux::net::SocketAddrExt;
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        sender.send_to_addr(b"READY=1", &address).expect("send");
        let (n, pid) = recv_notify(socket.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        assert_eq!(pid, Some(std::process::id()));
    }
}
