//! nftables: a table whose address sets time out by themselves (no stop command).

use super::{Backend, DoorCommands, FromSettings, ProtectedPort, SettingsSource};

/// Name of the nftables table that holds the knockers' address sets.
pub const NFT_TABLE: &str = "knock_totp";

/// An nftables set whose elements time out by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nftables;

impl FromSettings for Nftables {
    fn from_settings<S: SettingsSource + ?Sized>(_source: &S) -> Result<Self, S::Error> {
        Ok(Self)
    }
}

impl Backend for Nftables {
    fn on_host(&self) -> bool {
        true
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let add = |set: &str| {
            format!(
                "nft add element inet {NFT_TABLE} {set} {{ %IP% timeout {}s }}",
                target.open_seconds
            )
        };
        DoorCommands {
            start: add("allowed4"),
            stop: None,
            start_6: Some(add("allowed6")),
            stop_6: None,
        }
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let port = target.port;
        let mut s = String::new();
        s.push_str(
            "# Creates (or recreates) only knock-totp's own table; other tables are untouched.\n\
                 # If another table drops the port too, allow @allowed4/@allowed6 there as well.\n\
                 nft -f - <<'EOF'\n",
        );
        s.push_str(&nft_ruleset(port));
        s.push_str("EOF\n");
        s
    }
}

/// The nftables table whose sets hold the addresses that knocked; elements time out by
/// themselves (`flags timeout`), so doors need no stop command.
pub fn nft_ruleset(port: u16) -> String {
    format!(
        "# `add` then `delete` makes re-running this replace the table instead of doubling it.\n\
         add table inet {NFT_TABLE}\n\
         delete table inet {NFT_TABLE}\n\
         table inet {NFT_TABLE} {{\n\
         \tset allowed4 {{\n\
         \t\ttype ipv4_addr\n\
         \t\tflags timeout\n\
         \t}}\n\
         \tset allowed6 {{\n\
         \t\ttype ipv6_addr\n\
         \t\tflags timeout\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\ttcp dport {port} ct state established,related accept\n\
         \t\ttcp dport {port} ip saddr @allowed4 accept\n\
         \t\ttcp dport {port} ip6 saddr @allowed6 accept\n\
         \t\ttcp dport {port} drop\n\
         \t}}\n\
         }}\n"
    )
}
