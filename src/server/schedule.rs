//! When to rotate: which windows get doors, how long to sleep, and whether the clock jumped.

use std::cmp::Ordering;
use std::time::Duration;

use crate::core::window::Window;
#[cfg(test)]
use crate::server::doors::door_windows;

/// Longest single sleep: after a suspend or a clock change we notice within this much.
pub const MAX_SLEEP_CHUNK: Duration = Duration::from_secs(5);

/// Longest gap between two restoring repairs: a wake where a rotation follows at once skips
/// the restore (its doors transaction would undo the rotation's add-only speed), unless the
/// last one is this old.
pub const MAX_REPAIR_GAP: Duration = Duration::from_secs(2 * MAX_SLEEP_CHUNK.as_secs());

/// Wake this long after a boundary so the wall clock is surely in the new window.
pub const BOUNDARY_SLACK: Duration = Duration::from_millis(50);

/// A wall clock that disagrees with the monotonic clock by more than this has jumped.
pub const JUMP_TOLERANCE: Duration = Duration::from_secs(2);

/// What the loop should do, given the newest window it has served and the wall clock now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The wall clock is in a later window: serve it now.
    Rotate(Window),
    /// Still in the served window: sleep this long, then ask again.
    Sleep(Duration),
    /// The wall clock went back to `current`, before the newest window served. No older
    /// window is ever served again (its doors were open once already): keep the doors and
    /// sleep this long, then ask again.
    Behind { current: Window, sleep: Duration },
}

/// Decides the next step. `now` is the wall clock as time since the unix epoch. Sleeps aim
/// just past the served window's end but never exceed `MAX_SLEEP_CHUNK`, so a suspend or a
/// clock change is noticed soon and the boundary is recomputed, not trusted.
pub fn next_step(served: Window, now: Duration) -> Step {
    let current = Window::at(now.as_secs(), served.period);
    let until = |second: u64| {
        (Duration::from_secs(second) + BOUNDARY_SLACK)
            .saturating_sub(now)
            .min(MAX_SLEEP_CHUNK)
    };
    match current.counter.cmp(&served.counter) {
        Ordering::Greater => Step::Rotate(current),
        Ordering::Equal => Step::Sleep(until(served.end())),
        Ordering::Less => Step::Behind {
            current,
            sleep: until(served.start()),
        },
    }
}

/// Whether a wake's repair restores everything: always, except where a rotation follows at
/// once and the last restore is less than [`MAX_REPAIR_GAP`] old.
pub fn repair_due(rotates_now: bool, since_repair: Duration) -> bool {
    !rotates_now || since_repair >= MAX_REPAIR_GAP
}

/// How the wall clock moved compared with the monotonic clock over the same interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockJump {
    None,
    /// The wall clock went back by this much (set back by hand, NTP step).
    Back(Duration),
    /// The wall clock went further than the monotonic clock (suspend, NTP step forward).
    Forward(Duration),
}

/// Compares wall-clock readings before and after an interval with the monotonic time that
/// passed in between.
pub fn clock_jump(wall_before: Duration, wall_after: Duration, monotonic: Duration) -> ClockJump {
    if wall_after < wall_before {
        return ClockJump::Back(wall_before - wall_after + monotonic);
    }
    let wall = wall_after - wall_before;
    if wall > monotonic + JUMP_TOLERANCE {
        ClockJump::Forward(wall - monotonic)
    } else if monotonic > wall + JUMP_TOLERANCE {
        ClockJump::Back(monotonic - wall)
    } else {
        ClockJump::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn doors_are_previous_current_next() {
        let w = Window::at(1_740_012_930, 30);
        let counters: Vec<u64> = door_windows(w).iter().map(|w| w.counter).collect();
        assert_eq!(counters, [58_000_430, 58_000_431, 58_000_432]);
        assert_eq!(door_windows(Window::at(3, 30)).len(), 2);
    }

    /// With 30 s windows the loop wakes every 5 s: it restores at each wake but the boundary's,
    /// and at a boundary too once the last restore is `MAX_REPAIR_GAP` old (short windows).
    #[test]
    fn a_wake_restores_unless_a_rotation_follows_a_recent_restore() {
        assert!(repair_due(false, Duration::ZERO));
        assert!(!repair_due(true, MAX_SLEEP_CHUNK));
        assert!(!repair_due(true, MAX_REPAIR_GAP - Duration::from_millis(1)));
        assert!(repair_due(true, MAX_REPAIR_GAP));
        assert!(MAX_REPAIR_GAP > MAX_SLEEP_CHUNK + BOUNDARY_SLACK);
    }

    #[test]
    fn sleeps_until_just_past_the_boundary_in_bounded_chunks() {
        let w = Window::at(100, 30); // 90..120
        assert_eq!(
            next_step(w, Duration::from_millis(118_500)),
            Step::Sleep(Duration::from_millis(1_550))
        );
        assert_eq!(next_step(w, secs(90)), Step::Sleep(MAX_SLEEP_CHUNK));
        assert_eq!(next_step(w, secs(120)), Step::Rotate(Window::at(120, 30)));
    }

    #[test]
    fn a_clock_set_forward_rotates_to_the_window_it_is_in_now() {
        let w = Window::at(1_000, 30);
        assert_eq!(
            next_step(w, secs(5_000)),
            Step::Rotate(Window::at(5_000, 30))
        );
    }

    #[test]
    fn a_clock_set_back_serves_no_older_window() {
        let w = Window::at(1_000, 30); // 990..1020
        assert_eq!(
            next_step(w, secs(500)),
            Step::Behind {
                current: Window::at(500, 30),
                sleep: MAX_SLEEP_CHUNK
            }
        );
        assert_eq!(
            next_step(w, Duration::from_millis(988_000)),
            Step::Behind {
                current: w.previous(),
                sleep: Duration::from_millis(2_050)
            }
        );
        assert_eq!(next_step(w, secs(990)), Step::Sleep(MAX_SLEEP_CHUNK));
    }

    #[test]
    fn jumps_are_told_apart_from_normal_sleeps() {
        assert_eq!(clock_jump(secs(100), secs(105), secs(5)), ClockJump::None);
        assert_eq!(
            clock_jump(secs(100), secs(90), secs(5)),
            ClockJump::Back(secs(15))
        );
        assert_eq!(
            clock_jump(secs(100), secs(101), secs(5)),
            ClockJump::Back(secs(4))
        );
        assert_eq!(
            clock_jump(secs(100), secs(3_700), secs(5)),
            ClockJump::Forward(secs(3_595))
        );
    }
}
