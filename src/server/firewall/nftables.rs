//! nftables: a table of the server's own whose address sets time out by themselves (no stop
//! command).

use super::{Backend, DoorCommands, FromSettings, HostDrop, ProtectedPort, SettingsSource};
use crate::server::paths::table_name;

/// An nftables set whose elements time out by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nftables;

impl FromSettings for Nftables {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error> {
        source.none()?;
        Ok(Self)
    }
}

impl Backend for Nftables {
    fn on_host(&self) -> bool {
        true
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let table = table_name(&target.server);
        let add = |set: &str| {
            format!(
                "nft add element inet {table} {set} {{ %IP% timeout {}s }}",
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

    fn setup_steps(&self, target: &ProtectedPort, _host_drop: HostDrop) -> String {
        let mut s = String::new();
        s.push_str(
            "# Creates (or recreates) only this server's table; other tables are untouched.\n\
                 # If another table drops the port too, allow @allowed4/@allowed6 there as well.\n\
                 nft -f - <<'EOF'\n",
        );
        s.push_str(&nft_ruleset(&target.server, target.port));
        s.push_str("EOF\n");
        s
    }
}

/// Server `server`'s nftables table, whose sets hold the addresses that knocked; elements time
/// out by themselves (`flags timeout`), so doors need no stop command. Each server has its
/// own: a knock on one never opens another's port, and setting one up never removes another.
pub fn nft_ruleset(server: &str, port: u16) -> String {
    let table = table_name(server);
    format!(
        "# `add` then `delete` makes re-running this replace the table instead of doubling it.\n\
         add table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
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
