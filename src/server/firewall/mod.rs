//! Firewall commands for knockd doors and one-time admin setup, per backend (pure text).
//!
//! Every door opens the protected port for the knocking address (`%IP%`) only, and closes it
//! by deleting exactly the rule it added (or by letting an nft set element time out). Nothing
//! here ever flushes a chain, table or ruleset.

use serde::{Deserialize, Serialize};

use crate::core::ports::PortPair;
use crate::server::engine::knockd::conf::KnockdDoor;

/// Name of the nftables table that holds the knockers' address sets.
pub const NFT_TABLE: &str = "knock_totp";
/// Lowest and highest knock ports, as `A-B` for cloud rules that must let knocks through.
const KNOCK_PORT_RANGE: &str = "1000-9999";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    /// iptables/ip6tables rules inserted and deleted per client
    Iptables,
    /// an nftables set whose elements time out by themselves
    Nftables,
    /// AWS security group rules through the aws CLI
    Aws,
    /// Google Cloud firewall rules through gcloud
    Gcp,
    /// Azure network security group rules through az
    Azure,
}

impl FirewallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }
}

/// The AWS security group a server's doors add rules to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTarget {
    /// `sg-` and 8 or 17 hex digits.
    pub security_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// aws CLI profile (`--profile`); none means the instance role or the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The GCP VPC network the per-client firewall rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpTarget {
    pub network: String,
}

/// The Azure network security group the per-client rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureTarget {
    pub resource_group: String,
    pub nsg: String,
}

