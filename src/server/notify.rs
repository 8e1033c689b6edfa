//! systemd's notify protocol, by hand: `READY=1`, `WATCHDOG=1`, `STATUS=...` and `STOPPING=1`
//! as datagrams to `$NOTIFY_SOCKET` (a path, or an abstract name after `@`). Without
//! `$NOTIFY_SOCKET` (not under a `Type=notify` unit) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::log::Log;

/// The shortest sleep the watchdog imposes on the loop.
pub const MIN_WAKE: Duration = Duration::from_millis(100);

/// Where the messages go and how often the watchdog wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyEnv {
    /// `$NOTIFY_SOCKET`: a path, or an abstract name (without its `@`).
    pub socket: NotifyTarget,
    /// `$WATCHDOG_USEC` when it is meant for this process (`$WATCHDOG_PID`, if set, is ours).
    pub watchdog: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

/// Reads the environment systemd gives a `Type=notify` service. `Ok(None)`: no notify socket.
pub fn parse_env(
    socket: Option<&std::ffi::OsStr>,
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    my_pid: u32,
) -> Result<Option<NotifyEnv>, String> {
    use std::os::unix::ffi::OsStrExt;
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bytes = socket.as_bytes();
    let socket = match bytes.first() {
        Some(b'@') => NotifyTarget::Abstract(bytes[1..].to_vec()),
        Some(b'/') => NotifyTarget::Path(socket.into()),
        _ => {
            return Err(format!(
                "NOTIFY_SOCKET={} is neither an absolute path nor an abstract name (@NAME)",
                socket.to_string_lossy()
            ))
        }
    };
    let for_us = match watchdog_pid {
        None => true,
        Some(pid) => pid.trim().parse::<u32>().ok() == Some(my_pid),
    };
    let watchdog = match watchdog_usec.filter(|_| for_us) {
        None => None,
        Some(usec) => match usec.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(usec) => Some(Duration::from_micros(usec)),
            Err(_) => {
                return Err(format!(
                    "WATCHDOG_USEC={usec} is not a number of microseconds"
                ))
            }
        },
    };
    Ok(Some(NotifyEnv { socket, watchdog }))
}

/// One datagram: `KEY=VALUE` lines. A value keeps to its line (newlines become spaces).
pub fn message(assignments: &[(&str, &str)]) -> String {
    assignments
        .iter()
        .map(|(key, value)| format!("{key}={}\n", value.replace(['\n', '\r'], " ")))
        .collect()
}

