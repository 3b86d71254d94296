//! Messages with descriptors over Unix stream sockets, for systems without sequenced-packet
//! Unix sockets (macOS): each message is its length (4 bytes, native order) then its bytes, the
//! descriptors attached to the length. A receive reads exactly one message, so the callers of
//! [`crate::send_with_fds`] and [`crate::recv_with_fds`] see what a sequenced-packet socket
//! gives them.
//!
//! A stream's messages are only whole while every send is: a send cut short (a send timeout
//! in the middle of a message) leaves the stream unusable, and the socket is then given up as a
//! closed sequenced-packet one would be.

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SocketAddrUnix, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{making_descriptors, set_flags};
use crate::fdpass::{CONTROL_SPACE, MAX_FDS_PER_MESSAGE, NO_SIGPIPE};

/// A Unix stream socket, close-on-exec.
fn stream_socket() -> io::Result<OwnedFd> {
    super::new_socket(AddressFamily::UNIX, SocketType::STREAM, false)
}

/// [`crate::message_socket_pair`].
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    making_descriptors(|| {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            rustix::net::SocketFlags::empty(),
            None,
        )?;
        set_flags(a.as_fd(), false)?;
        set_flags(b.as_fd(), false)?;
        Ok((a, b))
    })
}

/// [`crate::message_socket_listen`].
pub(crate) fn listen(address: &SocketAddrUnix) -> io::Result<OwnedFd> {
    let socket = stream_socket()?;
    rustix::net::bind(&socket, address)?;
    rustix::net::listen(&socket, 16)?;
    Ok(socket)
}

/// [`crate::message_socket_connect`].
pub(crate) fn connect(address: &SocketAddrUnix) -> io::Result<OwnedFd> {
    let socket = stream_socket()?;
    rustix::net::connect(&socket, address)?;
    Ok(socket)
}

/// [`crate::accept`].
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    making_descriptors(|| {
        let socket = rustix::net::accept(listener)?;
        set_flags(socket.as_fd(), false)?;
        Ok(socket)
    })
}

/// [`crate::send_with_fds`]: the length and the bytes, the descriptors with the first.
pub(crate) fn send(socket: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let length = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a message too long"))?
        .to_ne_bytes();
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors do not fit the control buffer",
        ));
    }
    let iov = [IoSlice::new(&length), IoSlice::new(data)];
    let mut sent =
        rustix::io::retry_on_intr(|| rustix::net::sendmsg(socket, &iov, &mut control, NO_SIGPIPE))?;
    // The rest of a message cut short, plainly.
    let whole: Vec<u8> = if sent < length.len() + data.len() {
        [&length[..], data].concat()
    } else {
        Vec::new()
    };
    while sent < whole.len() {
        sent +=
            rustix::io::retry_on_intr(|| rustix::net::send(socket, &whole[sent..], NO_SIGPIPE))?;
    }
    Ok(())
}

/// Read exactly `buf.len()` bytes; `Ok(false)` if the peer closed before the first.
fn read_exactly(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<bool> {
    let mut read = 0;
    while read < buf.len() {
        match rustix::net::recv(socket, &mut buf[read..], RecvFlags::empty()) {
            Ok((0, _)) if read == 0 => return Ok(false),
            Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((n, _)) => read += n,
            Err(rustix::io::Errno::INTR) => {}
            // A non-blocking socket in the middle of a message: the rest was sent with it.
            Err(rustix::io::Errno::AGAIN) if read > 0 => {
                crate::wait_readable(socket, std::time::Duration::from_secs(5))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// [`crate::recv_with_fds`]: one message into `buf`, with its descriptors.
pub(crate) fn recv(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut length = [0u8; 4];
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = {
        let mut iov = [IoSliceMut::new(&mut length)];
        rustix::io::retry_on_intr(|| {
            rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::empty())
        })?
    };
    let fds = crate::fdpass::received_fds(&mut control);
    // Close-on-exec, as `MSG_CMSG_CLOEXEC` would have made them: under the fork lock.
    making_descriptors(|| fds.iter().try_for_each(|fd| set_flags(fd.as_fd(), false)))?;
    if got.bytes == 0 {
        return Ok((0, fds));
    }
    if got.bytes < length.len() && !read_exactly(socket, &mut length[got.bytes..])? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let len = u32::from_ne_bytes(length) as usize;
    if len > buf.len() || fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message or its descriptors did not fit",
        ));
    }
    if len > 0 && !read_exactly(socket, &mut buf[..len])? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok((len, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn messages_keep_their_boundaries_and_their_descriptors() {
        let (left, right) = pair().expect("pair");
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        send(left.as_fd(), b"one", &[reader.as_fd()]).expect("send");
        send(left.as_fd(), b"", &[]).expect("an empty one");
        send(left.as_fd(), &[7u8; 40_000], &[]).expect("a long one");
        drop(reader);
        let mut buf = vec![0u8; 65_536];
        let (n, mut fds) = recv(right.as_fd(), &mut buf).expect("recv");
        assert_eq!((&buf[..n], fds.len()), (&b"one"[..], 1));
        let (n, none) = recv(right.as_fd(), &mut buf).expect("recv");
        assert_eq!((n, none.len()), (0, 0));
        let (n, _) = recv(right.as_fd(), &mut buf).expect("recv");
        assert_eq!(n, 40_000);
        assert!(buf[..n].iter().all(|&b| b == 7));
        writer.write_all(b"through").expect("write");
        drop(writer);
        let mut got = String::new();
        std::fs::File::from(fds.remove(0))
            .read_to_string(&mut got)
            .expect("read");
        assert_eq!(got, "through");
        drop(left);
        let (n, fds) = recv(right.as_fd(), &mut buf).expect("closed");
        assert_eq!((n, fds.len()), (0, 0));
    }
}
