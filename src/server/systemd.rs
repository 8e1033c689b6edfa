//! The systemd units that run `knock-totp server`: one per server, and the packaged template.

use std::path::Path;

use crate::core::ports::knock_range_text;
use crate::server::config::{EngineKind, ServerConfig};
use crate::server::engine::{design, AtBoot, UnitRole};
use crate::server::firewall::{Firewall, Nftables};
use crate::server::paths::{
    base_ruleset_path, base_unit_name, config_path, host_firewall_script_path, DEFAULT_STATE_DIR,
    SECRET_CREDENTIAL, STATE_DIRECTORY,
};

/// A hardened systemd unit running `knock-totp server` with this config at `config_path`.
pub fn unit(config: &ServerConfig, config_path: &Path, executable: &Path) -> String {
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
    let UnitRole {
        what,
        after,
        sandbox,
    } = design(config.engine).unit_role(config);
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
         # READY=1 once the doors are in place; WATCHDOG=1 after each rotation or repair that\n\
         # succeeded (the loop wakes at least every 5 s): a hung daemon is restarted.\n\
         Type=notify\n\
         NotifyAccess=main\n\
         WatchdogSec={watchdog}\n\
         ExecStart={executable} server --config {config}\n\
         # `systemctl reload`: the daemon reads its users directory again (SIGHUP).\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # The secret reaches the daemon as $CREDENTIALS_DIRECTORY/{SECRET_CREDENTIAL}, readable by it alone.\n\
         LoadCredential={SECRET_CREDENTIAL}:{secret}\n\
         UMask=0077\n\
         # The newest window served ({state_dir}/{name}.window): a restart with the clock\n\
         # behind never serves an old window again. Writable under ProtectSystem=strict.\n\
         StateDirectory={state}\n\
         StateDirectoryMode=0700\n\
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
         MemoryDenyWriteExecute=yes\n\
         PrivateIPC=yes\n\
         RemoveIPC=yes\n\
         KeyringMode=private\n\
         DevicePolicy=closed\n\
         # No core dumps: the daemon's memory holds the secret.\n\
         LimitCORE=0\n\
         {sandbox}\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         SystemCallFilter=~@privileged @resources\n\
         SystemCallErrorNumber=EPERM\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = config.name,
        executable = exec_word(&executable.to_string_lossy()),
        config = config_path.display(),
        secret = config.secret_file.display(),
        state = STATE_DIRECTORY,
        state_dir = DEFAULT_STATE_DIR,
        watchdog = WATCHDOG_SECONDS,
    )
}

/// `WatchdogSec=`: six of the loop's wakes (`MAX_SLEEP_CHUNK`, 5 s) fit in it, so a slow
/// repair or two never trips it, and a hung one is restarted within half a minute (a TOTP
/// window: the doors in the kernel outlive it).
pub const WATCHDOG_SECONDS: u64 = 30;

/// The packaged template unit `knock-totp-server@.service`: instance NAME runs
/// `/etc/knock-totp/NAME.toml` with the secret `/etc/knock-totp/NAME.secret`.
pub fn template_unit(executable: &Path) -> String {
    // The default engine's unit: a knockd-engine server uses the unit `setup` writes for it.
    let template = ServerConfig::new(
        "%i",
        22,
        EngineKind::Nftables,
        "eth0",
        &Firewall::Nftables(Nftables),
    );
    let config = config_path("%i");
    unit(&template, &config, executable).replace(
        "Install as /etc/systemd/system/knock-totp-%i.service, then\n\
             # `systemctl daemon-reload && systemctl enable --now knock-totp-%i`.",
        "Packaged template: for server NAME (/etc/knock-totp/NAME.toml), run\n\
             # `systemctl enable --now knock-totp-server@NAME`.",
    )
}

