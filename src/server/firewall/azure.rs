//! Azure network security group rules through az: a rule per knocker.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{Backend, DoorCommands, FirewallError, FirewallKind, ProtectedPort};
use crate::core::ports::knock_range_text;

/// The Azure network security group the per-client rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureTarget {
    pub resource_group: String,
    pub nsg: String,
}

impl Backend for AzureTarget {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Azure
    }

    fn validate(&self) -> Result<(), FirewallError> {
        validate_cloud_name("resource group", &self.resource_group)?;
        validate_cloud_name("network security group", &self.nsg)
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let azure = self;
        let port = target.port;
        let rule = |suffix: &str| format!("kt-{}-$(echo %IP% | tr .: --){suffix}", target.slug());
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
        let delete =
            |suffix: &str| format!("az network nsg rule delete {group} --name {}", rule(suffix));
        DoorCommands {
            start: create("", 32, 1000),
            stop: Some(delete("")),
            start_6: Some(create("-6", 128, 2000)),
            stop_6: Some(delete("-6")),
        }
    }

    fn static_opening(&self, target: &ProtectedPort) -> Option<String> {
        Some(format!(
            "# Once: let the knock range and port {port} reach the VM from anywhere, IPv4 and IPv6\n\
             # (the host decides who gets in). The VM needs no Azure permissions.\n\
             az network nsg rule create --resource-group {rg} --nsg-name {nsg} \\\n\
             \x20 --name kt-{slug}-open --priority 3900 --direction Inbound --access Allow \\\n\
             \x20 --protocol Tcp --source-address-prefixes '*' \\\n\
             \x20 --destination-port-ranges {range} {port} --description {desc} --output none\n",
            port = target.port,
            rg = self.resource_group,
            nsg = self.nsg,
            slug = target.slug(),
            range = knock_range_text(),
            desc = target.description(),
        ))
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let azure = self;
        let port = target.port;
        let mut s = String::new();
        s.push_str(&format!(
                "# 1. Knocks must reach knockd. This lets TCP {range} through {nsg}; knockd sees\n\
                 #    knocks before the host firewall, so drop these ports on the host if anything\n\
                 #    listens there. Port {port} must have no rule open to Internet/*.\n\
                 az network nsg rule create --resource-group {rg} --nsg-name {nsg} \\\n\
                 \x20 --name kt-{slug}-knocks --priority 3900 --direction Inbound --access Allow \\\n\
                 \x20 --protocol Tcp --source-address-prefixes '*' --destination-port-ranges {range} \\\n\
                 \x20 --description {description} --output none\n\n\
                 # 2. The VM's identity needs Microsoft.Network/networkSecurityGroups/securityRules/\n\
                 #    write and delete on {nsg} (e.g. the Network Contributor role scoped to it).\n\
                 # 3. knockd's doors create a rule for the knocker's address only and delete it.\n",
                rg = azure.resource_group,
                nsg = azure.nsg,
                slug = target.slug(),
                range = knock_range_text(),
                description = target.description(),
            ));
        s
    }
}
