//! The rotation loop: at every window boundary, the doors of the window go to the engine.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::clock::wall_clock;
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;
use crate::server::doors::active_doors;
use crate::server::engine::Engine;
use crate::server::schedule::{clock_jump, next_step, ClockJump, Step};

/// SIGTERM and SIGINT, turned into a channel the loop can sleep on.
pub struct StopSignal {
    rx: mpsc::Receiver<&'static str>,
    received: Option<&'static str>,
    /// SIGHUPs received and not yet reported (a SIGHUP never stops the daemon).
    hangups: u32,
}

const SIGHUP: &str = "SIGHUP";

impl StopSignal {
    /// Installs the handlers (before anything that needs undoing on shutdown happens).
    pub fn install() -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                use tokio::signal::unix::{signal, SignalKind};
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let handlers = signal(SignalKind::terminate()).and_then(|t| {
                        Ok((
                            t,
                            signal(SignalKind::interrupt())?,
                            signal(SignalKind::hangup())?,
                        ))
                    });
                    let (mut term, mut int, mut hup) = match handlers {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        let name = tokio::select! {
                            _ = term.recv() => "SIGTERM",
                            _ = int.recv() => "SIGINT",
                            _ = hup.recv() => SIGHUP,
                        };
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|e| anyhow::anyhow!("the signal thread died: {e}"))?
            .map_err(|e| UserError::runtime(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
        Ok(Self {
            rx,
            received: None,
            hangups: 0,
        })
    }

    /// Sleeps up to `duration`; false as soon as a stop signal arrives (now or earlier).
    pub fn pause(&mut self, duration: Duration) -> bool {
        if self.received.is_some() {
            return false;
        }
        let until = Instant::now() + duration;
        match self.rx.recv_timeout(duration) {
            Ok(SIGHUP) => {
                self.hangups += 1;
                self.pause(until.saturating_duration_since(Instant::now()))
            }
            Ok(name) => {
                self.received = Some(name);
                false
            }
            Err(mpsc::RecvTimeoutError::Timeout) => true,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(duration);
                true
            }
        }
    }

    /// The stop signal received so far, if any.
    pub fn received(&mut self) -> Option<&'static str> {
        while self.received.is_none() {
            match self.rx.try_recv() {
                Ok(SIGHUP) => self.hangups += 1,
                Ok(name) => self.received = Some(name),
                Err(_) => break,
            }
        }
        self.received
    }

    /// How many SIGHUPs arrived since the last call.
    pub fn take_hangups(&mut self) -> u32 {
        std::mem::take(&mut self.hangups)
    }
}

/// The daemon: a code generator, an engine, and how chatty to be.
pub struct Rotation {
    pub totp: Totp,
    pub engine: Box<dyn Engine>,
    pub log: Log,
    pub dry_run: bool,
}

impl Rotation {
    pub fn new(totp: Totp, engine: Box<dyn Engine>, log: Log, dry_run: bool) -> Self {
        Self {
            totp,
            engine,
            log,
            dry_run,
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
        let mut window = Window::at((wall_clock()? + lead).as_secs(), self.totp.period());
        if let Err(e) = self.rotate(window, stop, true) {
            if let Some(signal) = stop.received() {
                // Interrupted while retrying: a stop, not a failure.
                self.log
                    .note(format!("{signal}: {} and stopping", self.engine.stopping()));
                return self.shut_down();
            }
            return Err(self.cleanup_after(e));
        }
        if once {
            return Ok(());
        }
        let mut behind = false;
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
                        if self.engine.is_fatal(&e) {
                            return Err(self.cleanup_after(e));
                        }
                        self.log.alarm(format!(
                            "rotation to window {} failed (trying again): {e:#}",
                            window.counter
                        ));
                    }
                    continue;
                }
                Step::Sleep(duration) => duration,
                Step::Behind { current, sleep } => {
                    if !behind {
                        self.log.alarm(format!(
                            "the clock went back to window {}, before window {} already served: \
                             no older window is served again; the doors stay as they are until \
                             the clock catches up (restart the daemon if the clock was wrong \
                             before)",
                            current.counter, window.counter
                        ));
                        behind = true;
                    }
                    sleep
                }
            };
            if !stop.pause(sleep) {
                break;
            }
            if !self.dry_run {
                if let Err(e) = self.engine.repair() {
                    self.log.alarm(format!("{e:#}"));
                }
            }
            if stop.take_hangups() > 0 {
                self.log.note(
                    "SIGHUP: ignored (it never stops the daemon); restart it to read a changed \
                     config",
                );
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

    /// Puts the doors for `window` in place (or prints what that would do, in a dry run).
    fn rotate(&mut self, window: Window, stop: &mut StopSignal, first: bool) -> anyhow::Result<()> {
        let doors = active_doors(&self.totp, window);
        if self.dry_run {
            return self.engine.dry_run(window, &doors);
        }
        self.engine.apply(window, &doors, stop, first)
    }
}

/// Calls `op` until it succeeds, `deadline` passes or `pause` says to stop (it sleeps and
/// returns false when the server is shutting down). Backs off 1, 2, 4, 8, 8... seconds and
/// reports each distinct failure once. A `permanent` failure is not retried.
pub fn retrying<T, E: Clone + PartialEq>(
    deadline: Instant,
    pause: &mut dyn FnMut(Duration) -> bool,
    report: &mut dyn FnMut(&E),
    permanent: fn(&E) -> bool,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut backoff = Duration::from_secs(1);
    let mut reported: Vec<E> = Vec::new();
    loop {
        match op() {
            Ok(value) => return Ok(value),
            Err(e) => {
                if !reported.contains(&e) {
                    report(&e);
                    reported.push(e.clone());
                }
                if permanent(&e) || Instant::now() + backoff > deadline || !pause(backoff) {
                    return Err(e);
                }
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    }
}
