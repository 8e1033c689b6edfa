//! The systemd units that run `knock-totp server`: one per server, and the packaged template.

use std::path::{Path, PathBuf};

use crate::server::config::{EngineKind, ServerConfig, SECRET_CREDENTIAL, SERVER_DIR};
use crate::server::firewall::Firewall;

/// A hardened systemd unit running `knock-totp server` with this config at `config_path`.
pub fn unit(config: &ServerConfig, config_path: &Path, executable: &str) -> String {
    // The knockd engine rewrites knockd.conf; the nftables engine writes no file at all.
    let writable = match &config.knockd_conf {
        Some(conf) => format!(
            "ReadWritePaths={}\n",
            conf.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "/".into())
        ),
        None => String::new(),
    };
    // What the daemon drives, and what it needs beyond inet sockets (nft talks netlink).
    let (what, after, families) = match config.engine {
        EngineKind::Knockd => ("rewrites knockd's doors", "knockd.service".to_owned(), ""),
        EngineKind::Nftables => (
            "replaces the doors in the kernel",
            base_unit_name(&config.name),
            " AF_NETLINK",
        ),
    };
    format!(
        "# knock-totp rotation daemon for {name}: {what} at every TOTP window.\n\
         # Install as /etc/systemd/system/knock-totp-{name}.service, then\n\
         # `systemctl daemon-reload && systemctl enable --now knock-totp-{name}`.\n\
         [Unit]\n\
         Description=knock-totp rotation daemon for {name}\n\
         Documentation=man:knock-totp(1)\n\
         Wants=network-online.target\n\
         After=network-online.target {after}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={executable} server --config {config}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # The secret reaches the daemon as $CREDENTIALS_DIRECTORY/{SECRET_CREDENTIAL}, readable by it alone.\n\
         LoadCredential={SECRET_CREDENTIAL}:{secret}\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         {writable}\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictSUIDSGID=yes\n\
         RestrictRealtime=yes\n\
         RestrictNamespaces=yes\n\
         LockPersonality=yes\n\
         SystemCallArchitectures=native\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6{families}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = config.name,
        config = config_path.display(),
        secret = config.secret_file.display(),
    )
}

/// The packaged template unit `knock-totp-server@.service`: instance NAME runs
/// `/etc/knock-totp/NAME.toml` with the secret `/etc/knock-totp/NAME.secret`.
pub fn template_unit(executable: &str) -> String {
    let template = ServerConfig::new("%i", 22, EngineKind::Knockd, "eth0", &Firewall::Iptables);
    let config = Path::new(SERVER_DIR).join("%i.toml");
    unit(&template, &config, executable).replace(
        "Install as /etc/systemd/system/knock-totp-%i.service, then\n\
             # `systemctl daemon-reload && systemctl enable --now knock-totp-%i`.",
        "Packaged template: for server NAME (/etc/knock-totp/NAME.toml), run\n\
             # `systemctl enable --now knock-totp-server@NAME`.",
    )
}

/// The oneshot unit that loads the nftables engine's base table at boot.
pub fn base_unit_name(name: &str) -> String {
    format!("knock-totp-{name}-base.service")
}

/// Where `setup` puts the nftables engine's base table (no doors, the port closed).
pub fn base_ruleset_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR).join(format!("{name}.nft"))
}

/// Closes the protected port at boot, before the network and sshd are up, without our
/// binary: nft loads the base table (the daemon adds the doors once it runs).
pub fn base_unit(config: &ServerConfig) -> String {
    format!(
        "# knock-totp base firewall for {name}: port {port} closed to all but knockers, from boot on.\n\
         # Install as /etc/systemd/system/{unit}, then `systemctl enable {unit}`.\n\
         [Unit]\n\
         Description=knock-totp base firewall for {name} (port {port} closed until knocked)\n\
         Documentation=man:knock-totp(1)\n\
         DefaultDependencies=no\n\
         Wants=network-pre.target\n\
         Before=network-pre.target shutdown.target ssh.service sshd.service\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={NFT_PROGRAM} -f {ruleset}\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n",
        name = config.name,
        port = config.port,
        unit = base_unit_name(&config.name),
        ruleset = base_ruleset_path(&config.name).display(),
    )
}

/// nft's path on Debian and its derivatives (units need an absolute path).
pub const NFT_PROGRAM: &str = "/usr/sbin/nft";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::DEFAULT_EXECUTABLE;

    fn sample() -> ServerConfig {
        crate::server::config::sample_config()
    }

    #[test]
    fn unit_is_hardened_and_names_the_secret_credential() {
        let unit = unit(
            &sample(),
            Path::new("/etc/knock-totp/web.toml"),
            DEFAULT_EXECUTABLE,
        );
        for line in [
            "ExecStart=/usr/local/bin/knock-totp server --config /etc/knock-totp/web.toml",
            "LoadCredential=secret:/etc/knock-totp/web.secret",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/etc/knock-totp/knockd",
            "PrivateTmp=yes",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
    }
}
