//! The doors of a window: which windows get one, their knock ports, and what changed.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::core::ports::PortPair;
use crate::core::totp::Totp;
use crate::core::window::Window;

/// One door: the window it serves, that window's knock ports and, on a server with users,
/// whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveDoor {
    pub window: Window,
    pub ports: PortPair,
    pub user: Option<Arc<DoorUser>>,
}

/// The user a door belongs to, as the engines need them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DoorUser {
    pub name: String,
    /// Names the user's sets and counters in the kernel.
    pub tag: String,
    /// The user's grant length, when not the server's.
    pub open_seconds: Option<u64>,
    /// Unix seconds when the user stops opening doors: no door lives past it.
    pub expires: Option<u64>,
}

/// Whose secret opens doors: the server's own (`user: None`) or one user's.
pub struct Holder {
    pub totp: Totp,
    pub user: Option<Arc<DoorUser>>,
}

impl Holder {
    /// Whether the holder may open a door at `now` (unix seconds).
    pub fn is_active(&self, now: u64) -> bool {
        self.user
            .as_ref()
            .and_then(|u| u.expires)
            .is_none_or(|expires| now < expires)
    }
}

/// The doors of every holder active at `now`, for `window`.
pub fn holders_doors(holders: &[Holder], window: Window, now: u64) -> Vec<ActiveDoor> {
    holders
        .iter()
        .filter(|h| h.is_active(now))
        .flat_map(|h| {
            active_doors(&h.totp, window)
                .into_iter()
                .map(|door| ActiveDoor {
                    user: h.user.clone(),
                    ..door
                })
        })
        .collect()
}

/// The doors for `window`: previous, current and next, except a window whose pair would open
/// without the code (`PortPair::is_weak`): clients knock the next window's pair instead.
pub fn active_doors(totp: &Totp, window: Window) -> Vec<ActiveDoor> {
    door_windows(window)
        .into_iter()
        .map(|window| ActiveDoor {
            window,
            ports: totp.ports_for(window),
            user: None,
        })
        .filter(|door| !door.ports.is_weak())
        .collect()
}

/// Every knock port some door uses.
pub fn door_ports(doors: &[ActiveDoor]) -> BTreeSet<u16> {
    doors.iter().flat_map(|d| d.ports.0).collect()
}

/// When the door of `window` stops being served: the end of the window after its own (where
/// it is the previous window's door). No engine may let a door open anything past this.
pub fn door_valid_until(window: Window) -> u64 {
    window.next().end()
}

/// The windows that get a door at `window`: previous, current and next (one step of clock
/// skew either way, as RFC 6238 advises). At the epoch there is no previous window, so the
/// current one stands in for it and is listed once.
pub fn door_windows(window: Window) -> Vec<Window> {
    let mut windows = vec![window.previous(), window, window.next()];
    windows.dedup();
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::SecretKey;
    use crate::core::totp::Algorithm;

    fn totp() -> Totp {
        Totp::new(
            &SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap(),
            Algorithm::Sha1,
            30,
        )
        .unwrap()
    }

    fn snapshot(doors: &[ActiveDoor]) -> String {
        doors
            .iter()
            .map(|d| format!("{} {}", d.window.counter, d.ports))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn doors_around_a_window_whose_code_starts_with_zeros() {
        // 1740012930 -> 000418 -> 4000 4180 (the 0000 group widened). Neighbours checked
        // with `oathtool --totp -b LPI3UVRWMUTRNDBD -N @T`.
        let doors = active_doors(&totp(), Window::at(1_740_012_930, 30));
        assert_eq!(doors[1].ports, PortPair([4000, 4180]));
        insta_like(
            &snapshot(&doors),
            "58000430 2332 3279\n58000431 4000 4180\n58000432 1015 1537",
        );
    }

    #[test]
    fn doors_around_a_window_whose_code_is_000024() {
        let doors = active_doors(&totp(), Window::at(1_740_134_610, 30));
        assert_eq!(doors[1].ports, PortPair([1000, 2400]));
        insta_like(
            &snapshot(&doors),
            "58004486 7374 7437\n58004487 1000 2400\n58004488 4979 7937",
        );
    }

    #[test]
    fn a_window_whose_pair_repeats_a_port_gets_no_door() {
        // 1740149940 -> 979797 -> 9797 9797; its neighbours 813435 and 761949 (oathtool
        // --totp -b LPI3UVRWMUTRNDBD -N @1740149910 / @1740149970).
        let w = Window::at(1_740_149_940, 30);
        assert!(totp().ports_for(w).is_weak());
        assert_eq!(
            snapshot(&active_doors(&totp(), w)),
            "58004997 8134 3435\n58004999 7619 1949"
        );
        assert_eq!(active_doors(&totp(), w.next()).len(), 2);
        assert_eq!(active_doors(&totp(), w.previous()).len(), 2);
    }

    #[test]
    fn a_window_whose_pair_a_sweep_completes_gets_no_door() {
        // 1740149250 -> 003001 -> 3000 3001: an ascending sweep knocks 3000 then 3001.
        let w = Window::at(1_740_149_250, 30);
        assert_eq!(totp().ports_for(w), PortPair([3000, 3001]));
        let doors = active_doors(&totp(), w);
        assert_eq!(doors.len(), 2);
        assert!(doors.iter().all(|d| d.window != w));
    }

    #[test]
    fn the_previous_and_next_doors_are_the_neighbours_current_doors() {
        let t = totp();
        let w = Window::at(1_740_012_930, 30);
        let now = active_doors(&t, w);
        let later = active_doors(&t, w.next());
        assert_eq!(now[1..], later[..2]);
        let ports = door_ports(&now);
        assert!(ports.contains(&4000) && ports.contains(&4180));
        assert!(ports.len() <= 6);
    }

    /// Compares with an inline snapshot and prints the actual text when it differs.
    fn insta_like(actual: &str, expected: &str) {
        assert_eq!(actual, expected, "\nactual snapshot:\n{actual}\n");
    }
}
