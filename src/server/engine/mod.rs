//! Knock engines: what turns the doors of a window into something that opens the port.

pub mod knockd;
pub mod nftables;

use std::time::Duration;

use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;
use crate::server::config::{EngineKind, ServerConfig};
use crate::server::doors::ActiveDoor;
use crate::server::rotation::StopSignal;

use self::knockd::{knockd_for, KnockdEngine};
use self::nftables::NftEngine;

/// A knock engine, driven by the rotation loop.
pub trait Engine {
    /// Checks what must hold before anything changes (in a dry run, only reports).
    fn preflight(&mut self, dry_run: bool) -> anyhow::Result<()>;

    /// Puts `doors`, the doors of `window`, in place. `first` is the daemon's first rotation,
    /// which reconciles with what an earlier run left.
    fn apply(
        &mut self,
        window: Window,
        doors: &[ActiveDoor],
        stop: &mut StopSignal,
        first: bool,
    ) -> anyhow::Result<()>;

    /// Prints what `apply` would do, changing nothing.
    fn dry_run(&mut self, window: Window, doors: &[ActiveDoor]) -> anyhow::Result<()>;

    /// Between rotations (every few seconds): checks that what `apply` put in place is still
    /// there and restores it if someone removed it.
    fn repair(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// How long before a window starts its doors go in place (zero: at the boundary).
    fn rotation_lead(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether `error` from `apply` must end the daemon (otherwise it retries next window).
    fn is_fatal(&self, _error: &anyhow::Error) -> bool {
        false
    }

    /// Leaves the firewall safe when the daemon stops or fails.
    fn shut_down(&mut self) -> anyhow::Result<()>;

    /// What `shut_down` does, for the log line of a stop signal.
    fn stopping(&self) -> &'static str;
}

/// The engine a server's config asks for, ready for its preflight.
pub fn build(config: ServerConfig, log: Log) -> anyhow::Result<Box<dyn Engine>> {
    match config.engine {
        EngineKind::Nftables => Ok(Box::new(NftEngine::new(&config, log))),
        EngineKind::Knockd => build_knockd(config, log),
    }
}

fn build_knockd(config: ServerConfig, log: Log) -> anyhow::Result<Box<dyn Engine>> {
    let knockd = knockd_for(&config)?;
    let firewall = config
        .firewall_backend()
        .map_err(|(_, problem)| UserError::usage(problem))?;
    let grants = firewall.backend().grant_store(&config.protected_port());
    Ok(Box::new(KnockdEngine::new(config, knockd, grants, log)))
}
