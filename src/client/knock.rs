//! Knocking a target with a policy: wait out a window's edge, knock, verify, knock once more.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::client::wire::{self, KnockError};
use crate::clock::wall_clock;
use crate::core::ports::{knock_range_text, PortPair, WEAK_PAIR};
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;

/// Where to knock: the resolved protected address, a label for messages, the knock spacing.
pub struct Target {
    pub label: String,
    pub addr: SocketAddr,
    pub delay: Duration,
}

impl Target {
    pub fn new(label: &str, addr: SocketAddr, delay_ms: u64) -> Self {
        Self {
            label: label.to_owned(),
            addr,
            delay: Duration::from_millis(delay_ms),
        }
    }
}

/// How a knock is sent and checked.
#[derive(Debug, Clone, Copy)]
pub struct KnockPolicy {
    /// Seconds to wait for the protected port to open.
    pub timeout: f64,
    /// Wait for the next window when fewer than this many seconds are left.
    pub margin: u64,
    /// Poll the protected port until it accepts (knocking again once if the window changed).
    pub verify: bool,
}

/// How long a door may stay shut after a knock before the client knocks once more.
pub const REKNOCK_AFTER: Duration = Duration::from_millis(2_500);

/// Resolves a profile's address once, mapping failures to a runtime error with a hint.
pub fn resolve(address: &str, port: u16) -> anyhow::Result<SocketAddr> {
    wire::resolve_once(address, port).map_err(|e| {
        UserError::runtime(e.to_string())
            .with_hint(
                "check the name and your DNS, or store an IP address in the profile \
                 (`knock-totp add NAME --address IP --force ...`)",
            )
            .into()
    })
}

/// Knocks the current window's sequence at `target`. With `policy.verify`, polls the protected
/// port until it accepts (returning that connection), knocking once more when it is still
/// shut `REKNOCK_AFTER` after the knock and again if the window changed while waiting; fails
/// with the likely causes when it never opens.
pub fn knock_target(
    log: &Log,
    target: &Target,
    totp: &Totp,
    policy: &KnockPolicy,
) -> anyhow::Result<Option<TcpStream>> {
    let timeout = Duration::from_secs_f64(policy.timeout);
    if !policy.verify {
        knock_window(log, target, totp, policy.margin)?;
        return Ok(None);
    }
    // The probe goes out right before the knock, after any wait for the next window.
    wait_out_window_end(log, target, totp, policy.margin)?;
    let mut watch = wire::DoorWatch::probe_then_knock(target.addr).map_err(network)?;
    let mut window = knock_window(log, target, totp, policy.margin)?;
    let mut knocked_again = false;
    // A door opens within a round trip or two; one still shut after REKNOCK_AFTER may have lost
    // the knock to a knockd reload or restart: knock once more, then wait out the timeout.
    let mut wait = timeout.min(REKNOCK_AFTER);
    if wait < timeout {
        if let Some(opened) = watch.wait(wait).map_err(network)? {
            return Ok(Some(opened_port(log, target, opened)));
        }
        log.note(format!(
            "{}: port {} did not open within {} s; knocking once more",
            target.label,
            target.addr.port(),
            REKNOCK_AFTER.as_secs_f64()
        ));
        window = knock_window(log, target, totp, policy.margin)?;
        wait = timeout - wait;
    }
    loop {
        if let Some(opened) = watch.wait(wait).map_err(network)? {
            return Ok(Some(opened_port(log, target, opened)));
        }
        let current = totp.window_at(wall_clock()?.as_secs());
        if !wire::should_knock_again(window.counter, current.counter, knocked_again) {
            break;
        }
        knocked_again = true;
        wait = timeout;
        log.note(format!(
            "{}: port {} did not open and the code has changed since; knocking again",
            target.label,
            target.addr.port()
        ));
        window = knock_window(log, target, totp, policy.margin)?;
    }
    Err(never_opened(target, policy.timeout, watch.last_answer()))
}

/// The connection a door let through, saying so when the port was open before the knock.
fn opened_port(log: &Log, target: &Target, opened: wire::Opened) -> TcpStream {
    if opened.open_before_knock {
        log.note(format!(
            "port {} on {} was open before knocking: its firewall does not close it \
             (unless a door from an earlier knock from here is still open)",
            target.addr.port(),
            target.addr.ip()
        ));
    }
    log.detail(format!("port {} accepted a connection", target.addr.port()));
    opened.stream
}

/// The error for a door that never opened, naming the causes that fit how the port answered.
fn never_opened(target: &Target, timeout: f64, answer: wire::PortAnswer) -> anyhow::Error {
    let (label, port, ip) = (&target.label, target.addr.port(), target.addr.ip());
    let unreachable = match answer {
        wire::PortAnswer::NoRoute => Some("no route to host"),
        wire::PortAnswer::HostDown => Some("host down"),
        wire::PortAnswer::NetworkUnreachable => Some("network unreachable"),
        wire::PortAnswer::Refused | wire::PortAnswer::Silence => None,
    };
    if let Some(reason) = unreachable {
        return UserError::runtime(format!(
            "{label}: port {port} on {ip} did not open within {timeout} s of knocking: \
             {reason} (the host is down, or unreachable from here)"
        ))
        .with_hint(format!(
            "check that the host is up and that {ip} is its address (`knock-totp show {label}`)"
        ))
        .into();
    }
    let answered = match answer {
        wire::PortAnswer::Refused => {
            "the host answers (it refused each connection) but nothing opened the port"
        }
        _ => "nothing answered",
    };
    UserError::runtime(format!(
        "{label}: port {port} on {ip} did not open within {timeout} s of knocking ({answered}); \
         likely causes: the server's daemon or knockd may not be running, the clock is off \
         (TOTP needs it within a few seconds of the server's), the secret is wrong, or the \
         knock ports ({}) are filtered before they reach the server (a cloud firewall or \
         security group)",
        knock_range_text(),
    ))
    .with_hint(format!(
        "check that `knock-totp server` (or knockd) runs on the server, compare \
         `knock-totp ports {label}` with the ports it expects (its log, or the authenticator \
         app's code), sync the clock (e.g. `timedatectl set-ntp true`), and let TCP {} reach \
         the server",
        knock_range_text(),
    ))
    .into()
}

