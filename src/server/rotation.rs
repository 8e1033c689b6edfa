//! The rotation loop: at every window boundary, the doors of the window go to the engine.

use std::sync::Arc;
use std::time::Instant;

use crate::clock::wall_clock;
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::log::Log;
use crate::server::doors::{holders_doors, DoorUser, Holder};
use crate::server::engine::Engine;
use crate::server::notify::Notifier;
use crate::server::schedule::{clock_jump, next_step, repair_due, ClockJump, Step};
use crate::server::signals::StopSignal;
use crate::server::state::{hold_back, newest, starts_behind, ServedState, StateFileError};
use crate::server::users::UserSource;

/// The daemon: a code generator, an engine, and how chatty to be.
pub struct Rotation {
    /// Whose secrets open doors: the server's, or each user's.
    pub holders: Vec<Holder>,
    /// Where the users are read again on SIGHUP (`None`: a single-secret server).
    pub users: Option<UserSource>,
    /// The users whose doors are in place (to revoke those that go).
    serving: Vec<Arc<DoorUser>>,
    period: u64,
    pub engine: Box<dyn Engine>,
    pub log: Log,
    pub dry_run: bool,
    /// Where the newest window served is kept across restarts (`None`: nowhere).
    pub served: Option<ServedState>,
    /// The newest window whose door was in the firewall before this start: no door of a
    /// window up to it goes in again.
    floor: Option<u64>,
    /// The newest window recorded in the state file.
    recorded: Option<u64>,
    /// systemd's readiness and watchdog (silent without `$NOTIFY_SOCKET`).
    pub notify: Notifier,
}

impl Rotation {
    pub fn new(totp: Totp, engine: Box<dyn Engine>, log: Log, dry_run: bool) -> Self {
        Self {
            period: totp.period(),
            holders: vec![Holder { totp, user: None }],
            users: None,
            serving: Vec::new(),
            engine,
            log,
            dry_run,
            served: None,
            floor: None,
            recorded: None,
            notify: Notifier::from_env(log),
        }
    }

    /// Serves the users of `source`, read now (`holders`) and again on each SIGHUP, instead of
    /// the server's own secret.
    pub fn serving_users(mut self, source: UserSource, holders: Vec<Holder>) -> Self {
        self.holders = holders;
        self.users = Some(source);
        self
    }

    /// Keeps the newest window served in `state` (read at start, written before each new
    /// door goes in place; a dry run only reads it).
    pub fn remembering(mut self, state: ServedState) -> Self {
        self.served = Some(state);
        self
    }

    /// The state file's path, for messages.
    fn state_file_shown(&self) -> String {
        self.served.as_ref().map_or_else(
            || "its state file".into(),
            |s| s.path().display().to_string(),
        )
    }