/// A firewall backend with what its commands need to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firewall {
    Iptables,
    Nftables,
    Aws(AwsTarget),
    Gcp(GcpTarget),
    Azure(AzureTarget),
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
    fn description(&self) -> String {
        format!("knock-totp:{}", self.server)
    }

    /// A lowercase, dash-only form of the server name for cloud rule names (max 16 chars).
    fn slug(&self) -> String {
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
            .take(16)
            .collect();
        slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() {
            slug.push('x');
        }
        slug
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid security group id {0:?}: expected sg- and 8 or 17 hex digits")]
    SecurityGroup(String),
    #[error("invalid {what} {value:?}: use letters, digits, '-', '_' and '.' only")]
    Name { what: &'static str, value: String },
}

/// `sg-` followed by 8 or 17 lowercase hex digits.
pub fn validate_security_group(id: &str) -> Result<(), FirewallError> {
    let ok = id.strip_prefix("sg-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(FirewallError::SecurityGroup(id.chars().take(40).collect()))
    }
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

impl Firewall {
    pub fn kind(&self) -> FirewallKind {
        match self {
            Self::Iptables => FirewallKind::Iptables,
            Self::Nftables => FirewallKind::Nftables,
            Self::Aws(_) => FirewallKind::Aws,
            Self::Gcp(_) => FirewallKind::Gcp,
            Self::Azure(_) => FirewallKind::Azure,
        }
    }

    /// Checks the names that end up in shell commands.
    pub fn validate(&self) -> Result<(), FirewallError> {
        match self {
            Self::Iptables | Self::Nftables => Ok(()),
            Self::Aws(aws) => {
                validate_security_group(&aws.security_group)?;
                if let Some(region) = &aws.region {
                    validate_cloud_name("region", region)?;
                }
                if let Some(profile) = &aws.profile {
                    validate_cloud_name("aws profile", profile)?;
                }
                Ok(())
            }
            Self::Gcp(gcp) => validate_cloud_name("network", &gcp.network),
            Self::Azure(azure) => {
                validate_cloud_name("resource group", &azure.resource_group)?;
                validate_cloud_name("network security group", &azure.nsg)
            }
        }
    }

    /// knockd's start/stop commands for a door of `target`.
    pub fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let port = target.port;
        match self {
            Self::Iptables => {
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
            Self::Nftables => {
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
            Self::Aws(aws) => {
                let base = |verb: &str| {
                    let mut command = format!(
                        "aws ec2 {verb}-security-group-ingress --group-id {}",
                        aws.security_group
                    );
                    if let Some(region) = &aws.region {
                        command.push_str(&format!(" --region {region}"));
                    }
                    if let Some(profile) = &aws.profile {
                        command.push_str(&format!(" --profile {profile}"));
                    }
                    command
                };
                let v4 = format!("--protocol tcp --port {port} --cidr %IP%/32");
                let v6 = format!(
                    "--ip-permissions 'IpProtocol=tcp,FromPort={port},ToPort={port},\
                     Ipv6Ranges=[{{CidrIpv6=%IP%/128}}]'"
                );
                DoorCommands {
                    start: format!("{} {v4}", base("authorize")),
                    stop: Some(format!("{} {v4}", base("revoke"))),
                    start_6: Some(format!("{} {v6}", base("authorize"))),
                    stop_6: Some(format!("{} {v6}", base("revoke"))),
                }
            }
            Self::Gcp(gcp) => {
                // Rule names allow [a-z0-9-] only: dots and colons of the address become dashes.
                let rule =
                    |suffix: &str| format!("kt-{}-$(echo %IP% | tr .: --){suffix}", target.slug());
                let create = |suffix: &str, bits: u8| {
                    format!(
                        "gcloud compute firewall-rules create {} --network={} --direction=INGRESS \
                         --action=ALLOW --rules=tcp:{port} --source-ranges=%IP%/{bits} \
                         --target-tags=knock-totp-{} --description={} --quiet",
                        rule(suffix),
                        gcp.network,
                        target.slug(),
                        target.description()
                    )
                };
                let delete = |suffix: &str| {
                    format!(
                        "gcloud compute firewall-rules delete {} --quiet",
                        rule(suffix)
                    )
                };
                DoorCommands {
                    start: create("", 32),
                    stop: Some(delete("")),
                    start_6: Some(create("-6", 128)),
                    stop_6: Some(delete("-6")),
                }
            }
            Self::Azure(azure) => {
                let rule =
                    |suffix: &str| format!("kt-{}-$(echo %IP% | tr .: --){suffix}", target.slug());
                let group = format!(
                    "--resource-group {} --nsg-name {}",
                    azure.resource_group, azure.nsg
                );
                // Priorities must be unique in the group: derive one from the address. No '%'
                // other than %IP% anywhere: knockd substitutes it in the text.
                let create = |suffix: &str, bits: u8, base: u32| {
                    format!(
                        "az network nsg rule create {group} --name {} \
                         --priority $(( $(echo %IP% | cksum | cut -c1-3) + {base} )) \
                         --direction Inbound --access Allow --protocol Tcp \
                         --source-address-prefixes %IP%/{bits} --destination-port-ranges {port} \
                         --description {} --output none",
                        rule(suffix),
                        target.description()
                    )
                };
                let delete = |suffix: &str| {
                    format!("az network nsg rule delete {group} --name {}", rule(suffix))
                };
                DoorCommands {
                    start: create("", 32, 1000),
                    stop: Some(delete("")),
                    start_6: Some(create("-6", 128, 2000)),
                    stop_6: Some(delete("-6")),
                }
            }
        }
    }

    /// A knockd door for `ports` that runs this backend's commands.
    pub fn door(
        &self,
        name: String,
        ports: PortPair,
        target: &ProtectedPort,
        seq_timeout: u64,
        cmd_timeout: u64,
    ) -> KnockdDoor {
        let commands = self.door_commands(target);
        KnockdDoor {
            name,
            ports,
            seq_timeout,
            cmd_timeout,
            start_command: commands.start,
            stop_command: commands.stop,
            start_command_6: commands.start_6,
            stop_command_6: commands.stop_6,
        }
    }

    /// The one-time admin commands (a POSIX shell script) that prepare the firewall.
    pub fn setup_script(&self, target: &ProtectedPort) -> String {
        let port = target.port;
        let name = &target.server;
        let mut s = format!(
            "#!/bin/sh\n\
             # One-time firewall setup for knock-totp server {name} ({kind}), protected port {port}.\n\
             # Review before running; keep a console open. Existing rules are kept as they are.\n\
             set -eu\n\n",
            kind = self.kind().as_str()
        );
        match self {
            Self::Iptables => {
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
            }
            Self::Nftables => {
                s.push_str(
                    "# Creates (or recreates) only knock-totp's own table; other tables are untouched.\n\
                     # If another table drops the port too, allow @allowed4/@allowed6 there as well.\n\
                     nft -f - <<'EOF'\n",
                );
                s.push_str(&nft_ruleset(port));
                s.push_str("EOF\n");
            }
            Self::Aws(aws) => {
                let mut flags = String::new();
                if let Some(region) = &aws.region {
                    flags.push_str(&format!(" --region {region}"));
                }
                if let Some(profile) = &aws.profile {
                    flags.push_str(&format!(" --profile {profile}"));
                }
                s.push_str(&format!(
                    "# 1. Let the instance role open and close rules in {sg} (policy: iam-policy.json).\n\
                     #    Replace ROLE and ACCOUNT_ID with the instance profile's role and your account.\n\
                     aws iam create-policy --policy-name knock-totp-{name} --policy-document file://iam-policy.json\n\
                     aws iam attach-role-policy --role-name ROLE --policy-arn arn:aws:iam::ACCOUNT_ID:policy/knock-totp-{name}\n\n\
                     # 2. Port {port} must not be open to the world in {sg}: check, and revoke any 0.0.0.0/0 rule.\n\
                     aws ec2 describe-security-groups --group-ids {sg}{flags} --query 'SecurityGroups[0].IpPermissions'\n\n\
                     # 3. Knock ports: `knock-totp server` authorizes the current windows' two ports\n\
                     #    (0.0.0.0/0, description knock-totp:{name}) and revokes them when they expire.\n\
                     #    knockd's doors authorize port {port} for the knocker's /32 only and revoke it.\n",
                    sg = aws.security_group
                ));
            }
            Self::Gcp(gcp) => {
                let slug = target.slug();
                s.push_str(&format!(
                    "# 1. Tag the instance so only it gets the rules (replace INSTANCE and ZONE).\n\
                     gcloud compute instances add-tags INSTANCE --zone=ZONE --tags=knock-totp-{slug}\n\n\
                     # 2. Knocks must reach knockd. This lets TCP {KNOCK_PORT_RANGE} reach the instance; knockd\n\
                     #    sees knocks before the host firewall, so drop these ports on the host if\n\
                     #    anything listens there. Port {port} must have no 0.0.0.0/0 rule.\n\
                     gcloud compute firewall-rules create kt-{slug}-knocks --network={network} --direction=INGRESS \\\n\
                     \x20 --action=ALLOW --rules=tcp:{KNOCK_PORT_RANGE} --source-ranges=0.0.0.0/0 \\\n\
                     \x20 --target-tags=knock-totp-{slug} --description=knock-totp:{name}\n\n\
                     # 3. knockd's doors create a rule for the knocker's address only and delete it.\n",
                    network = gcp.network
                ));
            }
            Self::Azure(azure) => {
                s.push_str(&format!(
                    "# 1. Knocks must reach knockd. This lets TCP {KNOCK_PORT_RANGE} through {nsg}; knockd sees\n\
                     #    knocks before the host firewall, so drop these ports on the host if anything\n\
                     #    listens there. Port {port} must have no rule open to Internet/*.\n\
                     az network nsg rule create --resource-group {rg} --nsg-name {nsg} \\\n\
                     \x20 --name kt-{slug}-knocks --priority 3900 --direction Inbound --access Allow \\\n\
                     \x20 --protocol Tcp --source-address-prefixes '*' --destination-port-ranges {KNOCK_PORT_RANGE} \\\n\
                     \x20 --description knock-totp:{name} --output none\n\n\
                     # 2. The VM's identity needs Microsoft.Network/networkSecurityGroups/securityRules/\n\
                     #    write and delete on {nsg} (e.g. the Network Contributor role scoped to it).\n\
                     # 3. knockd's doors create a rule for the knocker's address only and delete it.\n",
                    rg = azure.resource_group,
                    nsg = azure.nsg,
                    slug = target.slug()
                ));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
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

/// The least-privilege IAM policy for `knock-totp server` and knockd's doors on AWS.
/// Describe calls cannot be scoped to a resource, so they get `"*"`.
pub fn aws_iam_policy(aws: &AwsTarget) -> String {
    let region = aws.region.as_deref().unwrap_or("*");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KnockTotpOpenAndCloseRules",
                "Effect": "Allow",
                "Action": [
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress"
                ],
                "Resource": format!("arn:aws:ec2:{region}:*:security-group/{}", aws.security_group)
            },
            {
                "Sid": "KnockTotpReadRules",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSecurityGroupRules"
                ],
                "Resource": "*"
            }
        ]
    });
    let mut text = serde_json::to_string_pretty(&policy).expect("JSON values serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ProtectedPort {
        ProtectedPort {
            server: "Web_1".into(),
            port: 22,
            open_seconds: 30,
        }
    }

    fn all() -> Vec<Firewall> {
        vec![
            Firewall::Iptables,
            Firewall::Nftables,
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

    /// Every piece of text a backend produces.
    fn texts(fw: &Firewall) -> Vec<String> {
        let c = fw.door_commands(&target());
        let mut all = vec![c.start, fw.setup_script(&target()), nft_ruleset(22)];
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
    fn iptables_stop_deletes_exactly_the_inserted_rule() {
        let c = Firewall::Iptables.door_commands(&target());
        assert_eq!(
            c.start,
            "iptables -w -I INPUT -s %IP% -p tcp --dport 22 -m comment --comment knock-totp:Web_1 -j ACCEPT"
        );
        assert_eq!(c.stop.unwrap(), c.start.replace(" -I ", " -D "));
        assert_eq!(
            c.stop_6.unwrap(),
            c.start_6.unwrap().replace(" -I ", " -D ")
        );
    }

    #[test]
    fn nftables_elements_time_out() {
        let c = Firewall::Nftables.door_commands(&target());
        assert_eq!(
            c.start,
            "nft add element inet knock_totp allowed4 { %IP% timeout 30s }"
        );
        assert_eq!(
            c.start_6.unwrap(),
            "nft add element inet knock_totp allowed6 { %IP% timeout 30s }"
        );
        assert_eq!((c.stop, c.stop_6), (None, None));
        let ruleset = nft_ruleset(22);
        assert_eq!(ruleset.matches("flags timeout").count(), 2);
    }

    #[test]
    fn aws_commands_and_policy() {
        let fw = &all()[2];
        let c = fw.door_commands(&target());
        assert_eq!(
            c.start,
            "aws ec2 authorize-security-group-ingress --group-id sg-0123456789abcdef0 \
             --region eu-west-1 --profile ops --protocol tcp --port 22 --cidr %IP%/32"
        );
        assert_eq!(c.stop.unwrap(), c.start.replace("authorize", "revoke"));
        assert!(c.start_6.unwrap().contains("CidrIpv6=%IP%/128"));
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
        assert!(c.start.contains("kt-web-1-$(echo %IP% | tr .: --)"));
        assert!(c
            .stop
            .unwrap()
            .starts_with("gcloud compute firewall-rules delete kt-web-1-"));
        let c = all()[4].door_commands(&target());
        assert!(c.start.contains("--source-address-prefixes %IP%/32"));
        assert!(c.stop.unwrap().starts_with("az network nsg rule delete"));
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
