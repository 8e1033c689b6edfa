//! iptables/ip6tables: a chain of the server's own at the top of INPUT, and ipsets whose
//! elements (the knockers' addresses) time out by themselves.

use crate::core::names::name_hash;

use super::{Backend, DoorCommands, FromSettings, HostDrop, ProtectedPort, SettingsSource};

/// iptables chain names hold at most 28 characters, ipset names 31.
const CHAIN_NAME_MAX: usize = 28;
/// Longest server name used whole in the names below (`knock-totp-NAME-v4` must fit in 31).
const NAME_MAX: usize = CHAIN_NAME_MAX - "knock-totp-".len();

/// iptables/ip6tables rules in a chain of the server's own; each door adds the knocker to an
/// ipset with a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iptables;

/// The names one server's rules use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesNames {
    /// The chain jumped to from the top of INPUT (the same name for iptables and ip6tables).
    pub chain: String,
    /// The ipsets of the knockers' addresses: IPv4, IPv6.
    pub set4: String,
    pub set6: String,
}

/// The chain and ipset names of server `name`: `knock-totp-NAME`, `knock-totp-NAME-v4`,
/// `knock-totp-NAME-v6`. A name too long for iptables keeps its first characters and gains a
/// hash of the whole name, so two long names that share a beginning never share rules.
pub fn iptables_names(name: &str) -> IptablesNames {
    let base = if name.len() <= NAME_MAX {
        format!("knock-totp-{name}")
    } else {
        let head: String = name.chars().take(NAME_MAX - 7).collect();
        format!("knock-totp-{head}-{}", name_hash(name))
    };
    IptablesNames {
        set4: format!("{base}-v4"),
        set6: format!("{base}-v6"),
        chain: base,
    }
}

impl FromSettings for Iptables {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error> {
        source.none()?;
        Ok(Self)
    }
}

impl Backend for Iptables {
    fn on_host(&self) -> bool {
        true
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let names = iptables_names(&target.server);
        let add = |set: &str| {
            format!(
                "ipset -exist add {set} %IP% timeout {}",
                target.open_seconds
            )
        };
        DoorCommands {
            start: add(&names.set4),
            stop: None,
            start_6: Some(add(&names.set6)),
            stop_6: None,
        }
    }

    fn setup_steps(&self, target: &ProtectedPort, _host_drop: HostDrop) -> String {
        let port = target.port;
        let open = target.open_seconds;
        let IptablesNames { chain, set4, set6 } = iptables_names(&target.server);
        let mut s = format!(
            "# Chain {chain}, jumped to from the top of INPUT, decides port {port} before\n\
             # any other rule: open connections and the addresses in ipset {set4}\n\
             # (or {set6}) pass, everyone else is dropped, whatever ACCEPT for the port\n\
             # comes later (ufw, a distro's default rule). A door adds its knocker to the ipset\n\
             # for {open} s; the element times out by itself, even if knockd is killed.\n\
             # Rerunning changes nothing. Nothing here survives a reboot: run it at boot, before\n\
             # sshd starts (a oneshot unit, or ipset-persistent and netfilter-persistent save).\n\
             command -v ipset >/dev/null || {{ echo 'firewall-setup.sh: ipset is missing (apt-get install ipset)' >&2; exit 1; }}\n\
             if command -v ufw >/dev/null && ufw status 2>/dev/null | grep -q '^Status: active'; then\n\
             \x20 echo 'ufw is active: its rules stay and come after chain {chain}, so an ufw rule that'\n\
             \x20 echo 'allows port {port} no longer opens it to everyone. ufw reload or ufw enable may drop'\n\
             \x20 echo 'the jump to {chain}: run this script again after either.'\n\
             fi\n\
             if command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1; then\n\
             \x20 echo 'firewalld is running: its rules stay. It must let port {port} in (firewall-cmd'\n\
             \x20 echo '--add-service=ssh or --add-port={port}/tcp, --permanent too); chain {chain} then closes'\n\
             \x20 echo 'it to everyone who did not knock. Run this script again after firewall-cmd --reload.'\n\
             fi\n\n"
        );
        for (bin, set, family) in [("iptables", &set4, "inet"), ("ip6tables", &set6, "inet6")] {
            s.push_str(&format!(
                "# {bin}\n\
                 ipset -exist create {set} hash:ip family {family} timeout {open} 2>/dev/null \\\n\
                 \x20 || ipset -q list -n {set} >/dev/null\n\
                 {bin} -w -N {chain} 2>/dev/null || true\n\
                 {bin} -w -C {chain} -p tcp --dport {port} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null \\\n\
                 \x20 || {bin} -w -A {chain} -p tcp --dport {port} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
                 {bin} -w -C {chain} -p tcp --dport {port} -m set --match-set {set} src -j ACCEPT 2>/dev/null \\\n\
                 \x20 || {bin} -w -A {chain} -p tcp --dport {port} -m set --match-set {set} src -j ACCEPT\n\
                 {bin} -w -C {chain} -p tcp --dport {port} -j DROP 2>/dev/null \\\n\
                 \x20 || {bin} -w -A {chain} -p tcp --dport {port} -j DROP\n\
                 {bin} -w -S INPUT 1 | grep -q -- '-j {chain}$' \\\n\
                 \x20 || {bin} -w -I INPUT 1 -p tcp --dport {port} -j {chain}\n\n"
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_iptables_and_ipset_and_stay_apart() {
        let short = iptables_names("web-01.example");
        assert_eq!(short.chain, "knock-totp-web-01.example");
        assert_eq!(short.set4, "knock-totp-web-01.example-v4");
        let a = iptables_names("production-web-01");
        let b = iptables_names("production-web-02");
        assert_ne!(a.chain, b.chain);
        assert_ne!(a.set6, b.set6);
        for names in [&short, &a, &b, &iptables_names(&"x".repeat(63))] {
            assert!(names.chain.len() <= CHAIN_NAME_MAX, "{names:?}");
            assert!(
                names.set4.len() <= 31 && names.set6.len() <= 31,
                "{names:?}"
            );
        }
        assert!(a.chain.starts_with("knock-totp-production"), "{a:?}");
    }
}
