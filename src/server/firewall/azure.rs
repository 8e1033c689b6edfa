//! Azure network security group rules through az: the knock range opened once, and a rule
//! per knocker at a priority no concurrent door holds.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{
    grant_description, grant_description_prefix, host_knock_range_drop, Backend, DoorCommands,
    FirewallError, FirewallKind, ProtectedPort,
};
use crate::core::ports::knock_range_text;

/// The Azure network security group the per-client rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureTarget {
    pub resource_group: String,
    pub nsg: String,
}

/// Door grants take priorities from this pool (inclusive): below the knock range's rule
/// (`KNOCK_RANGE_PRIORITY`), above the range admins usually give their own rules.
pub const GRANT_PRIORITIES: (u32, u32) = (1000, 3899);
/// The priority of the rule that opens the knock range.
pub const KNOCK_RANGE_PRIORITY: u32 = 3900;
/// How often a door tries another free priority when a concurrent door took its pick.
pub const GRANT_ATTEMPTS: u32 = 8;

impl AzureTarget {
    fn group_flags(&self) -> String {
        format!(
            "--resource-group {} --nsg-name {}",
            self.resource_group, self.nsg
        )
    }
}

/// The name of the rule a door creates for `%IP%` (`suffix` `-6` for IPv6).
fn door_rule_name(target: &ProtectedPort, suffix: &str) -> String {
    format!("kt-{}-$(echo %IP% | tr .: --){suffix}", target.cloud_id())
}

impl Backend for AzureTarget {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Azure
    }

    fn validate(&self) -> Result<(), FirewallError> {
        validate_cloud_name("resource group", &self.resource_group)?;
        validate_cloud_name("network security group", &self.nsg)
    }

    /// Inbound priorities must be unique in the NSG, and a fixed function of the address
    /// cannot be (a few thousand priorities, billions of addresses). So a door lists the
    /// priorities in use and takes the first free one in `GRANT_PRIORITIES`, starting at a
    /// point derived from the address (concurrent knockers rarely pick the same); if another
    /// door took it meanwhile, Azure refuses the rule (SecurityRuleConflict) and the door
    /// lists again and takes the next free one, up to `GRANT_ATTEMPTS` times. The rule is
    /// named after the server and the address and deleted by that name.
    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let group = self.group_flags();
        let (low, high) = GRANT_PRIORITIES;
        let pool = high - low + 1;
        // No '%' other than %IP% anywhere (knockd reads the text as a format), hence the
        // modulo through int().
        let create = |suffix: &str, bits: u8| {
            format!(
                "n={name}; s=$(echo %IP% | cksum | cut -d' ' -f1); \
                 for try in $(seq {GRANT_ATTEMPTS}); do \
                 p=$(az network nsg rule list {group} --query '[].priority' --output tsv | \
                 awk -v s=\"$s\" '{{ used[$1] = 1 }} END {{ for (i = 0; i < {pool}; i++) \
                 {{ p = {low} + (s + i) - int((s + i) / {pool}) * {pool}; \
                 if (!(p in used)) {{ print p; exit }} }} }}') && [ -n \"$p\" ] && \
                 az network nsg rule create {group} --name \"$n\" --priority \"$p\" \
                 --direction Inbound --access Allow --protocol Tcp \
                 --source-address-prefixes %IP%/{bits} --destination-port-ranges {port} \
                 --description \"{description}\" --output none && exit 0; sleep 1; done; exit 1",
                name = door_rule_name(target, suffix),
                port = target.port,
                description = grant_description(target),
            )
        };
        let delete = |suffix: &str| {
            format!(
                "az network nsg rule delete {group} --name {}",
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
        Some(format!(
            "# Once: let the knock range and port {port} reach the VM from anywhere, IPv4 and IPv6\n\
             # (the host decides who gets in). The VM needs no Azure permissions.\n\
             az network nsg rule create {group} \\\n\
             \x20 --name kt-{id}-open --priority {KNOCK_RANGE_PRIORITY} --direction Inbound --access Allow \\\n\
             \x20 --protocol Tcp --source-address-prefixes '*' \\\n\
             \x20 --destination-port-ranges {range} {port} --description {desc} --output none\n",
            port = target.port,
            group = self.group_flags(),
            id = target.cloud_id(),
            range = knock_range_text(),
            desc = target.description(),
        ))
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let (low, high) = GRANT_PRIORITIES;
        format!(
            "# 1. Port {port} must have no rule open to Internet/*. Once: let the knock range\n\
             #    {range} reach knockd from anywhere, IPv4 and IPv6 (never rotated: a firewall\n\
             #    that opens only the current door ports shows a scanner the doors).\n\
             az network nsg rule create {group} \\\n\
             \x20 --name kt-{id}-knocks --priority {KNOCK_RANGE_PRIORITY} --direction Inbound --access Allow \\\n\
             \x20 --protocol Tcp --source-address-prefixes '*' --destination-port-ranges {range} \\\n\
             \x20 --description {description} --output none\n\n\
             {host}\n\
             # 3. The VM's identity needs Microsoft.Network/networkSecurityGroups/securityRules/\n\
             #    read, write and delete on {nsg} (e.g. the Network Contributor role scoped to it).\n\
             # knockd's doors create a rule for the knocker's address only (kt-{id}-ADDRESS),\n\
             # described \"{prefix}<expiry>\", at a free priority in {low}-{high}, and delete it\n\
             # after open_seconds.\n",
            port = target.port,
            range = knock_range_text(),
            group = self.group_flags(),
            nsg = self.nsg,
            id = target.cloud_id(),
            description = target.description(),
            host = host_knock_range_drop(target, "2. "),
            prefix = grant_description_prefix(&target.server),
        )
    }
}
