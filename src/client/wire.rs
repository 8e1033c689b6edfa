//! Sending knocks: resolve once, one TCP SYN per port, then poll the protected port.
//!
//! This module takes addresses and durations only; it never reads the configuration or the
//! clock's idea of TOTP windows. The timing decisions it offers are pure functions.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::core::ports::PortPair;

/// How long each attempt to connect to the protected port may wait for its answer, in turn:
/// the first is sent right after the knock (an in-kernel door is open by then), later ones
/// wait longer so that slow paths get through, at about one SYN a second from then on. Only
/// one attempt is in flight at a time, and an attempt is closed while its SYN is unanswered
/// (which sends nothing), so the server sees one connection: the one handed on.
const ATTEMPT_LIVES_MS: [u64; 5] = [100, 200, 400, 800, 1000];
/// How long the probe sent before the knock counts: an answer within this time answers its
/// first SYN (the kernel retransmits after 1 s), so the port accepted it before the knock.
const PROBE_LIFE: Duration = Duration::from_millis(900);
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
    resolve_preferring(address, port, None)
}

/// Like [`resolve_once`], but when the name still resolves to `prefer` (the address of this
/// host's last successful knock), that one: a dual-stack name whose resolver order changes
/// between two logins would otherwise knock over IPv4 and then IPv6 within one window, and a
/// single-use door already owned by the IPv4 address refuses the IPv6 one.
pub fn resolve_preferring(
    address: &str,
    port: u16,
    prefer: Option<IpAddr>,
) -> Result<SocketAddr, KnockError> {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|source| KnockError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .collect();
    pick_address(&addrs, prefer).ok_or_else(|| KnockError::NoAddress {
        address: address.to_owned(),
    })
}

/// `prefer` if the resolver gave it, else the resolver's first choice.
pub fn pick_address(addrs: &[SocketAddr], prefer: Option<IpAddr>) -> Option<SocketAddr> {
    prefer
        .and_then(|ip| addrs.iter().find(|a| a.ip() == ip))
        .or_else(|| addrs.first())
        .copied()
}

/// The local address this machine sends from to reach `addr` (a UDP socket's route lookup:
/// nothing is sent). Behind NAT the server sees another.
pub fn source_address(addr: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect(addr).ok()?;
    Some(socket.local_addr().ok()?.ip())
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

/// How the protected port answered the last attempt that got an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAnswer {
    /// Nothing answered: a firewall that drops, or a host that is off without anyone saying so.
    Silence,
    /// Refused (a reset, or ICMP port unreachable): the host is up; nothing listens there or a
    /// firewall rejects.
    Refused,
    /// ICMP host unreachable or a failed neighbour lookup.
    NoRoute,
    /// The host is known to be down.
    HostDown,
    /// ICMP network unreachable.
    NetworkUnreachable,
}

impl PortAnswer {
    fn of(error: &io::Error) -> Option<Self> {
        if error.raw_os_error() == Some(rustix::io::Errno::HOSTDOWN.raw_os_error()) {
            return Some(Self::HostDown);
        }
        Some(match error.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Self::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                Self::Silence
            }
            io::ErrorKind::HostUnreachable => Self::NoRoute,
            io::ErrorKind::NetworkUnreachable => Self::NetworkUnreachable,
            _ => return None,
        })
    }
}

/// A connection to the protected port that succeeded.
#[derive(Debug)]
pub struct Opened {
    pub stream: TcpStream,
    /// It answered the probe sent before the knock: the port was open without it.
    pub open_before_knock: bool,
}

/// One non-blocking connect in flight.
struct Attempt {
    socket: Socket,
    ends: Instant,
}

impl Attempt {
    /// Starts a connect, or says how the port answered at once (loopback refuses within the
    /// call; a local "no route" too).
    fn start(addr: SocketAddr, life: Duration) -> Result<Result<Self, PortAnswer>, KnockError> {
        let connect_error = |source| KnockError::Connect { addr, source };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(connect_error)?;
        socket.set_nonblocking(true).map_err(connect_error)?;
        let ends = Instant::now() + life;
        match socket.connect(&addr.into()) {
            Ok(()) => Ok(Ok(Self { socket, ends })),
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) => Ok(Ok(Self { socket, ends })),
            Err(e) => match PortAnswer::of(&e) {
                Some(answer) => Ok(Err(answer)),
                None => Err(connect_error(e)),
            },
        }
    }

    /// After the socket polled writable: connected, or how the port answered.
    fn outcome(self, addr: SocketAddr) -> Result<Result<TcpStream, PortAnswer>, KnockError> {
        let connect_error = |source| KnockError::Connect { addr, source };
        match self.socket.take_error().map_err(connect_error)? {
            None => {
                self.socket.set_nonblocking(false).map_err(connect_error)?;
                Ok(Ok(self.socket.into()))
            }
            Some(e) => PortAnswer::of(&e).map(Err).ok_or_else(|| connect_error(e)),
        }
    }
}

