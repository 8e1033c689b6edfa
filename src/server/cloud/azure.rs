//! The daemon's view of the rules of one server's doors in an Azure network security group,
//! through `az`.

use std::path::PathBuf;

use super::{command_line, review_named_grants, run_cli, CliError, GrantStore, Review};

const INSTALL_AZ: &str = "the Azure CLI, e.g. `pip install azure-cli`";

/// The door grants of one server in one NSG: rules named `kt-<id>-...` described with their
/// expiry.
pub struct NsgRules {
    pub program: PathBuf,
    pub resource_group: String,
    pub nsg: String,
    /// `kt-<id>-`: how the name of every rule of this server begins.
    pub name_prefix: String,
    pub server: String,
}

impl NsgRules {
    fn rule_args(&self, verb: &str) -> Vec<String> {
        vec![
            "network".into(),
            "nsg".into(),
            "rule".into(),
            verb.into(),
            "--resource-group".into(),
            self.resource_group.clone(),
            "--nsg-name".into(),
            self.nsg.clone(),
        ]
    }

    fn list_args(&self) -> Vec<String> {
        let mut args = self.rule_args("list");
        args.extend(["--output".into(), "json".into()]);
        args
    }

    fn delete_args(&self, name: &str) -> Vec<String> {
        let mut args = self.rule_args("delete");
        args.extend([
            "--name".into(),
            name.into(),
            "--output".into(),
            "none".into(),
        ]);
        args
    }

    fn call(&self, args: &[String]) -> Result<String, CliError> {
        run_cli(
            &self.program,
            args,
            &[("AZURE_CORE_NO_COLOR", "1")],
            INSTALL_AZ,
        )
    }
}

impl GrantStore for NsgRules {
    fn place(&self) -> String {
        format!(
            "network security group {} (resource group {})",
            self.nsg, self.resource_group
        )
    }

    fn review(&mut self, now: i64) -> Result<Review, CliError> {
        let out = self.call(&self.list_args())?;
        review_named_grants(&out, &self.name_prefix, &self.server, now, &self.place())
    }

    /// One call per rule (az deletes one at a time); a rule already gone is not an error.
    fn revoke(&mut self, names: &[String]) -> Result<(), CliError> {
        for name in names {
            match self.call(&self.delete_args(name)) {
                Err(e) if !(e.says("NotFound") || e.says("not found")) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn show_review(&self) -> String {
        command_line(&self.program, &self.list_args())
    }

    fn show_revoke(&self) -> String {
        command_line(&self.program, &self.delete_args("RULE-NAME"))
    }

    fn manual_revoke(&self) -> String {
        format!(
            "az network nsg rule delete --resource-group {} --nsg-name {} --name RULE-NAME",
            self.resource_group, self.nsg
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let rules = NsgRules {
            program: "az".into(),
            resource_group: "rg1".into(),
            nsg: "web-nsg".into(),
            name_prefix: "kt-web-abc123-".into(),
            server: "web".into(),
        };
        assert_eq!(
            rules.show_review(),
            "az network nsg rule list --resource-group rg1 --nsg-name web-nsg --output json"
        );
        assert_eq!(
            rules.show_revoke(),
            "az network nsg rule delete --resource-group rg1 --nsg-name web-nsg --name \
             RULE-NAME --output none"
        );
    }
}
