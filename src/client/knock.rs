//! Knocking a target with a policy: wait out a window's edge, knock, verify, knock once more.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::client::diagnosis::{diagnose, error_for, Observed, BAN_SECONDS};
use crate::client::history::{History, HostRecord};
use crate::client::hosts::MAX_OPEN_SECONDS;
use crate::client::wire::{self, KnockError};
use crate::clock::wall_clock;
use crate::core::ports::{PortPair, WEAK_PAIR};
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;

/// Where to knock: the resolved protected address, a label for messages, the knock spacing,
/// and where this host's knocks are remembered.
pub struct Target {
    pub label: String,
    pub addr: SocketAddr,
    pub delay: Duration,
    /// This host's record (`None`: remember nothing, diagnose from this knock alone).
    pub history: Option<History>,
    /// How long a grant may stay live after a knock (the server's `open_seconds`, else the
    /// longest a server gives).
    pub open_seconds: u64,
}

impl Target {
    pub fn new(label: &str, addr: SocketAddr, delay_ms: u64) -> Self {
        Self {
            label: label.to_owned(),
            addr,
            delay: Duration::from_millis(delay_ms),
            history: None,
            open_seconds: MAX_OPEN_SECONDS,
        }
    }

    /// Remembers this host's knocks in `history`; `open_seconds` if the server's is known.
    pub fn remembering(mut self, history: Option<History>, open_seconds: Option<u64>) -> Self {
        self.history = history;
        self.open_seconds = open_seconds.unwrap_or(MAX_OPEN_SECONDS);
        self
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

/// Resolves a profile's address once, mapping failures to a runtime error with a hint. While
/// the name still resolves to `prefer` (the address of this host's last success), that one.
pub fn resolve(address: &str, port: u16, prefer: Option<IpAddr>) -> anyhow::Result<SocketAddr> {
    wire::resolve_preferring(address, port, prefer).map_err(|e| {
        UserError::runtime(e.to_string())
            .with_hint(
                "check the name and your DNS, or store an IP address in the profile \
                 (`knock-totp add NAME --address IP --force ...`)",
            )
            .into()
    })
}

/// How a watched door ended.
enum Watched {
    /// It let a connection through; `next_door` if only the next window's pair opened it.
    Opened {
        opened: wire::Opened,
        next_door: bool,
    },
    /// It never did.
    Shut,
}

/// Knocks the current window's sequence at `target`. With `policy.verify`, polls the protected
/// port until it accepts (returning that connection), knocking once more when it is still
/// shut `REKNOCK_AFTER` after the knock and again if the window changed while waiting; when
/// the current window's door stays shut, knocks the next window's pair once (its door is
/// live, and the current one may have been used from another address). Fails with one
/// diagnosis (see `diagnosis`) when the port never opens; remembers the outcome per host.
pub fn knock_target(
    log: &Log,
    target: &Target,
    totp: &Totp,
    policy: &KnockPolicy,
) -> anyhow::Result<Option<TcpStream>> {
    if !policy.verify {
        knock_window(log, target, totp, policy.margin)?;
        return Ok(None);
    }
    let mut record = target
        .history
        .as_ref()
        .map(History::load)
        .unwrap_or_default();
    // The probe goes out right before the knock, after any wait for the next window.
    wait_out_window_end(log, target, totp, policy.margin)?;
    let mut watch = wire::DoorWatch::probe_then_knock(target.addr).map_err(network)?;
    let knocked_at = wall_clock()?;
    let first = knock_window(log, target, totp, policy.margin)?;
    match watch_door(log, target, totp, policy, &mut watch, first)? {
        Watched::Opened { opened, next_door } => {
            if next_door {
                log.alarm(format!(
                    "{}: the door for this window was already used from another address; \
                     the next window's let this one in",
                    target.label
                ));
            }
            let now = wall_clock()?.as_secs();
            let grant_live = record
                .last_success
                .is_some_and(|t| now.saturating_sub(t) <= target.open_seconds);
            if opened.open_before_knock {
                open_before_knock(log, target, grant_live);
            } else {
                record.success(knocked_at.as_secs(), target.addr.ip());
                remember(log, target, &record);
            }
            log.detail(format!("port {} accepted a connection", target.addr.port()));
            Ok(Some(opened.stream))
        }
        Watched::Shut => {
            let observed = observed(&watch);
            match observed {
                // The door opened: the knock was right, and its grant is live.
                Observed::Refused {
                    before_knock: false,
                } => record.success(knocked_at.as_secs(), target.addr.ip()),
                Observed::Silence | Observed::Refused { before_knock: true } => {
                    record.failure(knocked_at.as_secs())
                }
                Observed::Unreachable(_) => {}
            }
            remember(log, target, &record);
            let now = wall_clock()?.as_secs();
            let period = totp.period();
            let offset_ms = (knocked_at.as_millis() % (u128::from(period) * 1000)) as u64;
            let recent = record
                .failures
                .iter()
                .filter(|t| now.saturating_sub(**t) < BAN_SECONDS)
                .count();
            log.detail(format!(
                "{}: no connection within {} s of knocking ({:?}); knocked {:.1} s into a \
                 {period} s window; {} failed knocks in a row, {recent} in the last {} minutes",
                target.label,
                policy.timeout,
                watch.last_answer(),
                offset_ms as f64 / 1000.0,
                record.failures.len(),
                BAN_SECONDS / 60,
            ));
            let diagnosis = diagnose(observed, &record.failures, now, period, offset_ms);
            let source = wire::source_address(target.addr);
            Err(error_for(diagnosis, &target.label, target.addr, source).into())
        }
    }
}

/// Watches the door after the first knock, knocking again as `knock_target` says.
fn watch_door(
    log: &Log,
    target: &Target,
    totp: &Totp,
    policy: &KnockPolicy,
    watch: &mut wire::DoorWatch,
    first: Window,
) -> anyhow::Result<Watched> {
    let opened = |opened, next_door| Ok(Watched::Opened { opened, next_door });
    let timeout = Duration::from_secs_f64(policy.timeout);
    let mut window = first;
    let mut knocked_again = false;
    // A door opens within a round trip or two; one still shut after REKNOCK_AFTER may have lost
    // the knock to a knockd reload or restart: knock once more, then wait out the timeout.
    let mut wait = timeout.min(REKNOCK_AFTER);
    if wait < timeout {
        if let Some(door) = watch.wait(wait).map_err(network)? {
            return opened(door, false);
        }
        if watch.refused_into_nothing() {
            return Ok(Watched::Shut);
        }
        log.detail(format!(
            "{}: port {} did not open within {} s; knocking once more",
            target.label,
            target.addr.port(),
            REKNOCK_AFTER.as_secs_f64()
        ));
        window = knock_window(log, target, totp, policy.margin)?;
        wait = timeout - wait;
    }
    loop {
        if let Some(door) = watch.wait(wait).map_err(network)? {
            return opened(door, false);
        }
        if watch.refused_into_nothing() {
            return Ok(Watched::Shut);
        }
        let current = totp.window_at(wall_clock()?.as_secs());
        if !wire::should_knock_again(window.counter, current.counter, knocked_again) {
            break;
        }
        knocked_again = true;
        wait = timeout;
        log.detail(format!(
            "{}: port {} did not open and the code has changed since; knocking again",
            target.label,
            target.addr.port()
        ));
        window = knock_window(log, target, totp, policy.margin)?;
    }
    // Silence from the current window's door: it may be single-use and taken by another
    // address. The next window's door is already live; one knock of it, no more (each wrong
    // pair spends the server's wrong-knock budget).
    let current = totp.window_at(wall_clock()?.as_secs());
    if knocked_again || window != current || watch.last_answer() != wire::PortAnswer::Silence {
        return Ok(Watched::Shut);
    }
    let next = current.next();
    let ports = totp.ports_for(next);
    if ports.is_weak() {
        return Ok(Watched::Shut);
    }
    log.detail(format!(
        "{}: port {} did not open; knocking the next window's door once",
        target.label,
        target.addr.port()
    ));
    send_pair(log, target, ports)?;
    match watch.wait(timeout.min(REKNOCK_AFTER)).map_err(network)? {
        Some(door) => opened(door, true),
        None => Ok(Watched::Shut),
    }
}

/// How the port answered, for the diagnosis.
fn observed(watch: &wire::DoorWatch) -> Observed {
    match watch.last_answer() {
        wire::PortAnswer::NoRoute => Observed::Unreachable("no route to host"),
        wire::PortAnswer::HostDown => Observed::Unreachable("host down"),
        wire::PortAnswer::NetworkUnreachable => Observed::Unreachable("network unreachable"),
        wire::PortAnswer::Refused => Observed::Refused {
            before_knock: watch.refused_before_knock(),
        },
        wire::PortAnswer::Silence => Observed::Silence,
    }
}

/// The port accepted the probe sent before the knock. Within `open_seconds` of this host's
/// last success that is most likely its grant, still live: said at -v only. Otherwise the
/// firewall does not close the port.
fn open_before_knock(log: &Log, target: &Target, grant_live: bool) {
    let (port, ip) = (target.addr.port(), target.addr.ip());
    if grant_live {
        log.detail(format!(
            "port {port} on {ip} was open before knocking: the grant of the last knock from \
             here (within {} s) is likely still live",
            target.open_seconds
        ));
    } else {
        log.note(format!(
            "port {port} on {ip} was open before knocking: its firewall does not close it"
        ));
    }
}

/// Saves the host's record; a failure to is only a detail (the knock's outcome stands).
fn remember(log: &Log, target: &Target, record: &HostRecord) {
    if let Some(history) = &target.history {
        if let Err(e) = history.save(record) {
            log.detail(format!("cannot remember this knock: {e:#}"));
        }
    }
}

/// Waits out the end of a window when fewer than `margin` seconds are left, then knocks that
/// window's ports. Returns the window knocked.
fn knock_window(log: &Log, target: &Target, totp: &Totp, margin: u64) -> anyhow::Result<Window> {
    wait_out_window_end(log, target, totp, margin)?;
    let current = totp.window_at(wall_clock()?.as_secs());
    let (window, ports) = window_to_knock(totp, current)?;
    if window != current {
        log.detail(format!(
            "{}: {WEAK_PAIR}; knocking the next window's instead",
            target.label
        ));
    }
    send_pair(log, target, ports)?;
    Ok(window)
}

/// Sends one pair to the target's address.
fn send_pair(log: &Log, target: &Target, ports: PortPair) -> anyhow::Result<()> {
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
    wire::knock_sequence(target.addr.ip(), ports, target.delay).map_err(network)
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
        log.detail(format!(
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
}
