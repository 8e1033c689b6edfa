//! AWS security groups through the aws CLI: a rule per knocker's /32 or /128.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{Backend, DoorCommands, FirewallError, FirewallKind, ProtectedPort};
use crate::core::ports::{MAX_KNOCK_PORT, MIN_KNOCK_PORT};

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

/// `--region R --profile P`, each only when given: every aws command line starts with these.
pub fn aws_cli_flags(region: Option<&str>, profile: Option<&str>) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(region) = region {
        flags.extend(["--region".to_owned(), region.to_owned()]);
    }
    if let Some(profile) = profile {
        flags.extend(["--profile".to_owned(), profile.to_owned()]);
    }
    flags
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

impl Backend for AwsTarget {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Aws
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

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let aws = self;
        let port = target.port;
        let base = |verb: &str| {
            let mut command = format!(
                "aws ec2 {verb}-security-group-ingress --group-id {}",
                aws.security_group
            );
            for flag in aws.cli_flags() {
                command.push(' ');
                command.push_str(&flag);
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

    fn static_opening(&self, target: &ProtectedPort) -> Option<String> {
        let flags = self.cli_flags().join(" ");
        let flags = if flags.is_empty() {
            flags
        } else {
            format!(" {flags}")
        };
        let range = format!("FromPort={MIN_KNOCK_PORT},ToPort={MAX_KNOCK_PORT}");
        let port = format!("FromPort={0},ToPort={0}", target.port);
        let mut s = format!(
            "# Once: let the knock range and port {port_no} reach the instance (the host decides\n\
             # who gets in). The instance needs no AWS credentials.\n",
            port_no = target.port
        );
        for ports in [range, port] {
            s.push_str(&format!(
                "aws ec2 authorize-security-group-ingress --group-id {sg}{flags} --ip-permissions \\\n\
                 \x20 'IpProtocol=tcp,{ports},IpRanges=[{{CidrIp=0.0.0.0/0,Description={desc}}}],Ipv6Ranges=[{{CidrIpv6=::/0,Description={desc}}}]'\n",
                sg = self.security_group,
                desc = target.description(),
            ));
        }
        Some(s)
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let aws = self;
        let port = target.port;
        let name = &target.server;
        let mut s = String::new();
        let mut flags = String::new();
        for flag in aws.cli_flags() {
            flags.push(' ');
            flags.push_str(&flag);
        }
        s.push_str(&format!(
                "# 1. Let the instance role open and close rules in {sg} (policy: iam-policy.json).\n\
                 #    Replace ROLE and ACCOUNT_ID with the instance profile's role and your account.\n\
                 aws iam create-policy --policy-name knock-totp-{name} --policy-document file://iam-policy.json\n\
                 aws iam attach-role-policy --role-name ROLE --policy-arn arn:aws:iam::ACCOUNT_ID:policy/knock-totp-{name}\n\n\
                 # 2. Port {port} must not be open to the world in {sg}: check, and revoke any 0.0.0.0/0 rule.\n\
                 aws ec2 describe-security-groups --group-ids {sg}{flags} --query 'SecurityGroups[0].IpPermissions'\n\n\
                 # 3. Knock ports: `knock-totp server` authorizes the current windows' two ports\n\
                 #    (0.0.0.0/0, description {description}) and revokes them when they expire.\n\
                 #    knockd's doors authorize port {port} for the knocker's /32 only and revoke it.\n",
                sg = aws.security_group,
                description = target.description(),
            ));
        s
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
