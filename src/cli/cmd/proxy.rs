//! `proxy`: knock, connect to the knocked IP, and relay stdin/stdout over it (ssh ProxyCommand),
//! or with `--fdpass` hand the connection itself to ssh (ProxyUseFdpass).
//!
//! stdout carries the relayed bytes only; every message goes to stderr.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::knock::{policy, target_for_host};
use crate::cli::args::ProxyArgs;
use crate::cli::Context;
use crate::client::handoff::pass_to_ssh;
use crate::client::knock::knock_target;
use crate::error::UserError;

/// EBADF: a stdin that was closed before we started reads as an empty one.
const EBADF: i32 = 9;

pub fn run(ctx: &Context, args: ProxyArgs) -> anyhow::Result<()> {
    let (profile, target, totp) = target_for_host(ctx, &args.name, args.port)?;
    if let Some(host) = args.host.as_deref() {
        if host != profile.address && host != args.name {
            ctx.log.detail(format!(
                "ssh asked for {host}; connecting to the profile's address {}",
                profile.address
            ));
        }
    }
    let addr = target.addr;
    let stream = knock_target(&ctx.log, &target, &totp, &policy(&args.options, true))?
        .expect("a verified knock returns the connection that proved the port open");
    if args.fdpass {
        return pass_to_ssh(std::io::stdout(), &stream).map_err(|e| {
            UserError::runtime(format!("cannot hand the connection to {addr} to ssh: {e}"))
                .with_hint(
                    "--fdpass works only as ssh's ProxyCommand with `ProxyUseFdpass yes` \
                     (stdout must be the socket ssh gives it)",
                )
                .into()
        });
    }
    relay(stream).map_err(|e| UserError::runtime(format!("relaying to {addr}: {e}")).into())
}

/// Bytes moved per read: stdin and stdout go through tokio's blocking-thread pool, so fewer,
/// larger reads relay faster (8 KiB reads ran at half socat's rate).
const RELAY_BUFFER: usize = 64 * 1024;

/// Relays stdin/stdout over `stream` on a current-thread runtime.
fn relay(stream: std::net::TcpStream) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let result = runtime.block_on(async {
        stream.set_nonblocking(true)?;
        let socket = tokio::net::TcpStream::from_std(stream)?;
        relay_streams(socket, tokio::io::stdin(), tokio::io::stdout()).await
    });
    // A read of stdin may still be blocked in its helper thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Copies `input` to the socket and the socket to `output`. End of `input` half-closes the
/// socket (the server sees EOF and may still answer); end of the socket ends the relay, after
/// `output` is flushed, whether or not `input` has ended.
pub async fn relay_streams<S, R, W>(socket: S, mut input: R, mut output: W) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut from_socket, mut to_socket) = tokio::io::split(socket);
    let upstream = async {
        let mut input = tokio::io::BufReader::with_capacity(RELAY_BUFFER, &mut input);
        match tokio::io::copy_buf(&mut input, &mut to_socket).await {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(EBADF) => {}
            Err(e) if is_socket_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        match to_socket.shutdown().await {
            Err(e) if !is_socket_gone(&e) => Err(e),
            _ => Ok(()),
        }
    };
    let downstream = async {
        let mut from_socket = tokio::io::BufReader::with_capacity(RELAY_BUFFER, &mut from_socket);
        tokio::io::copy_buf(&mut from_socket, &mut output).await?;
        output.flush().await?;
        output.shutdown().await
    };
    tokio::pin!(upstream, downstream);
    let mut upstream_done = false;
    loop {
        tokio::select! {
            result = &mut upstream, if !upstream_done => {
                result?;
                upstream_done = true;
            }
            result = &mut downstream => return result,
        }
    }
}

/// The server closed or reset the connection: the socket-to-output direction reports it.
fn is_socket_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A server that answers only after the client's EOF, so the relay must half-close.
    async fn echo_after_eof(mut server: tokio::io::DuplexStream) {
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        server.write_all(&received).await.unwrap();
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn half_closes_on_input_eof_and_returns_the_answer() {
        let (client, server) = tokio::io::duplex(1024);
        let echo = tokio::spawn(echo_after_eof(server));
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut output = Vec::new();
        relay_streams(client, input.as_slice(), &mut output)
            .await
            .unwrap();
        echo.await.unwrap();
        assert_eq!(output, input);
    }

    #[tokio::test]
    async fn socket_eof_ends_the_relay_while_input_is_still_open() {
        let (client, mut server) = tokio::io::duplex(1024);
        // Input that never ends: the write half of a pipe we keep open.
        let (_keep_open, input) = tokio::io::duplex(16);
        tokio::spawn(async move {
            server.write_all(b"banner\n").await.unwrap();
            server.shutdown().await.unwrap();
            drop(server);
        });
        let mut output = Vec::new();
        relay_streams(client, input, &mut output).await.unwrap();
        assert_eq!(output, b"banner\n");
    }

    #[tokio::test]
    async fn empty_input_still_reads_the_answer() {
        let (client, server) = tokio::io::duplex(64);
        let echo = tokio::spawn(echo_after_eof(server));
        let mut output = Vec::new();
        relay_streams(client, tokio::io::empty(), &mut output)
            .await
            .unwrap();
        echo.await.unwrap();
        assert!(output.is_empty());
    }
}
