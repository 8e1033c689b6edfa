//! The cloud CLIs the knockd engine runs to sweep its door grants (aws, gcloud, az), each
//! behind [`GrantStore`].

pub mod aws;
pub mod azure;
pub mod gcp;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The rule description that marks a server's own rules, so servers can share a group.
pub fn rule_description(name: &str) -> String {
    format!("knock-totp:{name}")
}

/// How the description of a door's grant in a cloud firewall begins; the expiry follows as
/// RFC 3339 in UTC (`knock-totp:web until 2026-01-02T03:04:05+00:00`), so the daemon can
/// revoke a grant the door failed to, and never an admin's rule for the same address.
pub fn grant_description_prefix(name: &str) -> String {
    format!("{} until ", rule_description(name))
}

/// Whether a rule described `description` is a door grant of server `name`, and whether its
/// expiry has passed at unix time `now` (an expiry that cannot be read has).
pub fn grant_expired(description: &str, name: &str, now: i64) -> Option<bool> {
    let expiry = description.strip_prefix(&grant_description_prefix(name))?;
    let expires = expiry.trim().parse::<jiff::Timestamp>().ok();
    Some(expires.is_none_or(|t| t.as_second() <= now))
}

/// What follows the server's rule-name prefix in the name of the GCP or Azure rule that lets
/// the knock range in (`kt-<id>-knocks`).
pub const KNOCK_RANGE_RULE: &str = "knocks";

/// Why a cloud CLI call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The CLI cannot be started at all: retrying will not help.
    #[error("{0}")]
    Missing(String),
    /// The call ran and failed; the text is the CLI's own error message.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The CLI cannot run at all: retrying will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Missing(_))
    }

    /// Whether the CLI's message holds `text` (an error code such as `NotFound`).
    pub fn says(&self, text: &str) -> bool {
        matches!(self, Self::Failed(message) if message.contains(text))
    }
}

/// Runs `program` with `args` (stdin closed) and returns its stdout; `install` says how to
/// get the program when it cannot be started (`e.g. pip install awscli`).
pub fn run_cli<I, S>(
    program: &Path,
    args: I,
    env: &[(&str, &str)],
    install: &str,
) -> Result<String, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            let name = program.file_name().unwrap_or(program.as_os_str());
            CliError::Missing(format!(
                "cannot run the {} CLI ({}: {e}): install it ({install}) or put it on PATH",
                name.to_string_lossy(),
                program.display()
            ))
        })?;
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
    Err(CliError::Failed(if text.is_empty() {
        format!("{} exited with {}", program.display(), output.status)
    } else {
        text
    }))
}

/// A word as a POSIX shell reads it back, for the command lines `--dry-run` prints.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@~^".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a cloud firewall holds of one server at a rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// Door grants whose expiry has passed (or cannot be read): their door failed to delete
    /// them.
    pub expired: Vec<String>,
    /// Door grants still running.
    pub live: Vec<String>,
    /// Rules older versions left that must go too (AWS's rotated knock rules).
    pub leftovers: Vec<String>,
    /// What in the firewall defeats the design, said loudly at the first rotation.
    pub problems: Vec<String>,
}

impl Review {
    /// The rules to delete now.
    pub fn to_revoke(&self) -> Vec<String> {
        let mut ids = self.leftovers.clone();
        ids.extend(self.expired.iter().cloned());
        ids
    }

    /// Every rule of ours, for a daemon that stops (fail closed).
    pub fn everything(&self) -> Vec<String> {
        let mut ids = self.to_revoke();
        ids.extend(self.live.iter().cloned());
        ids
    }
}

/// Sorts a JSON list of rules (gcloud's and az's both have `name` and `description`) for
/// server `name` at unix time `now`: only rules named `name_prefix...` and described as its
/// grants are selected. The rule `<name_prefix>knocks`, which lets the knock range in, must be
/// there: without it knocks never reach knockd, which `place` names as a problem.
pub fn review_named_grants(
    json: &str,
    name_prefix: &str,
    name: &str,
    now: i64,
    place: &str,
) -> Result<Review, CliError> {
    let rules: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| CliError::Failed(format!("cannot parse the rule list: {e}")))?;
    let Some(rules) = rules.as_array() else {
        return Err(CliError::Failed("the rule list is not a list".into()));
    };
    let mut review = Review::default();
    let knocks = format!("{name_prefix}{KNOCK_RANGE_RULE}");
    if !rules.iter().any(|rule| rule["name"] == knocks.as_str()) {
        review.problems.push(format!(
            "{place} has no rule {knocks}: knocks cannot reach knockd (run the knock-range \
             commands of firewall-setup.sh once)"
        ));
    }
    for rule in rules {
        let Some(rule_name) = rule["name"].as_str() else {
            continue;
        };
        if !rule_name.starts_with(name_prefix) {
            continue;
        }
        let description = rule["description"].as_str().unwrap_or("");
        match grant_expired(description, name, now) {
            Some(true) => review.expired.push(rule_name.to_owned()),
            Some(false) => review.live.push(rule_name.to_owned()),
            None => {}
        }
    }
    Ok(review)
}

