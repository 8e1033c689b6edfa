//! Sending knocks: resolve once, one TCP SYN per port, then poll the protected port.
//!
//! This module takes addresses and durations only; it never reads the configuration or the
//! clock's idea of TOTP windows. The timing decisions it offers are pure functions.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::core::ports::PortPair;

/// Pause after a refused poll before the next attempt: a refusal comes back within a round
/// trip, so this bounds how late we notice the door opening on a REJECTing firewall.
const POLL_AFTER_REFUSAL: Duration = Duration::from_millis(10);
/// While attempts go unanswered (a DROPping firewall), a new one starts this often; earlier
/// ones keep waiting, so a slow path (a long round trip) still gets its answer.
const POLL_WHILE_SILENT: Duration = Duration::from_millis(50);
/// Most attempts in flight at once.
const POLL_MAX_IN_FLIGHT: usize = 64;
/// Extra wait past a window boundary, so that the next clock read is surely in the new window.
pub const EDGE_SLACK: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum KnockError {
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("{address} resolved to no IP address")]
    NoAddress { address: String },
    #[error("cannot send a knock to {addr}: {source}")]
    Send {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Resolves `address` (an IPv4/IPv6 literal, brackets allowed, or a DNS name) once, to the first
/// address the system resolver prefers. Knocks and the later connection all use this one IP, so
/// the server opens the port for the address we actually come from.
pub fn resolve_once(address: &str, port: u16) -> Result<SocketAddr, KnockError> {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = (bare, port)
        .to_socket_addrs()
        .map_err(|source| KnockError::Resolve {
            address: address.to_owned(),
            source,
        })?;
    addrs.next().ok_or_else(|| KnockError::NoAddress {
        address: address.to_owned(),
    })
}

/// Sends exactly one SYN to `addr`: a non-blocking connect, then the socket is closed at once.
///
/// Closing a socket in SYN-SENT sends nothing and stops the kernel from retransmitting the SYN;
/// a retransmitted SYN would count as a second knock on the same port and break a knockd
/// sequence. Nobody needs to listen on the port: a refusal is a delivered knock.
pub fn send_knock(addr: SocketAddr) -> Result<(), KnockError> {
    let send_error = |source| KnockError::Send { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(send_error)?;
    socket.set_nonblocking(true).map_err(send_error)?;
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if knock_was_sent(&e) => Ok(()),
        Err(e) => Err(send_error(e)),
    }
    // `socket` is dropped (closed) here, before any retransmission timer can fire.
}

/// Whether a non-blocking connect's error still means the SYN left: in progress, or already
/// answered by a reset (loopback answers within the call).
fn knock_was_sent(error: &io::Error) -> bool {
    error.raw_os_error() == Some(EINPROGRESS)
        || matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
        )
}

// `io::ErrorKind::InProgress` is not stable yet; the errno is.
#[cfg(any(target_os = "linux", target_os = "android"))]
const EINPROGRESS: i32 = 115;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const EINPROGRESS: i32 = 36;

/// Knocks `ports` on `ip` in order, `delay` apart.
pub fn knock_sequence(ip: IpAddr, ports: PortPair, delay: Duration) -> Result<(), KnockError> {
    for (i, port) in ports.0.into_iter().enumerate() {
        if i > 0 && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        send_knock(SocketAddr::new(ip, port))?;
    }
    Ok(())
}

/// Polls `addr` until a connection succeeds (returning the connected stream) or `timeout`
/// passes (`None`). At least one attempt is made. Attempts overlap: each may wait up to the
/// deadline for its answer, so a long round trip is no obstacle, while new ones start
/// `POLL_AFTER_REFUSAL` after a refusal or every `POLL_WHILE_SILENT` while the firewall drops
/// them, so the door is seen soon after it opens. Refusals and silence are what a closed door
/// looks like; a local failure (no route, no usable source address) is returned at once.
pub fn wait_until_open(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Option<TcpStream>, KnockError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let (answers, answer) = std::sync::mpsc::channel();
    let mut in_flight = 0usize;
    let mut launched = 0usize;
    let mut next_attempt = start;
    // When the last answer can still come: the deadline, or the lone first attempt's end.
    let mut give_up = deadline;
    loop {
        let now = Instant::now();
        if now >= next_attempt
            && in_flight < POLL_MAX_IN_FLIGHT
            && (now < deadline || launched == 0)
        {
            let life = deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(10));
            let answers = answers.clone();
            std::thread::spawn(move || {
                // The receiver may be gone (we returned); a late connection is then closed.
                let _ = answers.send(TcpStream::connect_timeout(&addr, life));
            });
            in_flight += 1;
            launched += 1;
            next_attempt = now + POLL_WHILE_SILENT;
            give_up = give_up.max(now + life);
        }
        if in_flight == 0 && now >= deadline {
            return Ok(None);
        }
        let wake = if now < deadline && in_flight < POLL_MAX_IN_FLIGHT {
            next_attempt.min(deadline)
        } else {
            give_up
        };
        let wait = wake.saturating_duration_since(Instant::now());
        match answer.recv_timeout(wait) {
            Ok(Ok(stream)) => return Ok(Some(stream)),
            Ok(Err(e)) if door_still_closed(&e) => {
                in_flight -= 1;
                if e.kind() != io::ErrorKind::TimedOut {
                    next_attempt = next_attempt.min(Instant::now() + POLL_AFTER_REFUSAL);
                }
            }
            Ok(Err(source)) => return Err(KnockError::Connect { addr, source }),
            Err(_) if Instant::now() >= give_up => return Ok(None),
            Err(_) => {}
        }
    }
}

