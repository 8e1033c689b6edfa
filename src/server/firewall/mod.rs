//! Firewall backends: the commands of knockd doors and of the one-time admin setup (pure
//! text), and for a cloud, where the knockd engine sweeps the grants doors left.
//!
//! Every door opens the protected port for the knocking address (`%IP%`) only: on a host by
//! adding it to an ipset or nft set whose element times out by itself, in a cloud by a rule it
//! deletes again. Nothing here ever flushes a chain, table or ruleset.
//!
//! A new backend is a file with a type that implements [`Backend`] and [`FromSettings`], and
//! its line in `firewall_backends!`; a backend with settings of its own (a cloud's) also adds
//! a [`SettingsSource`] method, which the server config (its table) and `setup` (its flags)
//! answer.

use serde::{Deserialize, Serialize};

use crate::core::names::name_hash;
use crate::server::cloud::GrantStore;
pub use crate::server::cloud::{grant_description_prefix, rule_description};

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod iptables;
pub mod nftables;

pub use self::aws::{aws_iam_policy, validate_security_group, AwsTarget};
pub use self::azure::AzureTarget;
pub use self::gcp::GcpTarget;
pub use self::iptables::Iptables;
pub use self::nftables::Nftables;

/// Declares the firewall backends, one line each: the variant, the type that implements
/// [`Backend`] and [`FromSettings`], and the name the config and `setup --firewall` use,
/// after a one-line summary for `--help`. Everything that lists the backends comes from here.
macro_rules! firewall_backends {
    ($($(#[doc = $summary:literal])+ $variant:ident($backend:ty) = $name:literal,)+) => {
        /// Which firewall backend opens a door: the server config's `firewall` key and
        /// `setup --firewall`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum FirewallKind {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl FirewallKind {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// What it is, in one line.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($summary),+).trim(),)+
                }
            }
        }

        /// A firewall backend with what its commands need to name.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Firewall {
            $($variant($backend),)+
        }

        impl Firewall {
            /// The backend: the one place a firewall is chosen.
            pub fn backend(&self) -> &dyn Backend {
                match self {
                    $(Self::$variant(backend) => backend,)+
                }
            }

            pub fn kind(&self) -> FirewallKind {
                match self {
                    $(Self::$variant(_) => FirewallKind::$variant,)+
                }
            }

            /// The backend `kind` with its settings from `source`.
            pub fn from_settings<S: SettingsSource + ?Sized>(
                kind: FirewallKind,
                source: &S,
            ) -> Result<Self, S::Error> {
                Ok(match kind {
                    $(FirewallKind::$variant => Self::$variant(<$backend>::from_settings(source)?),)+
                })
            }
        }
    };
}

firewall_backends! {
    /// iptables/ip6tables rules inserted and deleted per client
    Iptables(Iptables) = "iptables",
    /// an nftables set whose elements time out by themselves
    Nftables(Nftables) = "nftables",
    /// AWS security group rules through the aws CLI
    Aws(AwsTarget) = "aws",
    /// Google Cloud firewall rules through gcloud
    Gcp(GcpTarget) = "gcp",
    /// Azure network security group rules through az
    Azure(AzureTarget) = "azure",
}

/// Where backends' settings come from: the server config's tables, or `setup`'s flags. A
/// backend with settings of its own adds its method here.
pub trait SettingsSource {
    type Error;
    /// A backend without settings of its own asks for none (setup refuses cloud flags then).
    fn none(&self) -> Result<(), Self::Error>;
    fn aws(&self) -> Result<AwsTarget, Self::Error>;
    fn gcp(&self) -> Result<GcpTarget, Self::Error>;
    fn azure(&self) -> Result<AzureTarget, Self::Error>;
}

/// A backend made from its settings (a host backend has none).
pub trait FromSettings: Sized {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error>;
}

/// Shell text for the time `seconds` from now in RFC 3339, UTC. It holds no `%`: knockd
/// treats a command's text as a format string for `%IP%`.
fn shell_expiry(seconds: u64) -> String {
    format!("$(date -u -d '{seconds} sec' -Iseconds)")
}

/// A door grant's description as shell text for inside double quotes: `knock-totp:NAME
/// until <expiry>`, the expiry open_seconds after the door runs.
fn grant_description(target: &ProtectedPort) -> String {
    format!(
        "{}{}",
        grant_description_prefix(&target.server),
        shell_expiry(target.open_seconds)
    )
}

/// The host's part of the knockd engine behind a cloud firewall, for the one-time script: the
/// text for the heading it is called with (e.g. `4. `). The knockd engine writes it
/// (`engine::knockd::host_drop`); a host firewall's script has no such part.
pub type HostDrop<'a> = &'a dyn Fn(&str) -> String;

/// A file of permissions for a cloud: its name under `--out`, what it is, its text.
pub struct PolicyFile {
    pub file_name: &'static str,
    pub title: &'static str,
    pub text: String,
}