/// Sends the daemon's notifications, if systemd asked for them.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    log: Log,
    /// Whether a send failed already (reported once, not at every ping).
    failed: bool,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`; a broken setting is
    /// reported and leaves the notifier silent.
    pub fn from_env(log: Log) -> Self {
        let var = |name| std::env::var(name).ok();
        let parsed = parse_env(
            std::env::var_os("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        match parsed {
            Ok(Some(env)) => Self::to(&env, log),
            Ok(None) => Self::silent(log),
            Err(e) => {
                log.alarm(format!("systemd notifications off: {e}"));
                Self::silent(log)
            }
        }
    }

    /// Sends nothing.
    pub fn silent(log: Log) -> Self {
        Self {
            target: None,
            watchdog: None,
            log,
            failed: false,
        }
    }

    /// Sends to `env`'s socket.
    pub fn to(env: &NotifyEnv, log: Log) -> Self {
        use std::os::linux::net::SocketAddrExt;
        let address = match &env.socket {
            NotifyTarget::Path(path) => SocketAddr::from_pathname(path),
            NotifyTarget::Abstract(name) => SocketAddr::from_abstract_name(name),
        };
        match address.and_then(|a| Ok((UnixDatagram::unbound()?, a))) {
            Ok(target) => Self {
                target: Some(target),
                watchdog: env.watchdog,
                log,
                failed: false,
            },
            Err(e) => {
                log.alarm(format!("systemd notifications off: NOTIFY_SOCKET: {e}"));
                Self::silent(log)
            }
        }
    }

    /// The watchdog's interval, if systemd runs one for us.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `sleep`, cut so that the loop wakes (and pings) at least every quarter of the watchdog
    /// interval: a ping at least every half of it even with a slow repair in between. Never
    /// below `MIN_WAKE`: a tiny `WatchdogSec=` must not make the loop spin on the firewall.
    pub fn wake_within(&self, sleep: Duration) -> Duration {
        self.watchdog
            .map_or(sleep, |w| sleep.min((w / 4).max(MIN_WAKE)))
    }

    /// The doors are in place (or the fail-closed start without them): `READY=1`.
    pub fn ready(&mut self, status: &str) {
        self.send(&message(&[("READY", "1"), ("STATUS", status)]));
    }

    /// A rotation or a repair succeeded: `WATCHDOG=1` (when the watchdog runs).
    pub fn alive(&mut self) {
        if self.watchdog.is_some() {
            self.send(&message(&[("WATCHDOG", "1")]));
        }
    }

    /// A rotation succeeded: `WATCHDOG=1` (when the watchdog runs) with the new `STATUS=`.
    pub fn rotated(&mut self, status: &str) {
        if self.watchdog.is_some() {
            self.send(&message(&[("WATCHDOG", "1"), ("STATUS", status)]));
        } else {
            self.status(status);
        }
    }

    /// `STATUS=...` (never a port or a secret).
    pub fn status(&mut self, status: &str) {
        self.send(&message(&[("STATUS", status)]));
    }

    /// Shutting down: `STOPPING=1`.
    pub fn stopping(&mut self, status: &str) {
        self.send(&message(&[("STOPPING", "1"), ("STATUS", status)]));
    }

    fn send(&mut self, text: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(text.as_bytes(), address) {
            if !self.failed {
                self.log
                    .alarm(format!("cannot notify systemd (NOTIFY_SOCKET): {e}"));
                self.failed = true;
            }
        } else {
            self.failed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_socket_means_no_notifications() {
        assert_eq!(parse_env(None, Some("30000000"), None, 7), Ok(None));
        assert_eq!(parse_env(Some(OsStr::new("")), None, None, 7), Ok(None));
        let silent = Notifier::silent(Log::default());
        assert_eq!(silent.watchdog(), None);
        assert_eq!(
            silent.wake_within(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn paths_and_abstract_names() {
        let env = parse_env(Some(OsStr::new("/run/systemd/notify")), None, None, 7)
            .unwrap()
            .unwrap();
        assert_eq!(env.socket, NotifyTarget::Path("/run/systemd/notify".into()));
        assert_eq!(env.watchdog, None);
        let env = parse_env(Some(OsStr::new("@sd/notify")), None, None, 7)
            .unwrap()
            .unwrap();
        assert_eq!(env.socket, NotifyTarget::Abstract(b"sd/notify".to_vec()));
        let err = parse_env(Some(OsStr::new("relative")), None, None, 7).unwrap_err();
        assert!(err.contains("NOTIFY_SOCKET=relative"), "{err}");
    }

    #[test]
    fn the_watchdog_is_ours_only_when_its_pid_is() {
        let socket = Some(OsStr::new("/run/systemd/notify"));
        let watchdog = |usec, pid| parse_env(socket, usec, pid, 42).map(|e| e.unwrap().watchdog);
        assert_eq!(
            watchdog(Some("30000000"), None),
            Ok(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            watchdog(Some("2000000"), Some("42")),
            Ok(Some(Duration::from_secs(2)))
        );
        assert_eq!(watchdog(Some("2000000"), Some("41")), Ok(None));
        assert_eq!(watchdog(Some("0"), None), Ok(None));
        assert!(watchdog(Some("soon"), None).unwrap_err().contains("soon"));
    }

    #[test]
    fn sleeps_are_cut_to_a_quarter_of_the_watchdog() {
        let env = NotifyEnv {
            socket: NotifyTarget::Abstract(b"unused".to_vec()),
            watchdog: Some(Duration::from_secs(2)),
        };
        let notifier = Notifier::to(&env, Log::default());
        assert_eq!(
            notifier.wake_within(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            notifier.wake_within(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
        let tiny = NotifyEnv {
            watchdog: Some(Duration::from_millis(20)),
            ..env
        };
        let notifier = Notifier::to(&tiny, Log::default());
        assert_eq!(notifier.wake_within(Duration::from_secs(5)), MIN_WAKE);
    }

    #[test]
    fn messages_are_one_assignment_a_line() {
        assert_eq!(
            message(&[("READY", "1"), ("STATUS", "two\nlines")]),
            "READY=1\nSTATUS=two lines\n"
        );
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let env = parse_env(Some(path.as_os_str()), Some("4000000"), None, 1)
            .unwrap()
            .unwrap();
        let mut notifier = Notifier::to(&env, Log::default());
        notifier.ready("window 7: 3 doors in place");
        assert_eq!(
            received(&server),
            "READY=1\nSTATUS=window 7: 3 doors in place\n"
        );
        notifier.alive();
        assert_eq!(received(&server), "WATCHDOG=1\n");
        notifier.stopping("stopping");
        assert_eq!(received(&server), "STOPPING=1\nSTATUS=stopping\n");
    }

    #[test]
    fn sends_to_an_abstract_socket_and_pings_only_with_a_watchdog() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("knock-totp-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = std::ffi::OsString::from(format!("@{name}"));
        let env = parse_env(Some(&socket), None, None, 1).unwrap().unwrap();
        let mut notifier = Notifier::to(&env, Log::default());
        notifier.alive();
        notifier.status("no watchdog");
        server.set_nonblocking(false).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(received(&server), "STATUS=no watchdog\n");
    }

    #[test]
    fn a_missing_socket_is_reported_once_and_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let env = parse_env(Some(dir.path().join("gone").as_os_str()), None, None, 1)
            .unwrap()
            .unwrap();
        let mut notifier = Notifier::to(&env, Log::default());
        notifier.ready("ready");
        assert!(notifier.failed);
        notifier.status("still no socket");
    }
}
