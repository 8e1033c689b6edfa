//! Knock ports in an AWS security group: the `aws` CLI behind a trait.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::core::ports::{MAX_KNOCK_PORT, MIN_KNOCK_PORT};
use crate::server::doors::{diff, PortDiff};
use crate::server::firewall::aws::aws_cli_flags;
use crate::server::firewall::rule_description;

/// Knock ports are decoys that must reach knockd from anywhere.
pub const KNOCK_CIDR: &str = "0.0.0.0/0";

/// Why an `aws` call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The CLI cannot be started at all: retrying will not help.
    #[error(
        "cannot run the aws CLI ({0}): install it (e.g. `pip install awscli`) or put it on PATH"
    )]
    Missing(String),
    /// The call ran and failed; the text is the CLI's own error message.
    #[error("{0}")]
    Failed(String),
}

impl AwsError {
    /// The CLI cannot run at all: retrying will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Missing(_))
    }

    fn code_is(&self, code: &str) -> bool {
        matches!(self, Self::Failed(text) if text.contains(code))
    }
}

/// Runs one `aws` invocation and returns its stdout.
pub trait AwsCli {
    fn call(&mut self, args: &[String]) -> Result<String, AwsError>;

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
        let mut words = vec![self.program.display().to_string()];
        words.extend(
            self.global_args()
                .into_iter()
                .map(|a| a.to_string_lossy().into()),
        );
        words.extend(args.iter().map(|a| shell_quote(a)));
        words.join(" ")
    }

    fn global_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            aws_cli_flags(self.region.as_deref(), self.profile.as_deref())
                .into_iter()
                .map(OsString::from)
                .collect();
        args.extend(["--output".into(), "json".into()]);
        args
    }
}

impl AwsCli for AwsCommand {
    fn show(&self, args: &[String]) -> String {
        self.display(args)
    }

    fn call(&mut self, args: &[String]) -> Result<String, AwsError> {
        let output = Command::new(&self.program)
            .args(self.global_args())
            .args(args)
            .env("AWS_PAGER", "")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| AwsError::Missing(format!("{}: {e}", self.program.display())))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Err(AwsError::Failed(if text.is_empty() {
            format!("aws exited with {}", output.status)
        } else {
            text
        }))
    }
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The knock-port rules one server manages in one security group.
pub struct KnockPortRules<C> {
    cli: C,
    group: String,
    description: String,
    /// Ports whose rule carries our description, as far as we know.
    owned: BTreeSet<u16>,
}

impl<C: AwsCli> KnockPortRules<C> {
    pub fn new(cli: C, group: &str, name: &str) -> Self {
        Self {
            cli,
            group: group.to_owned(),
            description: rule_description(name),
            owned: BTreeSet::new(),
        }
    }

