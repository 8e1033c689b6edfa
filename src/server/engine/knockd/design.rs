//! The knockd engine before it runs: its daemon, unit and one-time script.

use crate::error::UserError;
use crate::log::Log;
use crate::server::config::ServerConfig;
use crate::server::engine::{AtBoot, Design, Engine, UnitRole};
use crate::server::firewall::{Firewall, FirewallKind};

use super::host_drop::host_knock_range_drop;
use super::{knockd_for, KnockdEngine};

/// knockd with one door per window (the original design).
pub struct KnockdDesign;

impl Design for KnockdDesign {
    /// knockd, and on a cloud the firewall whose door grants the daemon sweeps.
    fn build(
        &self,
        config: ServerConfig,
        users: usize,
        log: Log,
    ) -> anyhow::Result<Box<dyn Engine>> {
        if users > 0 {
            return Err(UserError::usage(format!(
                "server {}: users need the nftables engine (knockd knows one sequence per \
                 door, not whose it is)",
                config.name
            ))
            .with_hint(format!(
                "set engine = \"nftables\" in the config, or remove the users directory {}.d",
                config.name
            ))
            .into());
        }
        let knockd = knockd_for(&config)?;
        let firewall = config
            .firewall_backend()
            .map_err(|(_, problem)| UserError::usage(problem))?;
        let grants = firewall.backend().grant_store(&config.protected_port());
        Ok(Box::new(KnockdEngine::new(config, knockd, grants, log)))
    }

    fn default_firewall(&self) -> FirewallKind {
        FirewallKind::Iptables
    }

    /// The daemon only rewrites knockd.conf (owned by root, as the daemon runs) and signals
    /// knockd, which runs in its own unit and runs the firewall commands itself: same user, so
    /// no capability. It reads knockd's /proc/PID, which ProtectProc=invisible would hide
    /// (knockd holds more capabilities).
    fn unit_role(&self, _config: &ServerConfig) -> UnitRole {
        UnitRole {
            what: "rewrites knockd's doors",
            after: "knockd.service".to_owned(),
            sandbox: "# knockd runs the firewall commands; the daemon only signals it (same user).\n\
                      CapabilityBoundingSet=\n\
                      RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
                      # No ProtectProc=invisible: it would hide knockd's /proc/PID from the daemon.\n",
        }
    }

    fn at_boot(&self, firewall: &Firewall) -> AtBoot {
        if firewall.backend().on_host() {
            AtBoot::FirewallScript
        } else {
            AtBoot::KnockRangeDrop
        }
    }

    fn setup_script(&self, config: &ServerConfig, firewall: &Firewall) -> String {
        let target = config.protected_port();
        firewall.setup_script(&target, &|heading| host_knock_range_drop(&target, heading))
    }

    /// On a cloud, its doors' grants and the daemon's sweep go through the cloud's CLI.
    fn calls_the_cloud(&self) -> bool {
        true
    }
}
