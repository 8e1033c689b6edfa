//! Google Cloud firewall rules through gcloud: a rule per knocker, tagged for this server.

use serde::{Deserialize, Serialize};

use super::validate_cloud_name;
use super::{Backend, DoorCommands, FirewallError, FirewallKind, ProtectedPort};
use crate::core::ports::knock_range_text;

/// The GCP VPC network the per-client firewall rules are created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpTarget {
    pub network: String,
}

impl Backend for GcpTarget {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Gcp
    }

    fn validate(&self) -> Result<(), FirewallError> {
        validate_cloud_name("network", &self.network)
    }

    fn door_commands(&self, target: &ProtectedPort) -> DoorCommands {
        let gcp = self;
        let port = target.port;
        // Rule names allow [a-z0-9-] only: dots and colons of the address become dashes.
        let rule = |suffix: &str| format!("kt-{}-$(echo %IP% | tr .: --){suffix}", target.slug());
        let create = |suffix: &str, bits: u8| {
            format!(
                "gcloud compute firewall-rules create {} --network={} --direction=INGRESS \
                     --action=ALLOW --rules=tcp:{port} --source-ranges=%IP%/{bits} \
                     --target-tags=knock-totp-{} --description={} --quiet",
                rule(suffix),
                gcp.network,
                target.slug(),
                target.description()
            )
        };
        let delete = |suffix: &str| {
            format!(
                "gcloud compute firewall-rules delete {} --quiet",
                rule(suffix)
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
        let slug = target.slug();
        let mut s = format!(
            "# Once: tag the instance (replace INSTANCE and ZONE), then let the knock range and\n\
             # port {port} reach it from anywhere, IPv4 and IPv6 (the host decides who gets in).\n\
             gcloud compute instances add-tags INSTANCE --zone=ZONE --tags=knock-totp-{slug}\n",
            port = target.port
        );
        for (suffix, ranges) in [("", "0.0.0.0/0"), ("-6", "::/0")] {
            s.push_str(&format!(
                "gcloud compute firewall-rules create kt-{slug}-open{suffix} --network={network} \\\n\
                 \x20 --direction=INGRESS --action=ALLOW --rules=tcp:{range},tcp:{port} \\\n\
                 \x20 --source-ranges={ranges} --target-tags=knock-totp-{slug} --description={desc}\n",
                network = self.network,
                range = knock_range_text(),
                port = target.port,
                desc = target.description(),
            ));
        }
        Some(s)
    }

    fn setup_steps(&self, target: &ProtectedPort) -> String {
        let gcp = self;
        let port = target.port;
        let mut s = String::new();
        let slug = target.slug();
        s.push_str(&format!(
                "# 1. Tag the instance so only it gets the rules (replace INSTANCE and ZONE).\n\
                 gcloud compute instances add-tags INSTANCE --zone=ZONE --tags=knock-totp-{slug}\n\n\
                 # 2. Knocks must reach knockd. This lets TCP {range} reach the instance; knockd\n\
                 #    sees knocks before the host firewall, so drop these ports on the host if\n\
                 #    anything listens there. Port {port} must have no 0.0.0.0/0 rule.\n\
                 gcloud compute firewall-rules create kt-{slug}-knocks --network={network} --direction=INGRESS \\\n\
                 \x20 --action=ALLOW --rules=tcp:{range} --source-ranges=0.0.0.0/0 \\\n\
                 \x20 --target-tags=knock-totp-{slug} --description={description}\n\n\
                 # 3. knockd's doors create a rule for the knocker's address only and delete it.\n",
                network = gcp.network,
                range = knock_range_text(),
                description = target.description(),
            ));
        s
    }
}
