//! TOTP time windows: which step a moment falls in and how long it has left.

use std::time::Duration;

/// Seconds before a window's end in which a client does not knock by default (`--margin`): it
/// waits for the next window instead, so a pair never arrives just as its door goes.
pub const DEFAULT_MARGIN_SECS: u64 = 3;

/// How long before a boundary a server that cannot change its doors without losing knocks in
/// flight (knockd's reload) changes them: the middle of the default margin's quiet zone, so a
/// client whose clock is off by up to this much either way never knocks into the change.
pub const QUIET_ZONE_LEAD: Duration = Duration::from_millis(DEFAULT_MARGIN_SECS * 1000 / 2);

/// One TOTP step: `counter = floor(unix_time / period)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub counter: u64,
    pub period: u64,
}

impl Window {
    /// The window containing `unix_time`. `period` must be non-zero.
    pub fn at(unix_time: u64, period: u64) -> Self {
        assert!(period > 0, "a TOTP period is at least one second");
        Self {
            counter: unix_time / period,
            period,
        }
    }

    /// First second of the window.
    pub fn start(self) -> u64 {
        self.counter.saturating_mul(self.period)
    }

    /// First second of the following window.
    pub fn end(self) -> u64 {
        self.start().saturating_add(self.period)
    }

    /// Seconds from `unix_time` until the window ends: `period - unix_time % period`.
    pub fn seconds_left(self, unix_time: u64) -> u64 {
        self.end().saturating_sub(unix_time)
    }

    pub fn next(self) -> Self {
        Self {
            counter: self.counter.saturating_add(1),
            ..self
        }
    }

    pub fn previous(self) -> Self {
        Self {
            counter: self.counter.saturating_sub(1),
            ..self
        }
    }

    /// A time inside this window, for generating its code.
    pub fn time(self) -> u64 {
        self.start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_seconds_left() {
        let w = Window::at(59, 30);
        assert_eq!(w.counter, 1);
        assert_eq!(w.seconds_left(59), 1);
        let w = Window::at(60, 30);
        assert_eq!(w.counter, 2);
        assert_eq!(w.seconds_left(60), 30);
        assert_eq!(Window::at(1111111109, 30).counter, 37037036);
        assert_eq!(Window::at(1111111109, 30).seconds_left(1111111109), 1);
    }

    #[test]
    fn neighbours() {
        let w = Window::at(1_000_000, 30);
        assert_eq!(w.next().start(), w.end());
        assert_eq!(w.previous().end(), w.start());
        assert_eq!(Window::at(0, 30).previous().counter, 0);
    }

    #[test]
    fn the_reload_lead_lies_inside_the_default_margin() {
        // Clients off by up to the lead either way still never knock into the reload.
        let margin = Duration::from_secs(DEFAULT_MARGIN_SECS);
        assert!(QUIET_ZONE_LEAD > Duration::ZERO);
        assert!(QUIET_ZONE_LEAD * 2 <= margin);
    }

    #[test]
    fn other_periods() {
        let w = Window::at(12, 5);
        assert_eq!(
            (w.counter, w.start(), w.end(), w.seconds_left(12)),
            (2, 10, 15, 3)
        );
    }
}
