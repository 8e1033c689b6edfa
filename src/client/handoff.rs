//! Handing a connected socket to ssh: ssh's `ProxyUseFdpass`, so that the connection that
//! proved the door open is the one ssh speaks over, and sshd sees one connection per login.

use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::os::fd::AsFd;

use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// Sends `stream`'s descriptor over `channel` (a ProxyCommand's stdout, a socket ssh made) as
/// OpenSSH's `mm_receive_fd` expects it: one byte of data carrying one SCM_RIGHTS descriptor.
pub fn pass_to_ssh(channel: impl AsFd, stream: &TcpStream) -> io::Result<()> {
    let fds = [stream.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other(
            "no room for the descriptor in the message",
        ));
    }
    sendmsg(
        channel,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::{IoSliceMut, Read, Write};
    use std::net::TcpListener;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_received_descriptor_is_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server_side, _) = listener.accept().unwrap();
        let (ours, ssh) = UnixStream::pair().unwrap();
        pass_to_ssh(&ours, &stream).unwrap();
        drop(stream);

        let mut byte = [9u8; 1];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(
            &ssh,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap();
        assert_eq!((got.bytes, byte), (1, [0]));
        let fd = control
            .drain()
            .find_map(|m| match m {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            })
            .expect("a descriptor");
        let mut received = TcpStream::from(fd);
        received.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server_side.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn a_channel_that_is_not_a_socket_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let file = tempfile::tempfile().unwrap();
        assert!(pass_to_ssh(&file, &stream).is_err());
    }
}
