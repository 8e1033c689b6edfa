//! The nftables engine before it runs: its daemon, unit and one-time script.

use crate::log::Log;
use crate::server::config::ServerConfig;
use crate::server::engine::{AtBoot, Design, Engine, UnitRole};
use crate::server::firewall::{Firewall, FirewallKind};
use crate::server::paths;

use super::NftEngine;

/// Every door in the kernel, in one table per server.
pub struct NftDesign;

impl Design for NftDesign {
    fn build(
        &self,
        config: ServerConfig,
        users: usize,
        log: Log,
    ) -> anyhow::Result<Box<dyn Engine>> {
        Ok(Box::new(NftEngine::new(&config, users, log)))
    }

    fn default_firewall(&self) -> FirewallKind {
        FirewallKind::Nftables
    }

    /// The daemon runs nft: CAP_NET_ADMIN over netlink, and no other process's /proc.
    fn unit_role(&self, config: &ServerConfig) -> UnitRole {
        UnitRole {
            what: "replaces the doors in the kernel",
            after: paths::base_unit_name(&config.name),
            sandbox: "CapabilityBoundingSet=CAP_NET_ADMIN\n\
                      RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
                      ProtectProc=invisible\n\
                      ProcSubset=pid\n",
        }
    }

    fn at_boot(&self, _firewall: &Firewall) -> AtBoot {
        AtBoot::BaseTable
    }

    /// Load the base table now (the boot unit loads it later), then the cloud firewall's
    /// static opening, if any.
    fn setup_script(&self, config: &ServerConfig, firewall: &Firewall) -> String {
        let mut s = format!(
            "#!/bin/sh\n\
             # One-time setup for knock-totp server {name} (nftables engine), protected port {port}.\n\
             # Review before running; keep a console open. Only knock-totp's own table is touched.\n\
             set -eu\n\n\
             # Close port {port} now: everyone but a knocker is dropped, whatever other rules accept.\n\
             nft -f {base}\n",
            name = config.name,
            port = config.port,
            base = paths::base_ruleset_path(&config.name).display()
        );
        if let Some(opening) = firewall.backend().static_opening(&config.protected_port()) {
            s.push('\n');
            s.push_str(&opening);
        }
        s
    }

    /// The cloud firewall is opened once by the admin; the daemon never calls the cloud.
    fn calls_the_cloud(&self) -> bool {
        false
    }
}
