//! What `setup` writes for a server: each file's title, place on the server, name under
//! `--out`, contents and mode. The files that hold the secret or the current code are rendered
//! only once the secret is known.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::core::secret::SecretKey;
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::error::UserError;
use crate::server::config::ServerConfig;
use crate::server::engine::knockd::conf::render_knockd_conf;
use crate::server::engine::knockd::host_drop::knock_range_drop_ruleset;
use crate::server::engine::knockd::{knockd_door, knockd_options};
use crate::server::engine::nftables::{self, ruleset::base_ruleset};
use crate::server::engine::{design, AtBoot};
use crate::server::firewall::Firewall;
use crate::server::paths;
use crate::server::systemd;

/// The one-time firewall script's name under --out.
pub const FIREWALL_SCRIPT_FILE: &str = "firewall-setup.sh";

/// Names under --out of the files that can only be rendered once the secret is known.
pub const KNOCKD_CONF_FILE: &str = "knockd.conf";
pub fn secret_file_name(name: &str) -> String {
    format!("{name}.secret")
}
/// With --out, the otpauth URI (it holds the secret) for the clients and the phone.
pub fn uri_file_name(name: &str) -> String {
    format!("{name}.otpauth")
}

/// One generated file: where it goes on the server, its name under --out, text and mode.
pub struct Artifact {
    pub title: &'static str,
    /// Path on the server (shown in print mode; `None` for admin-only files).
    pub server_path: Option<PathBuf>,
    pub file_name: String,
    pub contents: Zeroizing<String>,
    pub mode: u32,
}

/// Every file that holds no secret (`add_secret_artifacts` adds the others once the secret
/// is known). The daemon's unit runs `executable`.
pub fn public_artifacts(
    config: &ServerConfig,
    firewall: &Firewall,
    executable: &Path,
) -> anyhow::Result<Vec<Artifact>> {
    let name = &config.name;
    let config_path = ServerConfig::default_path(name);
    let mut artifacts = vec![Artifact {
        title: "server configuration",
        server_path: Some(config_path.clone()),
        file_name: format!("{name}.toml"),
        contents: Zeroizing::new(config.to_toml()),
        mode: 0o644,
    }];
    let design = design(config.engine);
    let setup_script = design.setup_script(config, firewall);
    let at_boot = design.at_boot(firewall);
    artifacts.push(Artifact {
        title: "one-time firewall setup, run as root",
        // The base unit runs it again at every boot from its place on the server.
        server_path: (at_boot == AtBoot::FirewallScript)
            .then(|| paths::host_firewall_script_path(name)),
        file_name: FIREWALL_SCRIPT_FILE.into(),
        contents: Zeroizing::new(setup_script),
        mode: 0o644,
    });
    // What the base unit loads at boot (NAME.nft), if not the script, and the unit's title.
    let (ruleset, unit_title) = match at_boot {
        AtBoot::BaseTable => (
            Some((
                "the base table: port closed, no doors (loaded at boot)",
                base_ruleset(&nftables::params(config)),
            )),
            "systemd unit that closes the port at boot, before sshd",
        ),
        AtBoot::FirewallScript => (
            None,
            "systemd unit that runs the firewall script again at boot, before sshd",
        ),
        AtBoot::KnockRangeDrop => (
            Some((
                "the host's drop of the knock range the cloud firewall opens (loaded at boot)",
                knock_range_drop_ruleset(name),
            )),
            "systemd unit that drops the knock range at boot, before the network is up",
        ),
    };
    if let Some((ruleset_title, ruleset)) = ruleset {
        artifacts.push(Artifact {
            title: ruleset_title,
            server_path: Some(paths::base_ruleset_path(name)),
            file_name: format!("{name}.nft"),
            contents: Zeroizing::new(ruleset),
            mode: 0o644,
        });
    }
    artifacts.push(Artifact {
        title: unit_title,
        server_path: Some(PathBuf::from(format!(
            "/etc/systemd/system/{}",
            paths::base_unit_name(name)
        ))),
        file_name: paths::base_unit_name(name),
        contents: Zeroizing::new(systemd::base_unit(config, firewall)),
        mode: 0o644,
    });
    let policy = design
        .calls_the_cloud()
        .then(|| firewall.backend().credentials_policy())
        .flatten();
    if let Some(policy) = policy {
        artifacts.push(Artifact {
            title: policy.title,
            server_path: None,
            file_name: policy.file_name.into(),
            contents: Zeroizing::new(policy.text),
            mode: 0o644,
        });
    }
    artifacts.push(Artifact {
        title: "systemd unit for `knock-totp server`",
        server_path: Some(PathBuf::from(format!(
            "/etc/systemd/system/{}",
            paths::daemon_unit_name(name)
        ))),
        file_name: paths::daemon_unit_name(name),
        contents: Zeroizing::new(systemd::unit(config, &config_path, executable)),
        mode: 0o644,
    });
    Ok(artifacts)
}

/// Adds the files that hold the secret or the current code: the secret file first, and with
/// the knockd engine an example knockd.conf for `window` after the server configuration.
pub fn add_secret_artifacts(
    artifacts: &mut Vec<Artifact>,
    config: &ServerConfig,
    secret: &SecretKey,
    totp: &Totp,
    window: Window,
) -> anyhow::Result<()> {
    let mut secret_file = Zeroizing::new(secret.to_base32().as_str().to_owned());
    secret_file.push('\n');
    artifacts.insert(
        0,
        Artifact {
            title: "secret (root only)",
            server_path: Some(config.secret_file.clone()),
            file_name: secret_file_name(&config.name),
            contents: secret_file,
            mode: 0o600,
        },
    );
    if let Some(conf_path) = &config.knockd_conf {
        let door = knockd_door(config, window, totp.ports_for(window));
        let knockd_conf = render_knockd_conf(&knockd_options(config), &[door])
            .map_err(|e| UserError::usage(e.to_string()))?;
        artifacts.insert(
            2,
            Artifact {
                title: "knockd.conf (an example for the current window; `knock-totp server` \
                        rewrites it)",
                server_path: Some(conf_path.clone()),
                file_name: KNOCKD_CONF_FILE.into(),
                // The doors' ports are the current code: not for other local users.
                contents: Zeroizing::new(knockd_conf),
                mode: 0o600,
            },
        );
    }
    Ok(())
}

/// With --out, the otpauth URI in a file of its own (0600), for the clients and the phone.
pub fn uri_artifact(name: &str, uri: &Zeroizing<String>) -> Artifact {
    let mut contents = Zeroizing::new(uri.as_str().to_owned());
    contents.push('\n');
    Artifact {
        title: "otpauth URI, for the clients and the authenticator app",
        server_path: None,
        file_name: uri_file_name(name),
        contents,
        mode: 0o600,
    }
}
