//! The daemon's view of an AWS security group (door grants to sweep, knock rules older
//! versions left): the `aws` CLI behind a trait.

use std::path::PathBuf;

use serde_json::Value;

use super::{
    command_line, delete_rules, grant_expired, rule_description, run_cli, CliError, GrantStore,
    Review,
};
use crate::core::ports::{knock_range_text, MAX_KNOCK_PORT, MIN_KNOCK_PORT};

/// The knock range must reach knockd from anywhere.
pub const KNOCK_CIDR: &str = "0.0.0.0/0";

/// How to get the aws CLI, for the error when it cannot be started.
const INSTALL_AWS: &str = "e.g. `pip install awscli`";

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

/// Runs one `aws` invocation and returns its stdout.
pub trait AwsCli {
    fn call(&mut self, args: &[String]) -> Result<String, CliError>;

    /// The command line for `args`, as `--dry-run` and `-v` print it.
    fn show(&self, args: &[String]) -> String {
        format!("aws {}", args.join(" "))
    }
}

/// The real `aws` program; region and profile come from the server config. Credentials and
/// the endpoint come from the usual AWS environment and files.
#[derive(Debug, Clone)]
pub struct AwsCommand {
    pub program: PathBuf,
    pub region: Option<String>,
    pub profile: Option<String>,
}

impl AwsCommand {
    /// The command line, for `--dry-run` and `-v` (it never holds a secret).
    pub fn display(&self, args: &[String]) -> String {
        let mut all = self.global_args();
        all.extend(args.iter().cloned());
        command_line(&self.program, &all)
    }

    fn global_args(&self) -> Vec<String> {
        let mut args = aws_cli_flags(self.region.as_deref(), self.profile.as_deref());
        args.extend(["--output".into(), "json".into()]);
        args
    }
}

impl AwsCli for AwsCommand {
    fn show(&self, args: &[String]) -> String {
        self.display(args)
    }

    fn call(&mut self, args: &[String]) -> Result<String, CliError> {
        run_cli(
            &self.program,
            self.global_args().iter().chain(args),
            &[("AWS_PAGER", "")],
            INSTALL_AWS,
        )
    }
}

/// One ingress rule of a security group, from `describe-security-group-rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    pub id: String,
    /// `tcp`, `udp`, `icmp` or `-1` (every protocol).
    pub protocol: String,
    /// -1 for every port.
    pub from_port: i64,
    pub to_port: i64,
    /// `CidrIpv4` or `CidrIpv6`; None for a rule that names another group or a prefix list.
    pub cidr: Option<String>,
    pub description: Option<String>,
}

impl GroupRule {
    fn covers(&self, from: u16, to: u16) -> bool {
        self.protocol == "-1"
            || (self.protocol == "tcp"
                && (self.from_port == -1
                    || (self.from_port <= i64::from(from) && i64::from(to) <= self.to_port)))
    }

    fn open_to_the_world(&self) -> bool {
        matches!(self.cidr.as_deref(), Some(KNOCK_CIDR | KNOCK_CIDR_V6))
    }
}

/// The world in IPv6, for the knock range's rule.
pub const KNOCK_CIDR_V6: &str = "::/0";

/// The ingress rules of the group `group_id`, from `describe-security-group-rules` JSON.
pub fn ingress_rules(json: &str, group_id: &str) -> Result<Vec<GroupRule>, CliError> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        CliError::Failed(format!("cannot parse describe-security-group-rules: {e}"))
    })?;
    let Some(rules) = value["SecurityGroupRules"].as_array() else {
        return Err(CliError::Failed(
            "describe-security-group-rules returned no SecurityGroupRules".into(),
        ));
    };
    Ok(rules
        .iter()
        .filter(|r| r["GroupId"] == group_id && r["IsEgress"] == false)
        .filter_map(|r| {
            Some(GroupRule {
                id: r["SecurityGroupRuleId"].as_str()?.to_owned(),
                protocol: r["IpProtocol"].as_str()?.to_owned(),
                from_port: r["FromPort"].as_i64().unwrap_or(-1),
                to_port: r["ToPort"].as_i64().unwrap_or(-1),
                cidr: r["CidrIpv4"]
                    .as_str()
                    .or(r["CidrIpv6"].as_str())
                    .map(str::to_owned),
                description: r["Description"].as_str().map(str::to_owned),
            })
        })
        .collect())
}