/// Watches a protected port for the door to open: an optional probe sent before the knock
/// (to tell a port that was open anyway), then one gentle attempt at a time.
pub struct DoorWatch {
    addr: SocketAddr,
    probe: Option<Attempt>,
    last_answer: PortAnswer,
    refused_before_knock: bool,
    refused_after_knock: bool,
    /// A probe went out before the knock, so a refusal after it tells something.
    probed: bool,
}

impl DoorWatch {
    /// Sends one SYN to `addr` before knocking; an answer to it within `PROBE_LIFE` means the
    /// port accepts connections without a knock. Call this right before the knock.
    pub fn probe_then_knock(addr: SocketAddr) -> Result<Self, KnockError> {
        let mut watch = Self::after_knock(addr);
        watch.probed = true;
        match Attempt::start(addr, PROBE_LIFE)? {
            Ok(probe) => watch.probe = Some(probe),
            Err(answer) => watch.probe_answered(answer),
        }
        Ok(watch)
    }

    /// A watch with no probe.
    pub fn after_knock(addr: SocketAddr) -> Self {
        Self {
            addr,
            probe: None,
            last_answer: PortAnswer::Silence,
            refused_before_knock: false,
            refused_after_knock: false,
            probed: false,
        }
    }

    fn probe_answered(&mut self, answer: PortAnswer) {
        self.last_answer = answer;
        self.refused_before_knock |= answer == PortAnswer::Refused;
    }

    fn attempt_answered(&mut self, answer: PortAnswer) {
        self.last_answer = answer;
        self.refused_after_knock |= answer == PortAnswer::Refused;
    }

    /// The port refused a connection after the knock and did not before it: the door opened
    /// and nothing listens there.
    pub fn refused_into_nothing(&self) -> bool {
        self.refused_after_knock && !self.refused_before_knock
    }

    /// The probe before the knock was refused (nothing guards the port, or a firewall
    /// rejects rather than drops).
    pub fn refused_before_knock(&self) -> bool {
        self.refused_before_knock
    }

    /// How the port answered last (what a door that never opened looked like); silence when
    /// nothing ever answered.
    pub fn last_answer(&self) -> PortAnswer {
        self.last_answer
    }

    /// Waits until a connection succeeds (returning it) or `timeout` passes (`None`). At least
    /// one attempt is made. At most the probe and one attempt are in flight; whichever connects
    /// first is returned and the other closed before its handshake can complete.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<Opened>, KnockError> {
        let deadline = Instant::now() + timeout;
        let mut lives = ATTEMPT_LIVES_MS.iter().map(|ms| Duration::from_millis(*ms));
        let mut life = Duration::ZERO;
        let mut attempt: Option<Attempt> = None;
        let mut next_start = Instant::now();
        let mut launched = false;
        loop {
            let now = Instant::now();
            if self.probe.as_ref().is_some_and(|p| now >= p.ends) {
                self.probe = None;
            }
            // An attempt that ends unanswered changes no answer seen before: a host that
            // refused, or whose neighbour lookup failed, is silent while the next one runs.
            if attempt.as_ref().is_some_and(|a| now >= a.ends) {
                attempt = None;
            }
            // Refused after the knock, and the probe before it was not: the door opened onto
            // a port where nothing listens, and waiting longer changes nothing.
            if self.probed && self.probe.is_none() && self.refused_into_nothing() {
                return Ok(None);
            }
            if attempt.is_none() && now >= next_start && (now < deadline || !launched) {
                life = lives.next().unwrap_or(life);
                launched = true;
                next_start = now + life;
                match Attempt::start(self.addr, life)? {
                    Ok(started) => attempt = Some(started),
                    Err(answer) => self.attempt_answered(answer),
                }
            }
            if now >= deadline && attempt.is_none() && self.probe.is_none() {
                return Ok(None);
            }
            let mut wake = deadline.max(now);
            if attempt.is_none() && now < deadline {
                wake = wake.min(next_start);
            }
            for pending in [&self.probe, &attempt].into_iter().flatten() {
                wake = wake.min(pending.ends);
            }
            let (probe_ready, attempt_ready) = writable(
                self.probe.as_ref(),
                attempt.as_ref(),
                wake.saturating_duration_since(now),
            )
            .map_err(|source| KnockError::Connect {
                addr: self.addr,
                source,
            })?;
            if probe_ready {
                let probe = self.probe.take().expect("a probe polled ready");
                match probe.outcome(self.addr)? {
                    Ok(stream) => {
                        return Ok(Some(Opened {
                            stream,
                            open_before_knock: true,
                        }))
                    }
                    Err(answer) => self.probe_answered(answer),
                }
            }
            if attempt_ready {
                let ready = attempt.take().expect("an attempt polled ready");
                match ready.outcome(self.addr)? {
                    Ok(stream) => {
                        self.probe = None;
                        return Ok(Some(Opened {
                            stream,
                            open_before_knock: false,
                        }));
                    }
                    Err(answer) => self.attempt_answered(answer),
                }
            }
        }
    }
}