/// Errors that a closed (or not yet opened) port gives: REJECT with a reset or an ICMP
/// "prohibited", or DROP (a timeout).
fn door_still_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::Interrupted
    )
}

/// How long to wait before knocking at `now` (time since the unix epoch) so that the sequence
/// is not sent in the last `margin` seconds of its window: `None` to knock at once, otherwise
/// the time until the next window starts (plus `EDGE_SLACK`). A margin of 0 never waits.
pub fn edge_wait(now: Duration, period: u64, margin: u64) -> Option<Duration> {
    if margin == 0 || period == 0 {
        return None;
    }
    let period_ms = u128::from(period) * 1000;
    let left_ms = period_ms - now.as_millis() % period_ms;
    (left_ms < u128::from(margin) * 1000)
        .then(|| Duration::from_millis(left_ms as u64) + EDGE_SLACK)
}

/// Whether a verification that timed out should knock once more: only if it has not done so
/// already and the window (the code) changed since the knock, so the new code may succeed.
pub fn should_knock_again(knocked_counter: u64, current_counter: u64, knocked_again: bool) -> bool {
    !knocked_again && current_counter != knocked_counter
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    #[test]
    fn resolves_literals_without_dns() {
        assert_eq!(
            resolve_once("192.0.2.7", 22).unwrap(),
            SocketAddr::new(Ipv4Addr::new(192, 0, 2, 7).into(), 22)
        );
        assert_eq!(
            resolve_once("[2001:db8::1]", 2222).unwrap(),
            SocketAddr::new("2001:db8::1".parse::<Ipv6Addr>().unwrap().into(), 2222)
        );
        assert_eq!(
            resolve_once("::1", 22).unwrap(),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 22)
        );
    }

    #[test]
    fn resolves_localhost() {
        let addr = resolve_once("localhost", 22).unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 22);
    }

    #[test]
    fn edge_wait_waits_only_near_the_end() {
        let ms = Duration::from_millis;
        // 10 s into a 30 s window: 20 s left, knock now.
        assert_eq!(edge_wait(ms(1_000_000_020_000 + 10_000), 30, 3), None);
        // 28.5 s in: 1.5 s left, wait for the next window.
        assert_eq!(
            edge_wait(ms(1_000_000_020_000 + 28_500), 30, 3),
            Some(ms(1_500) + EDGE_SLACK)
        );
        // Exactly 3 s left is enough.
        assert_eq!(edge_wait(ms(1_000_000_020_000 + 27_000), 30, 3), None);
        // 2.999 s left is not.
        assert_eq!(
            edge_wait(ms(1_000_000_020_000 + 27_001), 30, 3),
            Some(ms(2_999) + EDGE_SLACK)
        );
        // Start of a window: the whole period left.
        assert_eq!(edge_wait(ms(1_000_000_020_000), 30, 3), None);
        // Margin 0 never waits.
        assert_eq!(edge_wait(ms(1_000_000_020_000 + 29_999), 30, 0), None);
        // A margin longer than the period waits for the next window (once; the caller knocks).
        assert_eq!(edge_wait(ms(5_000), 5, 10), Some(ms(5_000) + EDGE_SLACK));
    }

    #[test]
    fn knocks_again_once_and_only_after_the_window_changed() {
        assert!(!should_knock_again(100, 100, false));
        assert!(should_knock_again(100, 101, false));
        assert!(!should_knock_again(100, 101, true));
        assert!(!should_knock_again(100, 102, true));
    }

    #[test]
    fn knock_to_a_closed_loopback_port_is_not_an_error() {
        // Bind then drop to find a port that is (very likely) closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        send_knock(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)).unwrap();
    }

    #[test]
    fn knock_reaches_a_listener_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        knock_sequence(
            addr.ip(),
            PortPair([addr.port(), addr.port()]),
            Duration::ZERO,
        )
        .unwrap();
    }

    #[test]
    fn wait_until_open_finds_a_listener_and_gives_up_on_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(wait_until_open(addr, Duration::from_secs(2))
            .unwrap()
            .is_some());
        drop(listener);
        let started = Instant::now();
        assert!(wait_until_open(addr, Duration::from_millis(300))
            .unwrap()
            .is_none());
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn wait_until_open_tries_once_even_with_no_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(wait_until_open(addr, Duration::ZERO).unwrap().is_some());
    }
}