    /// The description our rules carry.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn cli(&self) -> &C {
        &self.cli
    }

    /// Ports whose rule we believe carries our description.
    pub fn owned(&self) -> &BTreeSet<u16> {
        &self.owned
    }

    /// The change that gets the group to `desired`, from what we own.
    pub fn plan(&self, desired: &BTreeSet<u16>) -> PortDiff {
        diff(desired, &self.owned)
    }

    /// Arguments of `describe-security-groups` for our group.
    pub fn describe_args(&self) -> Vec<String> {
        vec![
            "ec2".into(),
            "describe-security-groups".into(),
            "--group-ids".into(),
            self.group.clone(),
        ]
    }

    /// Arguments of an authorize (`revoke == false`) or revoke call for `ports`.
    pub fn change_args(&self, revoke: bool, ports: &BTreeSet<u16>) -> Vec<String> {
        let permissions: Vec<Value> = ports
            .iter()
            .map(|port| {
                let range = if revoke {
                    json!({ "CidrIp": KNOCK_CIDR })
                } else {
                    json!({ "CidrIp": KNOCK_CIDR, "Description": self.description })
                };
                json!({
                    "IpProtocol": "tcp",
                    "FromPort": port,
                    "ToPort": port,
                    "IpRanges": [range],
                })
            })
            .collect();
        let action = if revoke {
            "revoke-security-group-ingress"
        } else {
            "authorize-security-group-ingress"
        };
        vec![
            "ec2".into(),
            action.into(),
            "--group-id".into(),
            self.group.clone(),
            "--ip-permissions".into(),
            Value::Array(permissions).to_string(),
        ]
    }

    /// Reads the group and returns the knock ports whose rule carries our description; they
    /// become the ports we own.
    pub fn refresh(&mut self) -> Result<BTreeSet<u16>, AwsError> {
        let out = self.cli.call(&self.describe_args())?;
        let ports = own_ports(&out, &self.group, &self.description)?;
        self.owned = ports.clone();
        Ok(ports)
    }

    /// Opens `ports` to the world. A rule that already exists counts as success; if it was
    /// someone else's (another NAME), we do not take it over and will not revoke it.
    pub fn authorize(&mut self, ports: &BTreeSet<u16>) -> Result<(), AwsError> {
        self.change(false, ports)
    }

    /// Closes `ports`. A rule that is already gone counts as success.
    pub fn revoke(&mut self, ports: &BTreeSet<u16>) -> Result<(), AwsError> {
        self.change(true, ports)
    }

    fn change(&mut self, revoke: bool, ports: &BTreeSet<u16>) -> Result<(), AwsError> {
        if ports.is_empty() {
            return Ok(());
        }
        let benign = if revoke {
            "InvalidPermission.NotFound"
        } else {
            "InvalidPermission.Duplicate"
        };
        // One call for all ports; if one port trips the benign error the whole call may have
        // been refused, so fall back to one call per port to learn which ones are ours.
        let result = match self.cli.call(&self.change_args(revoke, ports)) {
            Ok(_) => Ok(ports.iter().map(|p| (*p, true)).collect::<Vec<_>>()),
            Err(e) if e.code_is(benign) && ports.len() > 1 => {
                let mut each = Vec::new();
                for port in ports {
                    let one = BTreeSet::from([*port]);
                    match self.cli.call(&self.change_args(revoke, &one)) {
                        Ok(_) => each.push((*port, true)),
                        Err(e) if e.code_is(benign) => each.push((*port, false)),
                        Err(e) => {
                            self.record(revoke, &each);
                            return Err(e);
                        }
                    }
                }
                Ok(each)
            }
            Err(e) if e.code_is(benign) => Ok(vec![(*ports.first().expect("one port"), false)]),
            Err(e) => Err(e),
        }?;
        self.record(revoke, &result);
        Ok(())
    }

    fn record(&mut self, revoke: bool, results: &[(u16, bool)]) {
        for (port, changed) in results {
            if revoke {
                self.owned.remove(port);
            } else if *changed {
                self.owned.insert(*port);
            }
        }
    }
}

