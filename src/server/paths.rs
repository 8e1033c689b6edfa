//! Where a server's files are and what its units and tables are called: the file-system and
//! naming facts every other part of the server builds on, each defined once here.

use std::path::{Path, PathBuf};

/// Directory `setup` puts a server's files in on the server.
pub const SERVER_DIR: &str = "/etc/knock-totp";
/// Name of the systemd credential that carries the secret (`LoadCredential=secret:...`).
pub const SECRET_CREDENTIAL: &str = "secret";
/// Where the state file is when systemd names no `$STATE_DIRECTORY`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/knock-totp";
/// The unit's `StateDirectory=`: systemd makes `/var/lib/knock-totp` (0700, even under
/// `ProtectSystem=strict`) and passes it as `$STATE_DIRECTORY`.
pub const STATE_DIRECTORY: &str = "knock-totp";

/// Where the configuration of server `name` goes on the server.
pub fn config_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR).join(format!("{name}.toml"))
}

/// Where `setup` puts the secret of server `name` on the server.
pub fn secret_file_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR).join(format!("{name}.secret"))
}

/// The knockd.conf the knockd engine of server `name` rewrites.
pub fn knockd_conf_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR)
        .join("knockd")
        .join(format!("{name}.conf"))
}

/// The users directory of the server whose config is `config_path`: `NAME.d` beside it.
pub fn users_dir(config_path: &Path) -> PathBuf {
    config_path.with_extension("d")
}

/// The state file's name (in the state directory) of server `name`.
pub fn state_file_name(name: &str) -> String {
    format!("{name}.window")
}

/// The unit that runs the rotation daemon of server `name`.
pub fn daemon_unit_name(name: &str) -> String {
    format!("knock-totp-{name}.service")
}

/// The oneshot unit that loads the nftables engine's base table at boot.
pub fn base_unit_name(name: &str) -> String {
    format!("knock-totp-{name}-base.service")
}

/// Where `setup` puts the nftables engine's base table (no doors, the port closed).
pub fn base_ruleset_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR).join(format!("{name}.nft"))
}

/// Where `setup` puts the knockd engine's host firewall script, which its base unit runs at
/// every boot (the script changes nothing when run again).
pub fn host_firewall_script_path(name: &str) -> PathBuf {
    Path::new(SERVER_DIR).join(format!("{name}-firewall.sh"))
}

/// The nft table of server `name`: `knock_totp_` and the name with every character nft does
/// not allow in a name turned into `_`.
pub fn table_name(name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("knock_totp_{tail}")
}