/// `word` as one word of an Exec line: `%` and `$` escaped, quoted if it has blanks or quotes.
fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '\'') {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// What the base unit puts back at boot for this server.
pub fn at_boot(config: &ServerConfig, firewall: &Firewall) -> AtBoot {
    design(config.engine).at_boot(firewall)
}

/// What the base unit runs at boot.
pub fn base_unit_command(config: &ServerConfig, firewall: &Firewall) -> String {
    match at_boot(config, firewall) {
        AtBoot::FirewallScript => format!(
            "/bin/sh {}",
            host_firewall_script_path(&config.name).display()
        ),
        AtBoot::BaseTable | AtBoot::KnockRangeDrop => format!(
            "{NFT_PROGRAM} -f {}",
            base_ruleset_path(&config.name).display()
        ),
    }
}

/// Puts the host's part of the firewall in place at boot, before the network and sshd are
/// up, without our binary (the daemon adds the doors once it runs): the protected port closed
/// or, behind a cloud firewall with the knockd engine, the knock range dropped. After ufw and
/// firewalld, so that their start does not undo it.
pub fn base_unit(config: &ServerConfig, firewall: &Firewall) -> String {
    let what = match at_boot(config, firewall) {
        AtBoot::KnockRangeDrop => format!(
            "the knock range {} dropped on this host",
            knock_range_text()
        ),
        AtBoot::BaseTable | AtBoot::FirewallScript => {
            format!("port {} closed until knocked", config.port)
        }
    };
    format!(
        "# knock-totp base firewall for {name}: {what}, from boot on.\n\
         # Install as /etc/systemd/system/{unit}, then `systemctl enable {unit}`.\n\
         [Unit]\n\
         Description=knock-totp base firewall for {name} ({what})\n\
         Documentation=man:knock-totp(1)\n\
         DefaultDependencies=no\n\
         Wants=network-pre.target\n\
         After=ufw.service firewalld.service\n\
         Before=network-pre.target shutdown.target ssh.service sshd.service\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={command}\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n",
        name = config.name,
        unit = base_unit_name(&config.name),
        command = base_unit_command(config, firewall),
    )
}

/// nft's path on Debian and its derivatives (units need an absolute path).
pub const NFT_PROGRAM: &str = "/usr/sbin/nft";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> ServerConfig {
        crate::server::config::sample_config()
    }

    #[test]
    fn unit_is_hardened_and_names_the_secret_credential() {
        let unit = unit(
            &sample(),
            Path::new("/etc/knock-totp/web.toml"),
            Path::new("/usr/local/bin/knock-totp"),
        );
        for line in [
            "ExecStart=/usr/local/bin/knock-totp server --config /etc/knock-totp/web.toml",
            "LoadCredential=secret:/etc/knock-totp/web.secret",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/etc/knock-totp/knockd",
            "PrivateTmp=yes",
            "StateDirectory=knock-totp",
            "StateDirectoryMode=0700",
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=30",
            "Restart=on-failure",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
    }

    #[test]
    fn each_engine_keeps_only_the_capabilities_it_needs() {
        let path = Path::new("/etc/knock-totp/web.toml");
        let exe = Path::new("/usr/bin/knock-totp");
        let knockd = unit(&sample(), path, exe);
        let nft = ServerConfig::new(
            "web",
            22,
            EngineKind::Nftables,
            "eth0",
            &Firewall::Nftables(Nftables),
        );
        let nft = unit(&nft, path, exe);
        for (unit, lines) in [
            (
                &knockd,
                [
                    "CapabilityBoundingSet=",
                    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                ],
            ),
            (
                &nft,
                [
                    "CapabilityBoundingSet=CAP_NET_ADMIN",
                    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
                ],
            ),
        ] {
            for line in lines
                .iter()
                .chain(&["LimitCORE=0", "SystemCallFilter=@system-service"])
            {
                assert!(unit.lines().any(|l| l == *line), "{line} missing:\n{unit}");
            }
        }
        assert!(nft.lines().any(|l| l == "ProtectProc=invisible"), "{nft}");
        assert!(
            !knockd.lines().any(|l| l.starts_with("ProtectProc=")),
            "{knockd}"
        );
    }

    /// Three loop wakes at least fit in the watchdog's interval.
    #[test]
    fn the_watchdog_leaves_room_for_several_wakes() {
        use crate::server::schedule::MAX_SLEEP_CHUNK;
        assert!(Duration::from_secs(WATCHDOG_SECONDS) >= 3 * MAX_SLEEP_CHUNK);
    }

    #[test]
    fn exec_start_quotes_and_escapes_an_unusual_binary_path() {
        assert_eq!(exec_word("/usr/bin/knock-totp"), "/usr/bin/knock-totp");
        assert_eq!(
            exec_word("/opt/my tools/100%/$HOME/k\"t"),
            "\"/opt/my tools/100%%/$$HOME/k\\\"t\""
        );
    }
}
