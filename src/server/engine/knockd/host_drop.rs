//! The knockd engine's host part behind a cloud firewall: the cloud lets the whole knock range
//! through, so the host drops it (knockd sees the knocks before any firewall does).

use crate::core::ports::knock_range_text;
use crate::server::firewall::ProtectedPort;
use crate::server::paths::{base_ruleset_path, table_name};

/// The host part of a knockd engine on a cloud firewall, for the one-time script, its comment
/// opening with `heading` (e.g. `4. `): the cloud firewall lets the whole knock range
/// through, and knockd captures knocks before any firewall does, so the host drops the range
/// (`knock_range_drop_ruleset`, which the base unit loads again at every boot) and nothing
/// listening there is exposed.
pub fn host_knock_range_drop(target: &ProtectedPort, heading: &str) -> String {
    let range = knock_range_text();
    let indent = " ".repeat(heading.len());
    format!(
        "# {heading}On this host: drop the knock range, so nothing listening on {range} is\n\
         # {indent}exposed to the world. knockd captures packets before any firewall: it still\n\
         # {indent}sees the knocks. A public service on a port in the range: add\n\
         # {indent}`tcp dport PORT accept` before the drop in {ruleset}.\n\
         # {indent}knock-totp-{name}-base.service loads it again at every boot.\n\
         nft -f {ruleset}\n",
        name = target.server,
        ruleset = base_ruleset_path(&target.server).display(),
    )
}

/// The knockd engine's host table on a cloud firewall: the knock range dropped but for open
/// connections (re-running it replaces the table instead of doubling it).
pub fn knock_range_drop_ruleset(server: &str) -> String {
    let table = table_name(server);
    let range = knock_range_text();
    format!(
        "table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\ttcp dport {range} ct state established,related accept\n\
         \t\ttcp dport {range} drop\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::firewall::tests::assert_no_flush;
    use crate::server::firewall::{sample_target, AwsTarget, Firewall};

    #[test]
    fn a_cloud_script_drops_the_knock_range_on_the_host() {
        let target = sample_target("Web_1");
        let fw = Firewall::Aws(AwsTarget {
            security_group: "sg-0123abcd".into(),
            region: None,
            profile: None,
        });
        let setup = fw.setup_script(&target, &|heading| host_knock_range_drop(&target, heading));
        assert!(
            setup.contains("# 4. On this host: drop the knock range"),
            "{setup}"
        );
        assert!(
            setup.contains("\nnft -f /etc/knock-totp/Web_1.nft\n"),
            "{setup}"
        );
        assert_no_flush(&setup);
        let ruleset = knock_range_drop_ruleset("Web_1");
        assert!(ruleset.contains("\t\ttcp dport 1000-9999 drop\n"));
        assert_no_flush(&ruleset);
    }
}