/// Waits up to `wait` for the sockets' connects to finish; says which did.
fn writable(
    probe: Option<&Attempt>,
    attempt: Option<&Attempt>,
    wait: Duration,
) -> io::Result<(bool, bool)> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let flags = PollFlags::OUT | PollFlags::ERR | PollFlags::HUP;
    let mut fds: Vec<PollFd<'_>> = [probe, attempt]
        .into_iter()
        .flatten()
        .map(|a| PollFd::new(&a.socket, flags))
        .collect();
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut ready = fds.iter().map(|fd| !fd.revents().is_empty());
    let probe_ready = probe.is_some() && ready.next().unwrap_or(false);
    let attempt_ready = attempt.is_some() && ready.next().unwrap_or(false);
    Ok((probe_ready, attempt_ready))
}

/// Polls `addr` until a connection succeeds (returning the connected stream) or `timeout`
/// passes (`None`), gently: see [`DoorWatch::wait`].
pub fn wait_until_open(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Option<TcpStream>, KnockError> {
    Ok(DoorWatch::after_knock(addr)
        .wait(timeout)?
        .map(|opened| opened.stream))
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
    fn the_address_of_the_last_success_is_kept_while_the_name_resolves_to_it() {
        let v4: SocketAddr = "192.0.2.7:22".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:22".parse().unwrap();
        assert_eq!(pick_address(&[v6, v4], None), Some(v6));
        assert_eq!(pick_address(&[v6, v4], Some(v4.ip())), Some(v4));
        assert_eq!(pick_address(&[v4, v6], Some(v6.ip())), Some(v6));
        let gone: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(pick_address(&[v6, v4], Some(gone)), Some(v6));
        assert_eq!(pick_address(&[], Some(gone)), None);
        // A literal is what it says, whatever was used before.
        assert_eq!(
            resolve_preferring("192.0.2.7", 22, Some(v6.ip())).unwrap(),
            v4
        );
    }

    #[test]
    fn the_source_address_of_loopback_is_loopback() {
        let to: SocketAddr = "127.0.0.1:22".parse().unwrap();
        assert!(source_address(to).unwrap().is_loopback());
    }

    #[test]
    fn a_port_that_refuses_after_a_silent_probe_ends_the_wait_at_once() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        // As after a probe that nothing answered.
        let mut watch = DoorWatch::after_knock(addr);
        watch.probed = true;
        let started = Instant::now();
        assert!(watch.wait(Duration::from_secs(3)).unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(watch.refused_into_nothing());
        // Refused before the knock as well: nothing says the door opened; wait it out.
        let mut watch = DoorWatch::probe_then_knock(addr).unwrap();
        let started = Instant::now();
        assert!(watch.wait(Duration::from_millis(300)).unwrap().is_none());
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(watch.refused_before_knock());
        assert!(!watch.refused_into_nothing());
    }

    #[test]
    fn resolves_localhost() {
        let addr = resolve_once("localhost", 22).unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 22);
    }

    #[test]
    fn answers_are_named_by_errno() {
        use rustix::io::Errno;
        let answer =
            |errno: Errno| PortAnswer::of(&io::Error::from_raw_os_error(errno.raw_os_error()));
        assert_eq!(answer(Errno::CONNREFUSED), Some(PortAnswer::Refused));
        assert_eq!(answer(Errno::HOSTUNREACH), Some(PortAnswer::NoRoute));
        assert_eq!(answer(Errno::HOSTDOWN), Some(PortAnswer::HostDown));
        assert_eq!(
            answer(Errno::NETUNREACH),
            Some(PortAnswer::NetworkUnreachable)
        );
        assert_eq!(answer(Errno::TIMEDOUT), Some(PortAnswer::Silence));
        assert_eq!(answer(Errno::ACCESS), None);
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