    /// The newest window served before this start, from the state file. A dry run goes on
    /// without it when it cannot be read (it changes nothing; a real start would stop).
    fn read_served(&mut self) -> anyhow::Result<Option<u64>> {
        let Some(state) = &self.served else {
            return Ok(None);
        };
        match state.read() {
            Ok(found) => Ok(found),
            Err(e) if self.dry_run => {
                self.log.alarm(format!("{e} (dry run: going on)"));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks what must hold before anything changes.
    pub fn preflight(&mut self) -> anyhow::Result<()> {
        self.engine.preflight(self.dry_run)
    }

    /// Rotates now, then at every window boundary until a stop signal (or once). On a stop
    /// signal or a fatal error, the engine leaves the firewall safe (`Engine::shut_down`).
    pub fn run(&mut self, once: bool, stop: &mut StopSignal) -> anyhow::Result<()> {
        // Doors go in place `lead` ahead of their window: the schedule runs on a clock that
        // is that much ahead.
        let lead = self.engine.rotation_lead();
        let clock = Window::at((wall_clock()? + lead).as_secs(), self.period);
        self.floor = self.read_served()?;
        self.recorded = self.floor;
        let mut window = clock;
        let mut behind = false;
        let started = match self.floor {
            Some(floor) if starts_behind(clock, self.floor) => {
                // The window served before this start (the newest door is the next one's).
                window = Window {
                    counter: floor - 1,
                    ..clock
                };
                self.log.alarm(format!(
                    "the clock is in window {}, behind window {} already served before this \
                     start ({} records doors up to window {floor}): no older window is served \
                     again; no door goes in before the clock reaches window {floor} (if the \
                     clock was wrong before and is right now, remove that file and restart)",
                    clock.counter,
                    window.counter,
                    self.state_file_shown(),
                ));
                behind = true;
                if self.dry_run {
                    self.engine.dry_run(clock, &[])
                } else {
                    self.engine.start_without_doors(clock, stop)
                }
            }
            _ => self.rotate(window, stop, true),
        };
        if let Err(e) = started {
            if let Some(signal) = stop.received() {
                // Interrupted while retrying: a stop, not a failure.
                self.log
                    .note(format!("{signal}: {} and stopping", self.engine.stopping()));
                return self.shut_down();
            }
            return Err(self.cleanup_after(e));
        }
        // systemd: the table and the doors are in place (or the fail-closed start is).
        self.notify.ready(&if behind {
            "started without doors: the clock is behind the windows already served".to_owned()
        } else {
            format!("window {}: doors in place", window.counter)
        });
        if once {
            return Ok(());
        }
        let mut last_restore = Instant::now();
        while stop.received().is_none() {
            let wall_before = wall_clock()?;
            let mono_before = Instant::now();
            let step = next_step(window, wall_before + lead);
            if behind && !matches!(step, Step::Behind { .. }) {
                self.log.note(format!(
                    "the clock is back in window {} or later; serving windows again",
                    window.counter
                ));
                behind = false;
            }
            let sleep = match step {
                Step::Rotate(next) => {
                    if next.counter > window.counter + 1 {
                        self.log.note(format!(
                            "skipped {} windows (suspend or clock change)",
                            next.counter - window.counter - 1
                        ));
                    }
                    window = next;
                    if let Err(e) = self.rotate(window, stop, false) {
                        if self.engine.is_fatal(&e) || e.is::<StateFileError>() {
                            return Err(self.cleanup_after(e));
                        }
                        self.log.alarm(format!(
                            "rotation to window {} failed (trying again): {e:#}",
                            window.counter
                        ));
                        self.notify.status(&format!(
                            "rotation to window {} failed (trying again)",
                            window.counter
                        ));
                    } else {
                        self.notify
                            .rotated(&format!("window {}: doors in place", window.counter));
                    }
                    continue;
                }
                Step::Sleep(duration) => duration,
                Step::Behind { current, sleep } => {
                    if !behind {
                        self.log.alarm(format!(
                            "the clock went back to window {}, before window {} already served: \
                             no older window is served again; the doors stay as they are until \
                             the clock catches up (if the clock was wrong before, stop the \
                             daemon, remove {} and start it)",
                            current.counter,
                            window.counter,
                            self.state_file_shown()
                        ));
                        behind = true;
                    }
                    sleep
                }
            };
            // Woken often enough for the watchdog's pings (only after a success: a hung or
            // failing engine stops them, and systemd restarts the daemon).
            if !stop.pause(self.notify.wake_within(sleep)) {
                break;
            }
            if self.dry_run {
                self.notify.alive();
            } else {
                let rotates_now =
                    matches!(next_step(window, wall_clock()? + lead), Step::Rotate(_));
                let restore = repair_due(rotates_now, last_restore.elapsed());
                if restore {
                    last_restore = Instant::now();
                }
                match self.engine.repair(restore) {
                    Ok(()) => self.notify.alive(),
                    Err(e) => self.log.alarm(format!("{e:#}")),
                }
            }
            if stop.take_hangups() > 0 {
                self.reload_users(window, stop);
            }
            if !self.dry_run && self.someone_expired() {
                if let Err(e) = self.rotate(window, stop, false) {
                    self.log.alarm(format!("{e:#}"));
                }
            }
            match clock_jump(wall_before, wall_clock()?, mono_before.elapsed()) {
                ClockJump::None => {}
                ClockJump::Back(by) => self.log.alarm(format!(
                    "the wall clock jumped back by {:.1} s",
                    by.as_secs_f64()
                )),
                ClockJump::Forward(by) => self.log.detail(format!(
                    "the wall clock moved {:.1} s further than the monotonic clock (suspend or \
                     clock change)",
                    by.as_secs_f64()
                )),
            }
        }
        let signal = stop.received().unwrap_or("a stop signal");
        self.log
            .note(format!("{signal}: {} and stopping", self.engine.stopping()));
        self.shut_down()
    }

    /// The engine's shut-down, except in a dry run, which never touches the firewall (a real
    /// daemon may be running beside it).
    fn shut_down(&mut self) -> anyhow::Result<()> {
        self.notify.stopping(self.engine.stopping());
        if self.dry_run {
            return Ok(());
        }
        self.engine.shut_down()
    }

    /// Leaves the firewall safe after a fatal error and returns the error.
    fn cleanup_after(&mut self, error: anyhow::Error) -> anyhow::Error {
        if let Err(e) = self.shut_down() {
            self.log.alarm(format!("{e:#}"));
        }
        error
    }

    /// Puts the doors for `window` in place (or prints what that would do, in a dry run),
    /// except those of windows served before this start. The newest window among them is
    /// recorded first: once a door is in the firewall, its window is never forgotten.
    fn rotate(&mut self, window: Window, stop: &mut StopSignal, first: bool) -> anyhow::Result<()> {
        let now = wall_clock()?.as_secs();
        let mut doors = holders_doors(&self.holders, window, now);
        let held = hold_back(&mut doors, self.floor);
        if held > 0 {
            self.log.note(format!(
                "window {}: {held} doors held back: their windows (up to {}) had doors before \
                 this start, and no window is served twice",
                window.counter,
                self.floor.unwrap_or_default()
            ));
        }
        if self.dry_run {
            return self.engine.dry_run(window, &doors);
        }
        if let (Some(state), Some(newest)) = (&self.served, newest(&doors)) {
            if self.recorded.is_none_or(|recorded| newest > recorded) {
                state.record(newest)?;
                self.recorded = Some(newest);
            }
        }
        if first && doors.is_empty() {
            self.engine.start_without_doors(window, stop)?;
        } else {
            self.engine.apply(window, &doors, stop, first)?;
        }
        self.revoke_gone(now)
    }

    /// The users active now; those served before and not any more lose their doors (the
    /// rotation just put in place the doors without them) and their grants.
    fn revoke_gone(&mut self, now: u64) -> anyhow::Result<()> {
        let active: Vec<Arc<DoorUser>> = self
            .holders
            .iter()
            .filter(|h| h.is_active(now))
            .filter_map(|h| h.user.clone())
            .collect();
        let gone: Vec<Arc<DoorUser>> = self
            .serving
            .iter()
            .filter(|u| !active.iter().any(|a| a.name == u.name))
            .cloned()
            .collect();
        self.serving = active;
        if gone.is_empty() {
            return Ok(());
        }
        self.engine.revoke(&gone)?;
        let names: Vec<&str> = gone.iter().map(|u| u.name.as_str()).collect();
        self.log.note(format!(
            "revoked {}: doors and live grants removed",
            names.join(", ")
        ));
        Ok(())
    }

    /// Whether a user served now has expired since.
    fn someone_expired(&self) -> bool {
        let now = wall_clock().map_or(0, |t| t.as_secs());
        self.serving
            .iter()
            .any(|u| u.expires.is_some_and(|expires| now >= expires))
    }

    /// SIGHUP: reads the users again and puts the doors of the new set in place at once.
    /// A users directory that does not load leaves everything as it was.
    fn reload_users(&mut self, window: Window, stop: &mut StopSignal) {
        let Some(source) = &self.users else {
            self.log.note(
                "SIGHUP: this server serves its own secret and reads no users; restart it to \
                 read a changed config or to serve the users of its users directory",
            );
            return;
        };
        match source.holders() {
            Ok(holders) => {
                let holders = holders.unwrap_or_default();
                let names: Vec<&str> = holders
                    .iter()
                    .filter_map(|h| h.user.as_ref().map(|u| u.name.as_str()))
                    .collect();
                self.log.note(format!(
                    "SIGHUP: {} enabled users in {}{}",
                    names.len(),
                    source.dir.display(),
                    if names.is_empty() {
                        ": no door opens".to_owned()
                    } else {
                        format!(" ({})", names.join(", "))
                    }
                ));
                self.holders = holders;
                if self.dry_run {
                    return;
                }
                if let Err(e) = self.rotate(window, stop, false) {
                    self.log.alarm(format!("SIGHUP: {e:#}"));
                }
            }
            Err(e) => self
                .log
                .alarm(format!("SIGHUP: {e:#}; keeping the users as they were")),
        }
    }
}