/// What a door runs for an IPv4 knocker and an IPv6 knocker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorCommands {
    pub start: String,
    pub stop: Option<String>,
    pub start_6: Option<String>,
    pub stop_6: Option<String>,
}

/// The server a door protects: the values every backend's commands are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedPort {
    /// Server name (a valid host name): rule descriptions say `knock-totp:NAME`.
    pub server: String,
    pub port: u16,
    /// How long the port stays open for a knocker.
    pub open_seconds: u64,
}

impl ProtectedPort {
    pub fn description(&self) -> String {
        rule_description(&self.server)
    }

    /// The server's name as GCP and Azure rule names and tags take it: at most
    /// `CLOUD_SLUG_LEN` characters of the name folded to lowercase letters, digits and `-`,
    /// then `-` and 6 hex digits of a SHA-256 of the full name. Names that are cut or folded
    /// to the same text (`production-web-01` and `-02`, `Web_1` and `web-1`) stay apart, so
    /// a knock on one server never opens another.
    pub fn cloud_id(&self) -> String {
        let mut slug: String = self
            .server
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(CLOUD_SLUG_LEN)
            .collect();
        slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() {
            slug.push('x');
        }
        format!("{slug}-{}", name_hash(&self.server))
    }
}

/// The name of a GCP or Azure rule of this server: `kt-<cloud id>-what`. Every rule of the
/// server begins with `cloud_rule_name(target, "")`, which is how the knockd engine finds
/// its grants.
pub fn cloud_rule_name(target: &ProtectedPort, what: &str) -> String {
    format!("kt-{}-{what}", target.cloud_id())
}

/// The name of the rule a door creates for `%IP%` (`suffix` `-6` for IPv6): rule names allow
/// `[a-z0-9-]` only, so the address's dots and colons become dashes. At most 63 characters
/// for any IPv6 address text up to 39 characters.
fn door_rule_name(target: &ProtectedPort, suffix: &str) -> String {
    cloud_rule_name(target, &format!("$(echo %IP% | tr .: --){suffix}"))
}

/// How much of the server's name a cloud id keeps: `kt-<id>-<IPv6 address, 39 chars>-6`
/// must fit GCP's 63-character names.
pub const CLOUD_SLUG_LEN: usize = 11;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid security group id {0:?}: expected sg- and 8 or 17 hex digits")]
    SecurityGroup(String),
    #[error("invalid {what} {value:?}: use letters, digits, '-', '_' and '.' only")]
    Name { what: &'static str, value: String },
}

/// A name that goes unquoted into a shell command: region, profile, network, group.
pub fn validate_cloud_name(what: &'static str, value: &str) -> Result<(), FirewallError> {
    let ok = !value.is_empty()
        && value.len() <= 80
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FirewallError::Name {
            what,
            value: value.chars().take(40).collect(),
        })
    }
}

/// What every firewall backend provides: the commands a door runs for a knocker, and the
/// one-time steps that prepare the firewall.
pub trait Backend {
    /// Checks the names that end up in shell commands.
    fn validate(&self) -> Result<(), FirewallError> {
        Ok(())
    }

    /// The server config key a `validate` error points at.
    fn settings_key(&self) -> &'static str {
        "firewall"
    }

    /// knockd's start/stop commands for a door of `target`.
    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands;

    /// The body of the one-time setup script (after its header); a cloud's holds `host_drop`.
    fn setup_steps(&self, target: &ProtectedPort, host_drop: HostDrop) -> String;

    /// For a cloud firewall, the one-time commands that open the whole knock range and the
    /// protected port to everyone, IPv4 and IPv6, for the nftables engine (which then decides
    /// everything on the host). `None` for host firewalls.
    fn static_opening(&self, _target: &ProtectedPort) -> Option<String> {
        None
    }

    /// For a cloud firewall, the door grants the knockd engine sweeps: a grant whose door
    /// failed to delete it goes when its expiry passes. None on a host, where grants time
    /// out by themselves.
    fn grant_store(&self, _target: &ProtectedPort) -> Option<Box<dyn GrantStore>> {
        None
    }

    /// The permissions the cloud's CLI needs for the knockd engine's doors and sweep, as a
    /// file `setup` writes (AWS: a least-privilege IAM policy for the instance role).
    fn credentials_policy(&self) -> Option<PolicyFile> {
        None
    }

    /// Whether the one-time script touches only this host, so that it can run again at every
    /// boot (a host firewall's rules do not survive a reboot).
    fn on_host(&self) -> bool {
        false
    }
}

impl Firewall {
    /// Checks the names that end up in shell commands.
    pub fn validate(&self) -> Result<(), FirewallError> {
        self.backend().validate()
    }