/// What the daemon does with a group's rules at a rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupReview {
    /// Per-port knock rules (open to the world, described exactly `knock-totp:NAME`) that
    /// versions which rotated the knock ports left behind.
    pub rotated_knock_rules: Vec<String>,
    /// Door grants (described `knock-totp:NAME until T`) whose expiry has passed, or whose
    /// expiry cannot be read.
    pub expired_grants: Vec<String>,
    /// Door grants still running.
    pub live_grants: Vec<String>,
    /// Whether some rule lets the whole knock range in from everywhere (IPv4).
    pub knock_range_open: bool,
    /// Whether some rule opens the protected port to the world (the doors then protect nothing).
    pub port_open_to_the_world: bool,
}

impl GroupReview {
    /// The review in the terms every cloud uses, with what in group `group` defeats the
    /// design for protected port `port` said as problems.
    pub fn into_review(self, group: &str, port: u16) -> Review {
        let mut problems = Vec::new();
        if !self.knock_range_open {
            problems.push(format!(
                "security group {group} does not let TCP {} in from 0.0.0.0/0: knocks cannot \
                 reach knockd (run the knock-range command of firewall-setup.sh once)",
                knock_range_text()
            ));
        }
        if self.port_open_to_the_world {
            problems.push(format!(
                "PORT {port} IS OPEN TO THE WORLD in security group {group}: the doors protect \
                 nothing until that rule is revoked"
            ));
        }
        Review {
            expired: self.expired_grants,
            live: self.live_grants,
            leftovers: self.rotated_knock_rules,
            problems,
        }
    }
}

/// Sorts server `name`'s rules in `rules` (protected port `port`) at unix time `now`. Rules
/// without our exact description, an admin's for instance, are never selected.
pub fn review(rules: &[GroupRule], name: &str, port: u16, now: i64) -> GroupReview {
    let ours = rule_description(name);
    let mut review = GroupReview::default();
    for rule in rules {
        let description = rule.description.as_deref().unwrap_or("");
        if rule.open_to_the_world() && rule.covers(port, port) {
            review.port_open_to_the_world = true;
        }
        if rule.cidr.as_deref() == Some(KNOCK_CIDR) && rule.covers(MIN_KNOCK_PORT, MAX_KNOCK_PORT) {
            review.knock_range_open = true;
        }
        if description == ours
            && rule.open_to_the_world()
            && rule.protocol == "tcp"
            && rule.from_port == rule.to_port
            && (i64::from(MIN_KNOCK_PORT)..=i64::from(MAX_KNOCK_PORT)).contains(&rule.from_port)
        {
            review.rotated_knock_rules.push(rule.id.clone());
        } else if let Some(expired) = grant_expired(description, name, now) {
            // Whatever its port (a grant of an earlier config's port too): the description
            // is ours alone.
            if expired {
                review.expired_grants.push(rule.id.clone());
            } else {
                review.live_grants.push(rule.id.clone());
            }
        }
    }
    review
}

/// One server's rules in one security group: the door grants it sweeps and the knock rules
/// older versions rotated. The knock range itself is opened once by the admin and never
/// touched here.
pub struct SecurityGroup<C> {
    cli: C,
    group: String,
    name: String,
    port: u16,
}

impl<C: AwsCli> SecurityGroup<C> {
    pub fn new(cli: C, group: &str, name: &str, port: u16) -> Self {
        Self {
            cli,
            group: group.to_owned(),
            name: name.to_owned(),
            port,
        }
    }

    pub fn cli(&self) -> &C {
        &self.cli
    }

    /// Arguments of `describe-security-group-rules` for our group.
    pub fn describe_args(&self) -> Vec<String> {
        vec![
            "ec2".into(),
            "describe-security-group-rules".into(),
            "--filters".into(),
            format!("Name=group-id,Values={}", self.group),
        ]
    }

    /// Arguments of the revoke call for the rules `ids`.
    pub fn revoke_args(&self, ids: &[String]) -> Vec<String> {
        let mut args = vec![
            "ec2".into(),
            "revoke-security-group-ingress".into(),
            "--group-id".into(),
            self.group.clone(),
            "--security-group-rule-ids".into(),
        ];
        args.extend(ids.iter().cloned());
        args
    }
}