/// Knock ports (1000..=9999, single-port TCP rules open to 0.0.0.0/0) whose description is
/// exactly `description`, from `describe-security-groups` JSON.
pub fn own_ports(json: &str, group: &str, description: &str) -> Result<BTreeSet<u16>, AwsError> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| AwsError::Failed(format!("cannot parse describe-security-groups: {e}")))?;
    let groups = value["SecurityGroups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(found) = groups.iter().find(|g| g["GroupId"] == group) else {
        return Err(AwsError::Failed(format!(
            "security group {group} not found"
        )));
    };
    let mut ports = BTreeSet::new();
    for permission in found["IpPermissions"].as_array().into_iter().flatten() {
        let (Some(from), Some(to)) = (
            permission["FromPort"].as_u64(),
            permission["ToPort"].as_u64(),
        ) else {
            continue;
        };
        if permission["IpProtocol"] != "tcp"
            || from != to
            || !(u64::from(MIN_KNOCK_PORT)..=u64::from(MAX_KNOCK_PORT)).contains(&from)
        {
            continue;
        }
        let ours = permission["IpRanges"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["CidrIp"] == KNOCK_CIDR && r["Description"] == description);
        if ours {
            ports.insert(from as u16);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::doors::diff;
    use crate::server::rotation::retrying;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// A security group in memory that answers like EC2 does.
    #[derive(Default)]
    struct FakeGroup {
        rules: BTreeMap<u16, String>,
        calls: Vec<Vec<String>>,
        fail_next: Option<String>,
    }

    impl AwsCli for FakeGroup {
        fn call(&mut self, args: &[String]) -> Result<String, AwsError> {
            self.calls.push(args.to_vec());
            if let Some(text) = self.fail_next.take() {
                return Err(AwsError::Failed(text));
            }
            match args[1].as_str() {
                "describe-security-groups" => {
                    let permissions: Vec<Value> = self
                        .rules
                        .iter()
                        .map(|(port, desc)| {
                            json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                                   "IpRanges": [{"CidrIp": KNOCK_CIDR, "Description": desc}]})
                        })
                        .chain([json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                            "IpRanges": [{"CidrIp": "192.0.2.1/32", "Description": "knock-totp:web"}]})])
                        .collect();
                    Ok(json!({"SecurityGroups": [{"GroupId": args[3], "IpPermissions": permissions}]})
                        .to_string())
                }
                action => {
                    let perms: Value = serde_json::from_str(&args[5]).unwrap();
                    let items: Vec<(u16, String)> = perms
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let desc = p["IpRanges"][0]["Description"].as_str().unwrap_or("");
                            (p["FromPort"].as_u64().unwrap() as u16, desc.to_owned())
                        })
                        .collect();
                    if action.starts_with("authorize") {
                        if items.iter().any(|(p, _)| self.rules.contains_key(p)) {
                            return Err(AwsError::Failed(
                                "An error occurred (InvalidPermission.Duplicate) when calling \
                                 the AuthorizeSecurityGroupIngress operation"
                                    .into(),
                            ));
                        }
                        self.rules.extend(items);
                    } else {
                        if items.iter().any(|(p, _)| !self.rules.contains_key(p)) {
                            return Err(AwsError::Failed(
                                "An error occurred (InvalidPermission.NotFound)".into(),
                            ));
                        }
                        for (p, _) in items {
                            self.rules.remove(&p);
                        }
                    }
                    Ok("{}".into())
                }
            }
        }
    }

    fn set(ports: &[u16]) -> BTreeSet<u16> {
        ports.iter().copied().collect()
    }

    #[test]
    fn diff_at_a_boundary_opens_the_new_door_and_closes_the_old_one() {
        // Doors 4000/4180, 1000/2400, 5555/6666 before; the first one leaves and 7777/8888
        // arrives; 1000 is also wanted by the new door and must stay.
        let present = set(&[4000, 4180, 1000, 2400, 5555, 6666]);
        let desired = set(&[1000, 2400, 5555, 6666, 7777, 1000]);
        assert_eq!(
            diff(&desired, &present),
            PortDiff {
                authorize: set(&[7777]),
                revoke: set(&[4000, 4180]),
            }
        );
        assert!(diff(&present, &present).is_empty());
    }

    #[test]
    fn arguments_carry_ports_and_description_only() {
        let rules = KnockPortRules::new(FakeGroup::default(), "sg-1", "web");
        let args = rules.change_args(false, &set(&[4000, 4180]));
        assert_eq!(
            args[..4],
            [
                "ec2",
                "authorize-security-group-ingress",
                "--group-id",
                "sg-1"
            ]
        );
        assert_eq!(
            args[5],
            r#"[{"FromPort":4000,"IpProtocol":"tcp","IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"knock-totp:web"}],"ToPort":4000},{"FromPort":4180,"IpProtocol":"tcp","IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"knock-totp:web"}],"ToPort":4180}]"#
        );
        let aws = AwsCommand {
            program: "aws".into(),
            region: Some("eu-west-1".into()),
            profile: None,
        };
        assert!(aws
            .display(&rules.describe_args())
            .starts_with("aws --region eu-west-1 --output json ec2 describe-security-groups"));
    }

    #[test]
    fn refresh_sees_only_our_knock_port_rules() {
        let mut group = FakeGroup::default();
        group.rules.insert(4000, "knock-totp:web".into());
        group.rules.insert(5000, "knock-totp:db".into());
        group.rules.insert(6000, "knock-totp:web2".into());
        let mut rules = KnockPortRules::new(group, "sg-1", "web");
        assert_eq!(rules.refresh().unwrap(), set(&[4000]));
    }

    #[test]
    fn duplicates_and_missing_rules_count_as_success_without_stealing() {
        let mut group = FakeGroup::default();
        group.rules.insert(5000, "knock-totp:db".into());
        let mut rules = KnockPortRules::new(group, "sg-1", "web");
        rules.authorize(&set(&[4000, 5000])).unwrap();
        assert_eq!(rules.owned(), &set(&[4000]));
        assert_eq!(rules.cli().rules.len(), 2);
        // Only what we own is revoked: db's 5000 stays.
        let plan = rules.plan(&set(&[]));
        assert_eq!(plan.revoke, set(&[4000]));
        rules.revoke(&plan.revoke).unwrap();
        assert_eq!(
            rules.cli().rules.keys().copied().collect::<Vec<_>>(),
            [5000]
        );
        rules.revoke(&set(&[4000, 4001])).unwrap();
        assert!(rules.owned().is_empty());
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
            &mut |e: &AwsError| reports.push(e.to_string()),
            AwsError::is_permanent,
            || {
                attempts += 1;
                if attempts < 4 {
                    Err(AwsError::Failed("RequestLimitExceeded".into()))
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
        let failing = || Err::<(), _>(AwsError::Failed("ExpiredToken".into()));
        let result = retrying(
            Instant::now(),
            &mut |_| true,
            &mut |_| {},
            AwsError::is_permanent,
            failing,
        );
        assert!(result.is_err());
        let mut tries = 0;
        let missing = retrying(
            Instant::now() + Duration::from_secs(60),
            &mut |_| true,
            &mut |_| {},
            AwsError::is_permanent,
            || {
                tries += 1;
                Err::<(), _>(AwsError::Missing("aws: not found".into()))
            },
        );
        assert!(missing.is_err());
        assert_eq!(tries, 1);
    }
}
