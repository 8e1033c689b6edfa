//! The daemon's signals: SIGTERM and SIGINT stop it, SIGHUP makes it read its users again.

use std::sync::mpsc;
use std::time::Duration;

use crate::error::UserError;

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
        match self.rx.recv_timeout(duration) {
            Ok(SIGHUP) => {
                // Back at once: the loop reads the users again.
                self.hangups += 1;
                true
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