/// Waits out the end of a window when fewer than `margin` seconds are left, then knocks that
/// window's ports. Returns the window knocked.
fn knock_window(log: &Log, target: &Target, totp: &Totp, margin: u64) -> anyhow::Result<Window> {
    wait_out_window_end(log, target, totp, margin)?;
    let current = totp.window_at(wall_clock()?.as_secs());
    let (window, ports) = window_to_knock(totp, current)?;
    if window != current {
        log.note(format!(
            "{}: {WEAK_PAIR}; knocking the next window's instead",
            target.label
        ));
    }
    // The ports are the code: -v says what happens, only -vv names them.
    if log.verbose > 1 {
        log.trace(format!(
            "knocking {} on ports {} ({} ms apart), then port {}",
            target.addr.ip(),
            ports,
            target.delay.as_millis(),
            target.addr.port()
        ));
    } else {
        log.detail(format!(
            "knocking {} ({} ms between the two knocks), then port {}",
            target.addr.ip(),
            target.delay.as_millis(),
            target.addr.port()
        ));
    }
    wire::knock_sequence(target.addr.ip(), ports, target.delay).map_err(network)?;
    Ok(window)
}

/// The window whose pair to knock at `current`: that window, or the next one when its pair is
/// weak (servers install no such door, and do install the next window's).
fn window_to_knock(totp: &Totp, current: Window) -> anyhow::Result<(Window, PortPair)> {
    [current, current.next()]
        .into_iter()
        .map(|window| (window, totp.ports_for(window)))
        .find(|(_, ports)| !ports.is_weak())
        .ok_or_else(|| {
            UserError::runtime(
                "this window's and the next window's knock ports are both the same or \
                 adjacent ports; servers open no door for either",
            )
            .with_hint("knock again in a minute")
            .into()
        })
}

/// Sleeps into the next window when fewer than `margin` seconds are left in this one.
fn wait_out_window_end(log: &Log, target: &Target, totp: &Totp, margin: u64) -> anyhow::Result<()> {
    if let Some(wait) = wire::edge_wait(wall_clock()?, totp.period(), margin) {
        log.note(format!(
            "{}: the code changes in {:.1} s; waiting for the next one",
            target.label,
            wait.as_secs_f64()
        ));
        std::thread::sleep(wait);
    }
    Ok(())
}

fn network(error: KnockError) -> anyhow::Error {
    UserError::runtime(error.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::SecretKey;
    use crate::core::totp::Algorithm;

    fn totp() -> Totp {
        let key = SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap();
        Totp::new(&key, Algorithm::Sha1, 30).unwrap()
    }

    #[test]
    fn a_pair_that_repeats_a_port_is_replaced_by_the_next_windows() {
        // 1740149940 -> 979797 -> 9797 9797; the next window's code is 761949.
        let current = Window::at(1_740_149_940, 30);
        let (window, ports) = window_to_knock(&totp(), current).unwrap();
        assert_eq!(window, current.next());
        assert_eq!(ports, PortPair([7619, 1949]));
    }

    #[test]
    fn an_ordinary_pair_is_knocked_in_its_own_window() {
        let current = Window::at(1_740_149_910, 30);
        let (window, ports) = window_to_knock(&totp(), current).unwrap();
        assert_eq!(window, current);
        assert_eq!(ports, PortPair([8134, 3435]));
    }

    fn message(answer: wire::PortAnswer) -> String {
        let target = Target::new("web", "192.0.2.7:22".parse().unwrap(), 0);
        format!("{:#}", never_opened(&target, 5.0, answer))
    }

    #[test]
    fn an_unreachable_host_is_named_and_not_blamed_on_the_clock_or_secret() {
        for (answer, named) in [
            (wire::PortAnswer::NoRoute, "no route to host"),
            (wire::PortAnswer::HostDown, "host down"),
            (wire::PortAnswer::NetworkUnreachable, "network unreachable"),
        ] {
            let text = message(answer);
            assert!(text.contains(named), "{text}");
            assert!(
                !text.contains("clock") && !text.contains("secret"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_host_that_answers_names_the_daemon() {
        for answer in [wire::PortAnswer::Refused, wire::PortAnswer::Silence] {
            let text = message(answer);
            assert!(
                text.contains("the server's daemon or knockd may not be running"),
                "{text}"
            );
            assert!(text.contains("clock") && text.contains("secret"), "{text}");
        }
        assert!(message(wire::PortAnswer::Refused).contains("refused each connection"));
    }
}
