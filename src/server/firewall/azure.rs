//! Azure network security group rules through az: the knock range opened once, and a rule
//! per knocker at a priority no concurrent door holds.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{
    cloud_rule_name, door_rule_name, grant_description, grant_description_prefix, Backend,
    DoorCommands, FirewallError, FromSettings, HostDrop, ProtectedPort, SettingsSource,
};
use crate::core::ports::knock_range_text;
use crate::server::cloud::azure::NsgRules;
use crate::server::cloud::GrantStore;
use crate::server::cloud::KNOCK_RANGE_RULE;

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

/// The application security group that holds this server's VM: every rule of this server
/// names it as its destination, so a knock on one VM opens nothing on the other VMs behind
/// the same NSG (a subnet's NSG, or two servers sharing one).
fn asg(target: &ProtectedPort) -> String {
    format!("kt-{}", target.cloud_id())
}

/// The one-time commands that put the VM's network interface into the server's application
/// security group.
fn asg_steps(azure: &AzureTarget, target: &ProtectedPort) -> String {
    format!(
        "az network asg create --resource-group {rg} --name {asg} --output none\n\
         az network nic ip-config update --resource-group {rg} --nic-name NIC --name IPCONFIG \\\n\
         \x20 --application-security-groups {asg} --output none\n",
        rg = azure.resource_group,
        asg = asg(target),
    )
}

impl FromSettings for AzureTarget {
    fn from_settings<S: SettingsSource + ?Sized>(source: &S) -> Result<Self, S::Error> {
        source.azure()
    }
}

impl Backend for AzureTarget {
    fn settings_key(&self) -> &'static str {
        "azure"
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
                 --source-address-prefixes %IP%/{bits} --destination-asgs {asg} \
                 --destination-port-ranges {port} --description \"{description}\" --output none && exit 0; sleep 1; done; exit 1",
                name = door_rule_name(target, suffix),
                asg = asg(target),
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
            "# Once: put the VM in this server's application security group (replace NIC and\n\
             # IPCONFIG with its network interface and IP configuration, e.g. ipconfig1), then let\n\
             # the knock range and port {port} reach it from anywhere, IPv4 and IPv6 (the host\n\
             # decides who gets in). The VM needs no Azure permissions. If another server's rule\n\
             # holds priority {KNOCK_RANGE_PRIORITY} in this NSG, choose a free one up to 4096.\n\
             {asg_steps}\
             az network nsg rule create {group} \\\n\
             \x20 --name {open} --priority {KNOCK_RANGE_PRIORITY} --direction Inbound --access Allow \\\n\
             \x20 --protocol Tcp --source-address-prefixes '*' --destination-asgs {asg} \\\n\
             \x20 --destination-port-ranges {range} {port} --description {desc} --output none\n",
            port = target.port,
            asg_steps = asg_steps(self, target),
            group = self.group_flags(),
            open = cloud_rule_name(target, "open"),
            asg = asg(target),
            range = knock_range_text(),
            desc = target.description(),
        ))
    }

    fn setup_steps(&self, target: &ProtectedPort, host_drop: HostDrop) -> String {
        let (low, high) = GRANT_PRIORITIES;
        format!(
            "# 1. Put the VM in this server's application security group, so only it gets the\n\
             #    rules (replace NIC and IPCONFIG with its network interface and IP configuration,\n\
             #    e.g. ipconfig1).\n\
             {asg_steps}\n\
             # 2. Port {port} must have no rule open to Internet/*. Once: let the knock range\n\
             #    {range} reach knockd from anywhere, IPv4 and IPv6 (never rotated: a firewall\n\
             #    that opens only the current door ports shows a scanner the doors). If another\n\
             #    server's rule holds priority {KNOCK_RANGE_PRIORITY} in this NSG, choose a free one up to 4096.\n\
             az network nsg rule create {group} \\\n\
             \x20 --name {knocks} --priority {KNOCK_RANGE_PRIORITY} --direction Inbound --access Allow \\\n\
             \x20 --protocol Tcp --source-address-prefixes '*' --destination-asgs {asg} \\\n\
             \x20 --destination-port-ranges {range} --description {description} --output none\n\n\
             {host}\n\
             # 4. The VM's identity needs Microsoft.Network/networkSecurityGroups/securityRules/\n\
             #    read, write and delete on {nsg}, and join on the application security group\n\
             #    (e.g. the Network Contributor role scoped to the resource group).\n\
             # knockd's doors create a rule for the knocker's address only ({address_rule}, to\n\
             # {asg}), described \"{prefix}<expiry>\", at a free priority in {low}-{high}, and\n\
             # delete it after open_seconds.\n",
            asg_steps = asg_steps(self, target),
            port = target.port,
            range = knock_range_text(),
            group = self.group_flags(),
            nsg = self.nsg,
            knocks = cloud_rule_name(target, KNOCK_RANGE_RULE),
            address_rule = cloud_rule_name(target, "ADDRESS"),
            asg = asg(target),
            description = target.description(),
            host = host_drop("3. "),
            prefix = grant_description_prefix(&target.server),
        )
    }

    fn grant_store(&self, target: &ProtectedPort) -> Option<Box<dyn GrantStore>> {
        Some(Box::new(NsgRules {
            program: "az".into(),
            resource_group: self.resource_group.clone(),
            nsg: self.nsg.clone(),
            name_prefix: cloud_rule_name(target, ""),
            server: target.server.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::firewall::sample_target;

    fn azure() -> AzureTarget {
        AzureTarget {
            resource_group: "rg1".into(),
            nsg: "shared-nsg".into(),
        }
    }

    #[test]
    fn each_server_s_grants_reach_its_own_vm_only() {
        // Two servers behind one NSG whose names shared their first 16 characters: their
        // door rules had one name, and with no destination a grant opened every VM.
        let (one, two) = (
            sample_target("production-web-01"),
            sample_target("production-web-02"),
        );
        let (c1, c2) = (azure().door_commands(&one), azure().door_commands(&two));
        assert_ne!(asg(&one), asg(&two));
        for (c, own, other) in [(&c1, &one, &two), (&c2, &two, &one)] {
            for start in [&c.start, c.start_6.as_ref().unwrap()] {
                assert!(
                    start.contains(&format!("--destination-asgs {} ", asg(own))),
                    "{start}"
                );
                assert!(!start.contains(&other.cloud_id()), "{start}");
            }
        }
        assert_ne!(c1.stop, c2.stop);
        let setup = azure().setup_steps(&one, &crate::server::firewall::tests::host_drop);
        assert!(setup.contains(&format!(
            "az network asg create --resource-group rg1 --name {}",
            asg(&one)
        )));
        assert!(setup.contains(&format!("--application-security-groups {} ", asg(&one))));
        assert_eq!(setup.matches("--destination-asgs").count(), 1, "{setup}");
    }

    #[test]
    fn azure_names_fit() {
        // Rule names: 1-80 characters, letters, digits, '_', '.', '-', starting with a
        // letter or digit and ending with a letter, digit or '_'.
        let t = sample_target(&"x".repeat(63));
        let name = door_rule_name(&t, "-6").replace(
            "$(echo %IP% | tr .: --)",
            "ffff-ffff-ffff-ffff-ffff-ffff-ffff-ffff",
        );
        assert!(name.len() <= 80, "{name}");
        assert!(asg(&t).len() <= 80);
    }
}
