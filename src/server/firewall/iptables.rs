//! iptables/ip6tables: a rule inserted and deleted per knocker.

use super::{Backend, DoorCommands, FirewallKind, ProtectedPort};

/// iptables/ip6tables rules inserted and deleted per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iptables;

impl Backend for Iptables {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Iptables
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let port = target.port;
        let spec = format!(
            "INPUT -s %IP% -p tcp --dport {port} -m comment --comment {} -j ACCEPT",
            target.description()
        );
        DoorCommands {
            start: format!("iptables -w -I {}", spec),
            stop: Some(format!("iptables -w -D {}", spec)),
            start_6: Some(format!("ip6tables -w -I {}", spec)),
            stop_6: Some(format!("ip6tables -w -D {}", spec)),
        }
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let port = target.port;
        let mut s = String::new();
        for bin in ["iptables", "ip6tables"] {
            s.push_str(&format!(
                    "# {bin}: keep open connections alive after the door closes, then close port {port}\n\
                     # to everyone else (appended after your rules; each door inserts an ACCEPT\n\
                     # for its knocker at the top of INPUT and deletes exactly that rule).\n\
                     {bin} -w -C INPUT -p tcp --dport {port} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null \\\n\
                     \x20 || {bin} -w -A INPUT -p tcp --dport {port} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
                     {bin} -w -C INPUT -p tcp --dport {port} -j DROP 2>/dev/null \\\n\
                     \x20 || {bin} -w -A INPUT -p tcp --dport {port} -j DROP\n\n"
                ));
        }
        s
    }
}
