//! Knock engines: what turns the doors of a window into something that opens the port.
//!
//! An engine is a folder with an [`Engine`] (the running daemon's side) and a [`Design`] (what
//! it builds, and what `setup` and the units need of it); a new one also takes its
//! [`EngineKind`] and its arm in [`design`].

pub mod knockd;
pub mod nftables;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;
use crate::server::config::{EngineKind, ServerConfig};
use crate::server::doors::{ActiveDoor, DoorUser};
use crate::server::firewall::{Firewall, FirewallKind};
use crate::server::signals::StopSignal;

use self::knockd::design::KnockdDesign;
use self::nftables::design::NftDesign;

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

    /// The daemon's first rotation when every door of `window` was in the firewall before
    /// this start (the clock is behind the windows served, or a restart within the window):
    /// reconciles like a first `apply`, removes any door an earlier run left, and leaves the
    /// protected port closed with no door at all. Both engines fail closed with no door: the
    /// nftables table's `doors` chain is then only `goto wrong` (the port's drop is in `input`),
    /// and knockd gets a knockd.conf without a sequence (the firewall script keeps the port
    /// closed).
    fn start_without_doors(&mut self, window: Window, stop: &mut StopSignal) -> anyhow::Result<()> {
        self.apply(window, &[], stop, true)
    }

    /// Takes away the live grants of `users`, whose doors the last `apply` already left out
    /// (removed, disabled or expired users); every other user's grants stay.
    fn revoke(&mut self, users: &[Arc<DoorUser>]) -> anyhow::Result<()> {
        let _ = users;
        Ok(())
    }

    /// Prints what `apply` would do, changing nothing.
    fn dry_run(&mut self, window: Window, doors: &[ActiveDoor]) -> anyhow::Result<()>;

    /// Between rotations (every few seconds): checks that what `apply` put in place is still
    /// there and restores it if someone removed it. Without `restore` (a rotation follows at
    /// once and the last restore is recent) only the cheap checks run.
    fn repair(&mut self, _restore: bool) -> anyhow::Result<()> {
        Ok(())
    }

    /// From now on, writes the engine's metrics to `path` (`server --metrics-file`), a
    /// Prometheus textfile replaced atomically; an engine that keeps no counters refuses.
    fn write_metrics_to(&mut self, path: &Path) -> anyhow::Result<()> {
        Err(UserError::usage(format!(
            "--metrics-file {}: this engine keeps no counters to write",
            path.display()
        ))
        .into())
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

/// What an engine is before it runs: the daemon it builds, and what `setup` writes for it.
/// Each engine's folder implements it; [`design`] is the one place an engine is chosen.
pub trait Design {
    /// The daemon for `config` with `users` users (0: the single-secret server), ready for
    /// its preflight.
    fn build(
        &self,
        config: ServerConfig,
        users: usize,
        log: Log,
    ) -> anyhow::Result<Box<dyn Engine>>;

    /// The firewall a door uses when `setup` names none.
    fn default_firewall(&self) -> FirewallKind;

    /// How the daemon's systemd unit runs it.
    fn unit_role(&self, config: &ServerConfig) -> UnitRole;

    /// What the base unit puts back at every boot.
    fn at_boot(&self, firewall: &Firewall) -> AtBoot;

    /// The one-time firewall script `setup` writes.
    fn setup_script(&self, config: &ServerConfig, firewall: &Firewall) -> String;

    /// Whether the daemon itself calls the cloud's API (and needs credentials for it).
    fn calls_the_cloud(&self) -> bool;
}

/// How the daemon's unit runs an engine: what the daemon does there, the units it starts
/// after, and the sandbox lines that fit what it drives.
pub struct UnitRole {
    pub what: &'static str,
    pub after: String,
    pub sandbox: &'static str,
}

/// What the base unit puts back at every boot (a host's firewall rules do not survive one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtBoot {
    /// The nftables engine's base table, NAME.nft: the port closed, no doors.
    BaseTable,
    /// The knockd engine on a host firewall: its firewall script, run again (it changes
    /// nothing when run again).
    FirewallScript,
    /// The knockd engine behind a cloud firewall: NAME.nft, the host's drop of the knock range
    /// the cloud firewall opens.
    KnockRangeDrop,
}

/// The design of engine `kind`: the one place an engine is chosen.
pub fn design(kind: EngineKind) -> &'static dyn Design {
    match kind {
        EngineKind::Nftables => &NftDesign,
        EngineKind::Knockd => &KnockdDesign,
    }
}

/// The engine a server's config asks for, ready for its preflight.
pub fn build(config: ServerConfig, users: usize, log: Log) -> anyhow::Result<Box<dyn Engine>> {
    design(config.engine).build(config, users, log)
}