impl<C: AwsCli> GrantStore for SecurityGroup<C> {
    fn place(&self) -> String {
        format!("security group {}", self.group)
    }

    fn review(&mut self, now: i64) -> Result<Review, CliError> {
        let out = self.cli.call(&self.describe_args())?;
        let rules = ingress_rules(&out, &self.group)?;
        Ok(review(&rules, &self.name, self.port, now).into_review(&self.group, self.port))
    }

    fn revoke(&mut self, ids: &[String]) -> Result<(), CliError> {
        delete_rules(ids, "NotFound", |ids| self.cli.call(&self.revoke_args(ids)))
    }

    fn show_review(&self) -> String {
        self.cli.show(&self.describe_args())
    }

    fn show_revoke(&self) -> String {
        self.cli.show(&self.revoke_args(&["RULE-ID".into()]))
    }

    fn manual_revoke(&self) -> String {
        "aws ec2 revoke-security-group-ingress --security-group-rule-ids ...".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::retry::retrying;
    use serde_json::json;
    use std::time::{Duration, Instant};

    const NOW: i64 = 1_764_000_000;

    fn rule(id: &str, from: i64, to: i64, cidr: &str, description: Option<&str>) -> Value {
        let mut r = json!({"SecurityGroupRuleId": id, "GroupId": "sg-1", "IsEgress": false,
                           "IpProtocol": "tcp", "FromPort": from, "ToPort": to});
        let key = if cidr.contains(':') {
            "CidrIpv6"
        } else {
            "CidrIpv4"
        };
        r[key] = json!(cidr);
        if let Some(d) = description {
            r["Description"] = json!(d);
        }
        r
    }

    /// A group as describe-security-group-rules shows it: the knock range, an admin's /32
    /// for a knocker's address, grants of ours and of another server, rotated knock rules.
    fn group() -> String {
        json!({"SecurityGroupRules": [
            rule("sgr-range", 1000, 9999, "0.0.0.0/0", Some("knock-totp:web")),
            rule("sgr-range6", 1000, 9999, "::/0", Some("knock-totp:web")),
            rule("sgr-admin", 22, 22, "192.0.2.7/32", Some("office")),
            rule("sgr-admin-bare", 22, 22, "192.0.2.8/32", None),
            rule("sgr-expired", 22, 22, "192.0.2.7/32",
                 Some("knock-totp:web until 2025-11-24T15:59:59+00:00")),
            rule("sgr-expired6", 22, 22, "2001:db8::7/128",
                 Some("knock-totp:web until 2025-11-24T16:00:00+00:00")),
            rule("sgr-live", 22, 22, "192.0.2.9/32",
                 Some("knock-totp:web until 2025-11-24T16:00:30+00:00")),
            rule("sgr-garbled", 22, 22, "192.0.2.10/32", Some("knock-totp:web until soon")),
            rule("sgr-old-port", 2200, 2200, "192.0.2.13/32",
                 Some("knock-totp:web until 2025-11-24T15:00:00+00:00")),
            rule("sgr-db-grant", 22, 22, "192.0.2.11/32",
                 Some("knock-totp:db until 2020-01-01T00:00:00+00:00")),
            rule("sgr-web2-grant", 22, 22, "192.0.2.12/32",
                 Some("knock-totp:web2 until 2020-01-01T00:00:00+00:00")),
            rule("sgr-rotated", 4000, 4000, "0.0.0.0/0", Some("knock-totp:web")),
            rule("sgr-rotated-db", 5000, 5000, "0.0.0.0/0", Some("knock-totp:db")),
            rule("sgr-admin-8080", 8080, 8080, "0.0.0.0/0", Some("web server")),
            {"SecurityGroupRuleId": "sgr-egress", "GroupId": "sg-1", "IsEgress": true,
             "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "0.0.0.0/0",
             "Description": "knock-totp:web"},
        ]})
        .to_string()
    }

    #[test]
    fn review_selects_only_our_stale_rules() {
        let rules = ingress_rules(&group(), "sg-1").unwrap();
        assert_eq!(rules.len(), 14, "egress rules are left out");
        let review = review(&rules, "web", 22, NOW);
        assert_eq!(review.rotated_knock_rules, ["sgr-rotated"]);
        assert_eq!(
            review.expired_grants,
            ["sgr-expired", "sgr-expired6", "sgr-garbled", "sgr-old-port"]
        );
        assert_eq!(review.live_grants, ["sgr-live"]);
        assert!(review.knock_range_open);
        assert!(!review.port_open_to_the_world);
        assert_eq!(
            review.into_review("sg-1", 22).to_revoke(),
            [
                "sgr-rotated",
                "sgr-expired",
                "sgr-expired6",
                "sgr-garbled",
                "sgr-old-port"
            ]
        );
    }

    #[test]
    fn review_notices_a_closed_knock_range_and_an_open_port() {
        let text = json!({"SecurityGroupRules": [
            rule("sgr-1", 1000, 5000, "0.0.0.0/0", None),
            rule("sgr-2", 0, 65535, "::/0", None),
        ]})
        .to_string();
        let review = review(&ingress_rules(&text, "sg-1").unwrap(), "web", 22, NOW);
        assert!(!review.knock_range_open);
        assert!(review.port_open_to_the_world);
    }

    /// A security group in memory that answers revokes by rule id like EC2 does.
    struct FakeGroup {
        ids: Vec<String>,
        calls: Vec<Vec<String>>,
    }

    impl AwsCli for FakeGroup {
        fn call(&mut self, args: &[String]) -> Result<String, CliError> {
            self.calls.push(args.to_vec());
            let ids = &args[5..];
            if ids.iter().any(|id| !self.ids.contains(id)) {
                return Err(CliError::Failed(
                    "An error occurred (InvalidSecurityGroupRuleId.NotFound)".into(),
                ));
            }
            self.ids.retain(|id| !ids.contains(id));
            Ok("{}".into())
        }
    }

    #[test]
    fn a_rule_already_revoked_counts_as_success() {
        let mut group = SecurityGroup::new(
            FakeGroup {
                ids: vec!["sgr-a".into(), "sgr-b".into(), "sgr-c".into()],
                calls: Vec::new(),
            },
            "sg-1",
            "web",
            22,
        );
        group
            .revoke(&["sgr-a".into(), "sgr-gone".into(), "sgr-c".into()])
            .unwrap();
        assert_eq!(group.cli().ids, ["sgr-b"]);
        assert_eq!(group.cli().calls.len(), 4, "one call, then one per rule");
        assert_eq!(
            group.cli().calls[0][..5],
            [
                "ec2",
                "revoke-security-group-ingress",
                "--group-id",
                "sg-1",
                "--security-group-rule-ids"
            ]
        );
        let aws = AwsCommand {
            program: "aws".into(),
            region: Some("eu-west-1".into()),
            profile: None,
        };
        assert_eq!(
            aws.display(&group.describe_args()),
            "aws --region eu-west-1 --output json ec2 describe-security-group-rules --filters \
             Name=group-id,Values=sg-1"
        );
    }

    #[test]
    fn retries_with_backoff_and_reports_each_error_once() {
        let mut pauses = Vec::new();
        let mut reports = Vec::new();
        let mut attempts = 0;
        let result = retrying(
            Instant::now() + Duration::from_secs(60),
            &mut |d| {
                pauses.push(d);
                true
            },
            &mut |e: &CliError| reports.push(e.to_string()),
            CliError::is_permanent,
            || {
                attempts += 1;
                if attempts < 4 {
                    Err(CliError::Failed("RequestLimitExceeded".into()))
                } else {
                    Ok(attempts)
                }
            },
        );
        assert_eq!(result, Ok(4));
        assert_eq!(reports, ["RequestLimitExceeded"]);
        assert_eq!(pauses, [1, 2, 4].map(Duration::from_secs).to_vec());
    }

    #[test]
    fn gives_up_at_the_deadline_or_when_the_cli_is_missing() {
        let failing = || Err::<(), _>(CliError::Failed("ExpiredToken".into()));
        let result = retrying(
            Instant::now(),
            &mut |_| true,
            &mut |_| {},
            CliError::is_permanent,
            failing,
        );
        assert!(result.is_err());
        let mut tries = 0;
        let missing = retrying(
            Instant::now() + Duration::from_secs(60),
            &mut |_| true,
            &mut |_| {},
            CliError::is_permanent,
            || {
                tries += 1;
                Err::<(), _>(CliError::Missing("aws: not found".into()))
            },
        );
        assert!(missing.is_err());
        assert_eq!(tries, 1);
    }
}
