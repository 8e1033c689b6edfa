//! The daemon's view of the Google Cloud firewall rules of one server's doors, through
//! `gcloud`.

use std::path::PathBuf;

use super::{
    command_line, delete_rules, review_named_grants, run_cli, CliError, GrantStore, Review,
};

const INSTALL_GCLOUD: &str = "the Google Cloud CLI";

/// The door grants of one server: rules named `kt-<id>-...` described with their expiry.
pub struct FirewallRules {
    pub program: PathBuf,
    /// `kt-<id>-`: how the name of every rule of this server begins.
    pub name_prefix: String,
    pub server: String,
}

impl FirewallRules {
    fn list_args(&self) -> Vec<String> {
        vec![
            "compute".into(),
            "firewall-rules".into(),
            "list".into(),
            format!("--filter=name~^{}", self.name_prefix),
            "--format=json".into(),
        ]
    }

    fn delete_args(&self, names: &[String]) -> Vec<String> {
        let mut args = vec!["compute".into(), "firewall-rules".into(), "delete".into()];
        args.extend(names.iter().cloned());
        args.push("--quiet".into());
        args
    }

    fn call(&self, args: &[String]) -> Result<String, CliError> {
        run_cli(
            &self.program,
            args,
            &[("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")],
            INSTALL_GCLOUD,
        )
    }
}

impl GrantStore for FirewallRules {
    fn place(&self) -> String {
        format!("GCP firewall rules {}*", self.name_prefix)
    }

    fn review(&mut self, now: i64) -> Result<Review, CliError> {
        let out = self.call(&self.list_args())?;
        review_named_grants(&out, &self.name_prefix, &self.server, now, &self.place())
    }

    fn revoke(&mut self, names: &[String]) -> Result<(), CliError> {
        delete_rules(names, "was not found", |names| {
            self.call(&self.delete_args(names))
        })
    }

    fn show_review(&self) -> String {
        command_line(&self.program, &self.list_args())
    }

    fn show_revoke(&self) -> String {
        command_line(&self.program, &self.delete_args(&["RULE-NAME".into()]))
    }

    fn manual_revoke(&self) -> String {
        "gcloud compute firewall-rules delete RULE-NAME".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let rules = FirewallRules {
            program: "gcloud".into(),
            name_prefix: "kt-web-abc123-".into(),
            server: "web".into(),
        };
        assert_eq!(
            rules.show_review(),
            "gcloud compute firewall-rules list --filter=name~^kt-web-abc123- --format=json"
        );
        assert_eq!(
            rules.delete_args(&["a".into(), "b".into()]),
            ["compute", "firewall-rules", "delete", "a", "b", "--quiet"]
        );
    }
}
