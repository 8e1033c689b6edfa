//! Why a knock failed, from what the client can see: how the protected port answered, where
//! in its window the knock went out, and this host's failures in a row (`history`). The
//! server never says why (a signal for a ban would tell scanners a ban from a closed port),
//! so these are inferences, worded as such. Pure: the caller brings the observations.
//!
//! The rules, first match wins:
//! 1. the port refused a connection after the knock but not before: the door opened and
//!    nothing listens there (`Refused`); refused before and after: nothing listens, or a
//!    firewall rejects and the door did not open (`RefusedAlways`);
//! 2. no route, host down, network unreachable: `Unreachable`;
//! 3. silence (the door stayed shut), and `BAN_SUSPECT_FAILURES` or more failed knocks
//!    within `BAN_SECONDS` (this one included): the server's wrong-knock budget is spent,
//!    the address is likely banned (`Banned`);
//! 4. silence, and failed knocks in two or more windows within `BAN_SECONDS`: the code is
//!    wrong every window, so the clock or the secret (`ClockOrSecret`);
//! 5. silence, and the knock went out within `EDGE_SECONDS` (a tenth of short periods) of a window's start or end: a
//!    server whose clock differs by a few seconds (or accepts the current window only) may
//!    have served another window (`Edge`);
//! 6. silence otherwise: the door did not open, once (`DoorShut`).

use std::net::{IpAddr, SocketAddr};

use crate::core::ports::knock_range_text;
use crate::error::UserError;

/// The servers' default `ban_seconds` (a ban ends on its own within it).
pub const BAN_SECONDS: u64 = 600;
/// Failed knocks within `BAN_SECONDS` that likely spent the server's wrong-knock budget: a
/// failed knock sends 4 to 8 SYNs (the pair, once more after 2.5 s, the next window's pair,
/// and the new window's when the code changed), and the default burst is 40.
pub const BAN_SUSPECT_FAILURES: usize = 5;
/// A knock this close to a window's start or end may meet a server in another window (at
/// most a tenth of the period).
pub const EDGE_SECONDS: f64 = 2.0;

/// How the protected port answered while the client waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Refused (a reset) after the knock; `before_knock` if the probe before it was too.
    Refused { before_knock: bool },
    /// An ICMP error or a failed neighbour lookup, named.
    Unreachable(&'static str),
    /// Nothing answered: the firewall dropped every attempt.
    Silence,
}

/// What most likely happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Diagnosis {
    Refused,
    RefusedAlways,
    Unreachable(&'static str),
    Banned { failures: usize },
    ClockOrSecret { windows: usize },
    Edge { seconds: f64, before_change: bool },
    DoorShut,
}

/// The diagnosis of a failed knock. `failures`: unix times of this host's failed knocks in a
/// row, this one last; `now` unix seconds; `period` the TOTP period; `offset_ms` how far into
/// its window the knock went out.
pub fn diagnose(
    observed: Observed,
    failures: &[u64],
    now: u64,
    period: u64,
    offset_ms: u64,
) -> Diagnosis {
    match observed {
        Observed::Refused {
            before_knock: false,
        } => return Diagnosis::Refused,
        Observed::Refused { before_knock: true } => return Diagnosis::RefusedAlways,
        Observed::Unreachable(reason) => return Diagnosis::Unreachable(reason),
        Observed::Silence => {}
    }
    let recent: Vec<u64> = failures
        .iter()
        .copied()
        .filter(|t| now.saturating_sub(*t) < BAN_SECONDS)
        .collect();
    if recent.len() >= BAN_SUSPECT_FAILURES {
        return Diagnosis::Banned {
            failures: recent.len(),
        };
    }
    let mut windows: Vec<u64> = recent.iter().map(|t| t / period.max(1)).collect();
    windows.dedup();
    if windows.len() >= 2 {
        return Diagnosis::ClockOrSecret {
            windows: windows.len(),
        };
    }
    let period_ms = period.max(1) * 1000;
    let into = (offset_ms % period_ms) as f64 / 1000.0;
    let left = period as f64 - into;
    let edge = EDGE_SECONDS.min(period as f64 / 10.0);
    if into < edge {
        return Diagnosis::Edge {
            seconds: into,
            before_change: false,
        };
    }
    if left < edge {
        return Diagnosis::Edge {
            seconds: left,
            before_change: true,
        };
    }
    Diagnosis::DoorShut
}

