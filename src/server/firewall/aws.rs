//! AWS security groups through the aws CLI: the knock range opened once, and a rule per
//! knocker's /32 or /128 that only its door revokes.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{
    grant_description, grant_description_prefix, Backend, DoorCommands, FirewallError,
    FromSettings, HostDrop, PolicyFile, ProtectedPort, SettingsSource,
};
use crate::core::ports::{knock_range_text, MAX_KNOCK_PORT, MIN_KNOCK_PORT};
pub use crate::server::cloud::aws::aws_cli_flags;
use crate::server::cloud::aws::{AwsCommand, SecurityGroup};
use crate::server::cloud::GrantStore;

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

impl AwsTarget {
    /// The aws CLI's `--region` and `--profile` flags for this target.
    pub fn cli_flags(&self) -> Vec<String> {
        aws_cli_flags(self.region.as_deref(), self.profile.as_deref())
    }
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

impl FromSettings for AwsTarget {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error> {
        source.aws()
    }
}

impl Backend for AwsTarget {
    fn settings_key(&self) -> &'static str {
        "security_group"
    }

    fn validate(&self) -> Result<(), FirewallError> {
        validate_security_group(&self.security_group)?;
        if let Some(region) = &self.region {
            validate_cloud_name("region", region)?;
        }
        if let Some(profile) = &self.profile {
            validate_cloud_name("aws profile", profile)?;
        }
        Ok(())
    }

    /// A door authorizes the protected port for the knocker's /32 (or /128) with a description
    /// that names this server and the grant's expiry. AWS keys rules by (protocol, port,
    /// address), so when an admin's rule for that address exists the authorize fails as a
    /// duplicate and adds nothing; the stop command revokes, by its id, only a rule that
    /// carries the grant description, never the admin's.
    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let flags = self.flags_text();
        let sg = &self.security_group;
        let port = target.port;
        let description = grant_description(target);
        let start = |ranges: &str, cidr_key: &str, bits: u8| {
            format!(
                "aws ec2 authorize-security-group-ingress --group-id {sg}{flags} --ip-permissions \
                 \"IpProtocol=tcp,FromPort={port},ToPort={port},\
                 {ranges}=[{{{cidr_key}=%IP%/{bits},Description={description}}}]\" --output text"
            )
        };
        let stop = |cidr_key: &str, bits: u8| {
            format!(
                "ids=$(aws ec2 describe-security-group-rules{flags} --filters \
                 Name=group-id,Values={sg} --query 'SecurityGroupRules[?!IsEgress && \
                 {cidr_key}==`\"%IP%/{bits}\"` && FromPort==`{port}` && ToPort==`{port}` && \
                 starts_with(Description || `\"\"`, `\"{prefix}\"`)].SecurityGroupRuleId' \
                 --output text) && {{ [ -z \"$ids\" ] || aws ec2 revoke-security-group-ingress \
                 --group-id {sg}{flags} --security-group-rule-ids $ids --output text; }}",
                prefix = grant_description_prefix(&target.server),
            )
        };
        DoorCommands {
            start: start("IpRanges", "CidrIp", 32),
            stop: Some(stop("CidrIpv4", 32)),
            start_6: Some(start("Ipv6Ranges", "CidrIpv6", 128)),
            stop_6: Some(stop("CidrIpv6", 128)),
        }
    }

    fn static_opening(&self, target: &ProtectedPort) -> Option<String> {
        let mut s = format!(
            "# Once: let the knock range and port {port} reach the instance (the host decides\n\
             # who gets in). The instance needs no AWS credentials.\n",
            port = target.port
        );
        s.push_str(&self.opening(target, MIN_KNOCK_PORT, MAX_KNOCK_PORT));
        s.push_str(&self.opening(target, target.port, target.port));
        Some(s)
    }

    fn setup_steps(&self, target: &ProtectedPort, host_drop: HostDrop) -> String {
        let port = target.port;
        let name = &target.server;
        let sg = &self.security_group;
        let flags = self.flags_text();
        let range = knock_range_text();
        format!(
            "# 1. Let the instance role open and close rules in {sg} (policy: iam-policy.json).\n\
             #    Replace ROLE and ACCOUNT_ID with the instance profile's role and your account.\n\
             aws iam create-policy --policy-name knock-totp-{name} --policy-document file://iam-policy.json\n\
             aws iam attach-role-policy --role-name ROLE --policy-arn arn:aws:iam::ACCOUNT_ID:policy/knock-totp-{name}\n\n\
             # 2. Port {port} must not be open to the world in {sg}: check, and revoke any 0.0.0.0/0 rule.\n\
             #    A grant opens port {port} on every instance in {sg}: give this one a group of its own.\n\
             aws ec2 describe-security-groups --group-ids {sg}{flags} --query 'SecurityGroups[0].IpPermissions'\n\n\
             # 3. Once: let the knock range {range} reach knockd from anywhere, IPv4 and IPv6. It is\n\
             #    never rotated: a group that opens only the current door ports shows a scanner the\n\
             #    doors. (`knock-totp server` removes the per-port knock rules older versions rotated.)\n\
             {opening}\n\
             {host}\n\
             # knockd's doors authorize port {port} for the knocker's /32 (or /128) only, described\n\
             # \"{prefix}<expiry>\", and revoke exactly that rule after open_seconds, never an\n\
             # admin's rule for the same address; `knock-totp server` revokes those whose expiry\n\
             # has passed (a door whose stop command never ran).\n",
            opening = self.opening(target, MIN_KNOCK_PORT, MAX_KNOCK_PORT),
            host = host_drop("4. "),
            prefix = grant_description_prefix(name),
        )
    }

    fn grant_store(&self, target: &ProtectedPort) -> Option<Box<dyn GrantStore>> {
        let cli = AwsCommand {
            program: "aws".into(),
            region: self.region.clone(),
            profile: self.profile.clone(),
        };
        Some(Box::new(SecurityGroup::new(
            cli,
            &self.security_group,
            &target.server,
            target.port,
        )))
    }

    fn credentials_policy(&self) -> Option<PolicyFile> {
        Some(PolicyFile {
            file_name: "iam-policy.json",
            title: "least-privilege IAM policy for the instance role",
            text: aws_iam_policy(self),
        })
    }
}

impl AwsTarget {
    /// ` --region R --profile P` (each only when given), for appending to a command line.
    fn flags_text(&self) -> String {
        self.cli_flags()
            .iter()
            .map(|flag| format!(" {flag}"))
            .collect()
    }

    /// The command that opens TCP `from`..=`to` to everyone, IPv4 and IPv6, described as ours.
    fn opening(&self, target: &ProtectedPort, from: u16, to: u16) -> String {
        format!(
            "aws ec2 authorize-security-group-ingress --group-id {sg}{flags} --ip-permissions \\\n\
             \x20 'IpProtocol=tcp,FromPort={from},ToPort={to},IpRanges=[{{CidrIp=0.0.0.0/0,Description={desc}}}],Ipv6Ranges=[{{CidrIpv6=::/0,Description={desc}}}]'\n",
            sg = self.security_group,
            flags = self.flags_text(),
            desc = target.description(),
        )
    }
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