    /// knockd's start/stop commands for a door of `target`.
    pub fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        self.backend().door_commands(target)
    }

    /// The one-time admin commands (a POSIX shell script) that prepare the firewall.
    pub fn setup_script(&self, target: &ProtectedPort, host_drop: HostDrop) -> String {
        let port = target.port;
        let name = &target.server;
        let mut s = format!(
            "#!/bin/sh\n\
             # One-time firewall setup for knock-totp server {name} ({kind}), protected port {port}.\n\
             # Review before running; keep a console open. Existing rules are kept as they are.\n\
             set -eu\n\n",
            kind = self.kind().as_str()
        );
        s.push_str(&self.backend().setup_steps(target, host_drop));
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    }
}

/// A server `name` protecting port 22, its grants open for 30 s, for the backends' tests.
#[cfg(test)]
pub(crate) fn sample_target(name: &str) -> ProtectedPort {
    ProtectedPort {
        server: name.into(),
        port: 22,
        open_seconds: 30,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::nftables::nft_ruleset;
    use super::*;

    fn target() -> ProtectedPort {
        sample_target("Web_1")
    }

    fn all() -> Vec<Firewall> {
        vec![
            Firewall::Iptables(Iptables),
            Firewall::Nftables(Nftables),
            Firewall::Aws(AwsTarget {
                security_group: "sg-0123456789abcdef0".into(),
                region: Some("eu-west-1".into()),
                profile: Some("ops".into()),
            }),
            Firewall::Gcp(GcpTarget {
                network: "default".into(),
            }),
            Firewall::Azure(AzureTarget {
                resource_group: "rg1".into(),
                nsg: "web-nsg".into(),
            }),
        ]
    }

    /// Stands in for the knockd engine's host part (`engine::knockd::host_drop`).
    pub fn host_drop(heading: &str) -> String {
        format!("# {heading}the host's part\n")
    }

    /// Every piece of text a backend produces.
    fn texts(fw: &Firewall) -> Vec<String> {
        let c = fw.door_commands(&target());
        let mut all = vec![
            c.start,
            fw.setup_script(&target(), &host_drop),
            nft_ruleset("Web_1", 22),
        ];
        all.extend(c.stop);
        all.extend(c.start_6);
        all.extend(c.stop_6);
        if let Firewall::Aws(aws) = fw {
            all.push(aws_iam_policy(aws));
        }
        all
    }

    /// Flushing wipes every rule, not only ours (the original knocker's `iptables -F`).
    pub fn assert_no_flush(text: &str) {
        let lower = text.to_ascii_lowercase();
        assert!(!lower.contains("flush"), "flush in:\n{text}");
        for word in text.split_whitespace() {
            assert!(
                word != "-F" && word != "-X" && !word.starts_with("--flush"),
                "{word} in:\n{text}"
            );
        }
    }

    #[test]
    fn nothing_ever_flushes() {
        for fw in all() {
            for text in texts(&fw) {
                assert_no_flush(&text);
            }
        }
    }

    #[test]
    fn every_door_is_per_address_and_has_ipv6() {
        for fw in all() {
            let c = fw.door_commands(&target());
            assert!(c.start.contains("%IP%"), "{}", c.start);
            assert!(c.start_6.as_deref().unwrap().contains("%IP%"));
            for stop in [&c.stop, &c.stop_6].into_iter().flatten() {
                assert!(stop.contains("%IP%"), "{stop}");
            }
        }
    }

    #[test]
    fn no_percent_sign_but_the_ip_placeholder() {
        for fw in all() {
            let c = fw.door_commands(&target());
            for command in [Some(c.start), c.stop, c.start_6, c.stop_6]
                .into_iter()
                .flatten()
            {
                assert!(!command.replace("%IP%", "").contains('%'), "{command}");
            }
        }
    }

    #[test]
    fn iptables_grants_time_out_in_an_ipset() {
        let c = Firewall::Iptables(Iptables).door_commands(&target());
        assert_eq!(
            c.start,
            "ipset -exist add knock-totp-Web_1-v4 %IP% timeout 30"
        );
        assert_eq!(
            c.start_6.unwrap(),
            "ipset -exist add knock-totp-Web_1-v6 %IP% timeout 30"
        );
        assert_eq!((c.stop, c.stop_6), (None, None));
        let script = Firewall::Iptables(Iptables).setup_script(&target(), &host_drop);
        assert!(script.contains("-m set --match-set knock-totp-Web_1-v4 src -j ACCEPT"));
        assert!(script.contains("ip6tables -w -I INPUT 1 -p tcp --dport 22 -j knock-totp-Web_1"));
    }

    #[test]
    fn nftables_elements_time_out() {
        let c = Firewall::Nftables(Nftables).door_commands(&target());
        assert_eq!(
            c.start,
            "nft add element inet knock_totp_Web_1 allowed4 { %IP% timeout 30s }"
        );
        assert_eq!(
            c.start_6.unwrap(),
            "nft add element inet knock_totp_Web_1 allowed6 { %IP% timeout 30s }"
        );
        assert_eq!((c.stop, c.stop_6), (None, None));
        let ruleset = nft_ruleset("Web_1", 22);
        assert_eq!(ruleset.matches("flags timeout").count(), 2);
    }

    #[test]
    fn aws_commands_and_policy() {
        let fw = &all()[2];
        let c = fw.door_commands(&target());
        assert_eq!(
            c.start,
            "aws ec2 authorize-security-group-ingress --group-id sg-0123456789abcdef0 \
             --region eu-west-1 --profile ops --ip-permissions \"IpProtocol=tcp,FromPort=22,\
             ToPort=22,IpRanges=[{CidrIp=%IP%/32,Description=knock-totp:Web_1 until \
             $(date -u -d '30 sec' -Iseconds)}]\" --output text"
        );
        // The stop command revokes by id only a rule with the grant's description: an
        // admin's rule for the same address and port (which made the authorize a no-op
        // duplicate) is never touched, as revoking by (port, address) would.
        assert_eq!(
            c.stop.unwrap(),
            "ids=$(aws ec2 describe-security-group-rules --region eu-west-1 --profile ops \
             --filters Name=group-id,Values=sg-0123456789abcdef0 --query \
             'SecurityGroupRules[?!IsEgress && CidrIpv4==`\"%IP%/32\"` && FromPort==`22` && \
             ToPort==`22` && starts_with(Description || `\"\"`, `\"knock-totp:Web_1 until \"`)]\
             .SecurityGroupRuleId' --output text) && { [ -z \"$ids\" ] || aws ec2 \
             revoke-security-group-ingress --group-id sg-0123456789abcdef0 --region eu-west-1 \
             --profile ops --security-group-rule-ids $ids --output text; }"
        );
        assert!(c
            .start_6
            .unwrap()
            .contains("Ipv6Ranges=[{CidrIpv6=%IP%/128,Description=knock-totp:Web_1 until "));
        assert!(c.stop_6.unwrap().contains("CidrIpv6==`\"%IP%/128\"`"));
        let setup = fw.setup_script(&target(), &host_drop);
        assert!(
            setup.contains("'IpProtocol=tcp,FromPort=1000,ToPort=9999,IpRanges="),
            "{setup}"
        );
        assert!(setup.contains("\n# 4. the host's part\n"), "{setup}");
        let Firewall::Aws(aws) = fw else {
            unreachable!()
        };
        let policy: serde_json::Value = serde_json::from_str(&aws_iam_policy(aws)).unwrap();
        assert_eq!(
            policy["Statement"][0]["Resource"],
            "arn:aws:ec2:eu-west-1:*:security-group/sg-0123456789abcdef0"
        );
        assert_eq!(policy["Statement"][1]["Resource"], "*");
        assert_eq!(
            policy["Statement"][1]["Action"][1],
            "ec2:DescribeSecurityGroupRules"
        );
    }

    #[test]
    fn gcp_and_azure_rules_are_per_address() {
        let c = all()[3].door_commands(&target());
        assert!(c.start.contains("--source-ranges=%IP%/32"), "{}", c.start);
        let id = target().cloud_id();
        assert!(
            id.starts_with("web-1-") && id.len() == "web-1-".len() + 6,
            "{id}"
        );
        let rule = format!("kt-{id}-$(echo %IP% | tr .: --)");
        assert!(c.start.contains(&rule), "{}", c.start);
        assert!(c
            .start
            .contains("--description=\"knock-totp:Web_1 until $(date"));
        assert_eq!(
            c.stop.unwrap(),
            format!("gcloud compute firewall-rules delete {rule} --quiet")
        );
        let c = all()[4].door_commands(&target());
        assert!(c.start.contains("--source-address-prefixes %IP%/32"));
        assert!(c.start.contains(&format!("n={rule};")), "{}", c.start);
        assert_eq!(
            c.stop.unwrap(),
            format!(
                "az network nsg rule delete --resource-group rg1 --nsg-name web-nsg --name {rule}"
            )
        );
    }

    #[test]
    fn security_group_ids() {
        assert!(validate_security_group("sg-0123abcd").is_ok());
        assert!(validate_security_group("sg-0123456789abcdef0").is_ok());
        for bad in [
            "",
            "sg-",
            "sg-123",
            "sg-0123ABCD",
            "0123abcd",
            "sg-0123abcd; rm",
        ] {
            assert!(validate_security_group(bad).is_err(), "{bad}");
        }
        assert!(validate_cloud_name("region", "us-east-1").is_ok());
        assert!(validate_cloud_name("region", "us east").is_err());
        assert!(validate_cloud_name("region", "-x").is_err());
    }
}
