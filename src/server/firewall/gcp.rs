//! Google Cloud firewall rules through gcloud: the knock range opened once, and a rule per
//! knocker, tagged for this server.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{
    cloud_rule_name, door_rule_name, grant_description, grant_description_prefix, Backend,
    DoorCommands, FirewallError, FromSettings, HostDrop, ProtectedPort, SettingsSource,
};
use crate::core::ports::knock_range_text;
use crate::server::cloud::gcp::FirewallRules;
use crate::server::cloud::GrantStore;
use crate::server::cloud::KNOCK_RANGE_RULE;

/// The GCP VPC network the per-client firewall rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpTarget {
    pub network: String,
}

/// The network tag that gives an instance this server's rules.
fn tag(target: &ProtectedPort) -> String {
    format!("knock-totp-{}", target.cloud_id())
}

impl FromSettings for GcpTarget {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error> {
        source.gcp()
    }
}

impl Backend for GcpTarget {
    fn settings_key(&self) -> &'static str {
        "network"
    }

    fn validate(&self) -> Result<(), FirewallError> {
        validate_cloud_name("network", &self.network)
    }

    /// A door creates a rule named after the server and the knocker's address, described
    /// with its expiry, and deletes that rule by name: an admin's rules are never touched.
    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let port = target.port;
        let create = |suffix: &str, bits: u8| {
            format!(
                "gcloud compute firewall-rules create {} --network={} --direction=INGRESS \
                 --action=ALLOW --rules=tcp:{port} --source-ranges=%IP%/{bits} \
                 --target-tags={} --description=\"{}\" --quiet",
                door_rule_name(target, suffix),
                self.network,
                tag(target),
                grant_description(target),
            )
        };
        let delete = |suffix: &str| {
            format!(
                "gcloud compute firewall-rules delete {} --quiet",
                door_rule_name(target, suffix)
            )
        };
        DoorCommands {
            start: create("", 32),
            stop: Some(delete("")),
            start_6: Some(create("-6", 128)),
            stop_6: Some(delete("-6")),
        }
    }

    fn static_opening(&self, target: &ProtectedPort) -> Option<String> {
        let mut s = format!(
            "# Once: tag the instance (replace INSTANCE and ZONE), then let the knock range and\n\
             # port {port} reach it from anywhere, IPv4 and IPv6 (the host decides who gets in).\n\
             gcloud compute instances add-tags INSTANCE --zone=ZONE --tags={tag}\n",
            port = target.port,
            tag = tag(target),
        );
        s.push_str(&self.openings(
            target,
            "open",
            &format!("tcp:{},tcp:{}", knock_range_text(), target.port),
        ));
        Some(s)
    }

    fn setup_steps(&self, target: &ProtectedPort, host_drop: HostDrop) -> String {
        format!(
            "# 1. Tag the instance so only it gets the rules (replace INSTANCE and ZONE).\n\
             gcloud compute instances add-tags INSTANCE --zone=ZONE --tags={tag}\n\n\
             # 2. Port {port} must have no rule open to 0.0.0.0/0 or ::/0. Once: let the knock\n\
             #    range {range} reach knockd from anywhere, IPv4 and IPv6 (never rotated: a\n\
             #    firewall that opens only the current door ports shows a scanner the doors).\n\
             {openings}\n\
             {host}\n\
             # knockd's doors create a rule for the knocker's address only ({address_rule}),\n\
             # described \"{prefix}<expiry>\", and delete it after open_seconds.\n",
            tag = tag(target),
            port = target.port,
            range = knock_range_text(),
            openings = self.openings(
                target,
                KNOCK_RANGE_RULE,
                &format!("tcp:{}", knock_range_text())
            ),
            host = host_drop("3. "),
            address_rule = cloud_rule_name(target, "ADDRESS"),
            prefix = grant_description_prefix(&target.server),
        )
    }

    fn grant_store(&self, target: &ProtectedPort) -> Option<Box<dyn GrantStore>> {
        Some(Box::new(FirewallRules {
            program: "gcloud".into(),
            name_prefix: cloud_rule_name(target, ""),
            server: target.server.clone(),
        }))
    }
}

impl GcpTarget {
    /// The two rules (IPv4, IPv6: a rule takes one family) named `kt-<id>-<what>[-6]` that
    /// let `rules` in from anywhere to this server's tag.
    fn openings(&self, target: &ProtectedPort, what: &str, rules: &str) -> String {
        let mut s = String::new();
        for (suffix, ranges) in [("", "0.0.0.0/0"), ("-6", "::/0")] {
            s.push_str(&format!(
                "gcloud compute firewall-rules create {name}{suffix} --network={network} \\\n\
                 \x20 --direction=INGRESS --action=ALLOW --rules={rules} \\\n\
                 \x20 --source-ranges={ranges} --target-tags={tag} --description={desc}\n",
                name = cloud_rule_name(target, what),
                network = self.network,
                tag = tag(target),
                desc = target.description(),
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::firewall::sample_target;

    /// GCP's rule names and network tags: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63.
    fn valid_gcp_name(name: &str) -> bool {
        let b = name.as_bytes();
        (1..=63).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    }

    /// The rule name the shell makes for `ip`, as `tr .: --` does.
    fn door_rule_for(target: &ProtectedPort, ip: &str, suffix: &str) -> String {
        door_rule_name(target, suffix)
            .replace("$(echo %IP% | tr .: --)", &ip.replace(['.', ':'], "-"))
    }

    #[test]
    fn servers_whose_names_share_sixteen_characters_get_their_own_rules_and_tags() {
        // Cut to 16 characters both were "production-web-0": a knock on one opened the other.
        let one = sample_target("production-web-01");
        let two = sample_target("production-web-02");
        assert_ne!(tag(&one), tag(&two));
        assert_ne!(door_rule_name(&one, ""), door_rule_name(&two, ""));
        let one_cmds = GcpTarget {
            network: "prod".into(),
        }
        .door_commands(&one);
        let two_cmds = GcpTarget {
            network: "prod".into(),
        }
        .door_commands(&two);
        assert!(one_cmds
            .start
            .contains(&format!("--target-tags={} ", tag(&one))));
        assert!(!one_cmds.start.contains(&tag(&two)) && !two_cmds.start.contains(&tag(&one)));
        // Names that fold to the same text stay apart too.
        assert_ne!(tag(&sample_target("Web_1")), tag(&sample_target("web-1")));
        // Stable: the id is part of rules that already exist in projects.
        assert_eq!(one.cloud_id(), one.cloud_id());
        assert!(
            one.cloud_id().starts_with("production-"),
            "{}",
            one.cloud_id()
        );
    }

    #[test]
    fn names_stay_within_gcp_limits_for_any_server_and_address() {
        let longest_v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        for name in [
            "a",
            "9lives",
            "_",
            "web.example.com",
            "production-web-01",
            &"x".repeat(63),
            &format!("{}-", "a".repeat(10)),
        ] {
            let t = sample_target(name);
            assert!(valid_gcp_name(&tag(&t)), "{}", tag(&t));
            for (ip, suffix) in [("203.0.113.255", ""), (longest_v6, "-6"), ("::1", "-6")] {
                let rule = door_rule_for(&t, ip, suffix);
                assert!(valid_gcp_name(&rule), "{rule} ({} chars)", rule.len());
            }
            for what in ["knocks", "knocks-6", "open", "open-6"] {
                let rule = format!("kt-{}-{what}", t.cloud_id());
                assert!(valid_gcp_name(&rule), "{rule}");
            }
        }
    }
}