/// The error for a diagnosis: one line of what happened, a hint of what to do. `source` is
/// the address this machine knocks from (as far as it knows: behind NAT the server sees
/// another).
pub fn error_for(
    diagnosis: Diagnosis,
    label: &str,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> UserError {
    let (port, ip) = (addr.port(), addr.ip());
    let at = format!("{label}: port {port} on {ip}");
    let (line, hint) = match diagnosis {
        Diagnosis::Refused => (
            format!(
                "{at} refused the connection: nothing listens there (wrong port in the profile?)"
            ),
            format!(
                "check which port the service listens on, and the profile's \
                 (`knock-totp show {label}`)"
            ),
        ),
        Diagnosis::RefusedAlways => (
            format!(
                "{at} refused every connection, before and after knocking: nothing listens, or \
                 a firewall rejects and no door opened"
            ),
            format!(
                "check the profile's port (`knock-totp show {label}`) against the service's, \
                 then the clock and the secret"
            ),
        ),
        Diagnosis::Unreachable(reason) => (
            format!("{at} is unreachable: {reason}"),
            format!(
                "check that the host is up and that {ip} is its address \
                 (`knock-totp show {label}`)"
            ),
        ),
        Diagnosis::Banned { failures } => (
            format!("{at} did not open: this address may be banned after {failures} failed knocks"),
            format!(
                "wait up to {} minutes, or ask the administrator to run \
                 `knock-totp server unban {}`",
                BAN_SECONDS / 60,
                source.map_or_else(|| "ADDRESS".to_owned(), |s| s.to_string())
            ),
        ),
        Diagnosis::ClockOrSecret { windows } => (
            format!(
                "{at} did not open in {windows} windows in a row: your clock may be off, \
                 or the secret wrong"
            ),
            "compare `date -u` here and on the server (sync with `timedatectl set-ntp true`), \
             and check the secret with the administrator"
                .to_owned(),
        ),
        Diagnosis::Edge {
            seconds,
            before_change,
        } => (
            format!(
                "{at} did not open: the knock went out {seconds:.1} s {} the code changed \
                 (the server's clock may differ)",
                if before_change { "before" } else { "after" }
            ),
            "knock again, and keep the clock in sync (`timedatectl set-ntp true`)".to_owned(),
        ),
        Diagnosis::DoorShut => (
            format!("{at} did not open after knocking: nothing answered"),
            format!(
                "knock again; if it fails again, check that the server's daemon runs and \
                 that TCP {} reaches the server",
                knock_range_text()
            ),
        ),
    };
    UserError::runtime(line).with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000; // a window start for periods 5, 30

    #[test]
    fn the_rules_in_order() {
        let silence = Observed::Silence;
        let cases: &[(Observed, &[u64], u64, Diagnosis)] = &[
            (
                Observed::Refused {
                    before_knock: false,
                },
                &[T - 100, T - 50, T - 40, T - 30, T],
                10_000,
                Diagnosis::Refused,
            ),
            (
                Observed::Refused { before_knock: true },
                &[T],
                10_000,
                Diagnosis::RefusedAlways,
            ),
            (
                Observed::Unreachable("host down"),
                &[T],
                10_000,
                Diagnosis::Unreachable("host down"),
            ),
            (silence, &[T], 10_000, Diagnosis::DoorShut),
            (
                silence,
                &[T],
                500,
                Diagnosis::Edge {
                    seconds: 0.5,
                    before_change: false,
                },
            ),
            (
                silence,
                &[T],
                29_000,
                Diagnosis::Edge {
                    seconds: 1.0,
                    before_change: true,
                },
            ),
            // Two failures in one window: still one window.
            (silence, &[T + 1, T + 10], 10_000, Diagnosis::DoorShut),
            (
                silence,
                &[T - 40, T],
                10_000,
                Diagnosis::ClockOrSecret { windows: 2 },
            ),
            // A failure long ago does not count.
            (silence, &[T - 4000, T], 10_000, Diagnosis::DoorShut),
            (
                silence,
                &[T - 300, T - 200, T - 100, T - 60, T],
                10_000,
                Diagnosis::Banned { failures: 5 },
            ),
            (
                silence,
                &[T - 900, T - 200, T - 100, T - 60, T],
                10_000,
                Diagnosis::ClockOrSecret { windows: 4 },
            ),
        ];
        for (observed, failures, offset, expected) in cases {
            let got = diagnose(*observed, failures, T + 11, 30, *offset);
            assert_eq!(got, *expected, "{observed:?} {failures:?} {offset}");
        }
    }

    #[test]
    fn every_message_is_one_line_and_a_hint_without_knock_ports() {
        let addr: SocketAddr = "192.0.2.7:22".parse().unwrap();
        for diagnosis in [
            Diagnosis::Refused,
            Diagnosis::RefusedAlways,
            Diagnosis::Unreachable("no route to host"),
            Diagnosis::Banned { failures: 6 },
            Diagnosis::ClockOrSecret { windows: 3 },
            Diagnosis::Edge {
                seconds: 1.0,
                before_change: true,
            },
            Diagnosis::DoorShut,
        ] {
            let error = error_for(diagnosis, "web", addr, "192.0.2.9".parse().ok());
            assert!(!error.message.contains('\n'), "{}", error.message);
            assert!(error.message.len() < 140, "{}", error.message);
            let hint = error.hint.unwrap();
            assert!(!hint.contains('\n') && hint.len() < 140, "{hint}");
        }
        let banned = error_for(
            Diagnosis::Banned { failures: 6 },
            "web",
            addr,
            "192.0.2.9".parse().ok(),
        );
        assert_eq!(
            banned.hint.unwrap(),
            "wait up to 10 minutes, or ask the administrator to run \
             `knock-totp server unban 192.0.2.9`"
        );
    }
}