/// Deletes the rules `ids` with one call of `delete`; when one of them is already gone (a
/// door's own stop command got there first), the CLI deletes none and says `gone`, so each is
/// deleted by a call of its own. A rule already gone counts as deleted.
pub fn delete_rules(
    ids: &[String],
    gone: &str,
    mut delete: impl FnMut(&[String]) -> Result<String, CliError>,
) -> Result<(), CliError> {
    if ids.is_empty() {
        return Ok(());
    }
    match delete(ids) {
        Err(e) if e.says(gone) && ids.len() > 1 => {
            for id in ids {
                match delete(std::slice::from_ref(id)) {
                    Err(e) if !e.says(gone) => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) if !e.says(gone) => Err(e),
        _ => Ok(()),
    }
}

/// A command line as `--dry-run` prints it.
pub fn command_line(program: &Path, args: &[String]) -> String {
    let mut words = vec![program.display().to_string()];
    words.extend(args.iter().map(|a| shell_quote(a)));
    words.join(" ")
}

/// One server's door grants in a cloud firewall, which the knockd engine sweeps: a grant
/// carries its expiry in its description, so one whose door never deleted it (knockd
/// restarted, the CLI failed) still goes.
pub trait GrantStore {
    /// The firewall, for messages: `security group sg-0123abcd`.
    fn place(&self) -> String;

    /// Reads the firewall and sorts this server's rules at unix time `now`. Rules without
    /// our description, an admin's for instance, are never selected.
    fn review(&mut self, now: i64) -> Result<Review, CliError>;

    /// Deletes the rules `ids`; one already gone counts as deleted.
    fn revoke(&mut self, ids: &[String]) -> Result<(), CliError>;

    /// The command lines `review` and `revoke` run, for `--dry-run`.
    fn show_review(&self) -> String;
    fn show_revoke(&self) -> String;

    /// How to delete grants by hand when the daemon could not.
    fn manual_revoke(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn at(t: i64) -> String {
        jiff::Timestamp::from_second(t).unwrap().to_string()
    }

    #[test]
    fn grant_expiry_from_the_description() {
        let now = NOW;
        let at = |t: i64| format!("knock-totp:web until {}", at(t));
        assert_eq!(grant_expired(&at(now + 5), "web", now), Some(false));
        assert_eq!(grant_expired(&at(now), "web", now), Some(true));
        assert_eq!(
            grant_expired("knock-totp:web until soon", "web", now),
            Some(true)
        );
        assert_eq!(grant_expired(&at(now - 5), "web2", now), None);
        assert_eq!(grant_expired("knock-totp:web", "web", now), None);
        assert_eq!(grant_expired("ssh from the office", "web", now), None);
    }

    #[test]
    fn selects_only_our_grants() {
        let json = serde_json::json!([
            {"name": "kt-web-abc123-10-0-0-1", "description": format!("knock-totp:web until {}", at(NOW - 1))},
            {"name": "kt-web-abc123-10-0-0-2", "description": format!("knock-totp:web until {}", at(NOW + 60))},
            {"name": "kt-web-abc123-10-0-0-3", "description": "knock-totp:web until garbage"},
            {"name": "kt-web-abc123-knocks", "description": "knock-totp:web"},
            {"name": "kt-web-abc123-10-0-0-4"},
            {"name": "kt-web2-def456-10-0-0-1", "description": format!("knock-totp:web2 until {}", at(NOW - 1))},
            {"name": "office-ssh", "description": format!("knock-totp:web until {}", at(NOW - 1))},
        ])
        .to_string();
        let review = review_named_grants(&json, "kt-web-abc123-", "web", NOW, "here").unwrap();
        assert_eq!(
            review.expired,
            ["kt-web-abc123-10-0-0-1", "kt-web-abc123-10-0-0-3"]
        );
        assert_eq!(review.live, ["kt-web-abc123-10-0-0-2"]);
        assert!(review.leftovers.is_empty() && review.problems.is_empty());
        let without_knocks = json.replace("kt-web-abc123-knocks", "kt-web-abc123-old");
        let review =
            review_named_grants(&without_knocks, "kt-web-abc123-", "web", NOW, "here").unwrap();
        assert_eq!(
            review.problems,
            [
                "here has no rule kt-web-abc123-knocks: knocks cannot reach knockd (run the \
              knock-range commands of firewall-setup.sh once)"
            ]
        );
        assert!(review_named_grants("{}", "kt-", "web", NOW, "here").is_err());
    }

    #[test]
    fn missing_program_is_permanent() {
        let err = run_cli(
            Path::new("/nonexistent/knock-totp-cli"),
            ["x"],
            &[],
            "from its vendor",
        )
        .unwrap_err();
        assert!(err.is_permanent());
        let text = err.to_string();
        assert!(
            text.starts_with("cannot run the knock-totp-cli CLI (/nonexistent/knock-totp-cli: "),
            "{text}"
        );
        assert!(
            text.ends_with("install it (from its vendor) or put it on PATH"),
            "{text}"
        );
        let err = run_cli(Path::new("false"), ["x"], &[], "").unwrap_err();
        assert!(!err.is_permanent() && err.to_string().contains("exited with"));
    }
}
