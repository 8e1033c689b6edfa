//! Host profiles in `hosts.toml`: where the file lives, validation, and atomic, locked updates.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::core::names::{validate_address, validate_host_name, validate_user};
use crate::core::totp::{validate_period, Algorithm, DEFAULT_PERIOD};
use crate::error::{ExitKind, UserError};
use crate::fsutil::{create_private_dir, parse_toml, write_atomically};

/// Environment variable that overrides the path of `hosts.toml`.
pub const CONFIG_ENV: &str = "KNOCK_TOTP_CONFIG";
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Milliseconds between the two knocks: enough that the second SYN cannot overtake the first
/// on a path that spreads flows over several links, small enough that `knock-totp ssh` stays
/// within 20 ms of plain ssh (benches/ssh.sh; the C knock client uses 0).
pub const DEFAULT_DELAY_MS: u64 = 10;
/// The longest grant a server gives (its `open_seconds` bound): a profile without
/// `open_seconds` assumes a grant may live this long.
pub const MAX_OPEN_SECONDS: u64 = 300;

/// Where a host's secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager).
    Keyring,
    /// One 0600 file per host under the config directory.
    File,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyring => "keyring",
            Self::File => "file",
        }
    }
}

/// One protected server as the client knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostProfile {
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default = "default_delay_ms")]
    pub delay_ms: u64,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default = "crate::core::totp::default_period")]
    pub period: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKind>,
    /// The server's `open_seconds`, when known (set by hand): how long a grant from a knock
    /// stays live, so that a login soon after one is not taken for an unguarded port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_seconds: Option<u64>,
    /// Keys written by newer versions or by hand, kept as they are.
    #[serde(flatten)]
    pub extra: toml::Table,
}

fn default_port() -> u16 {
    DEFAULT_SSH_PORT
}
fn default_delay_ms() -> u64 {
    DEFAULT_DELAY_MS
}

impl HostProfile {
    pub fn new(address: String) -> Self {
        Self {
            address,
            port: DEFAULT_SSH_PORT,
            user: None,
            delay_ms: DEFAULT_DELAY_MS,
            algorithm: Algorithm::Sha1,
            period: DEFAULT_PERIOD,
            store: None,
            open_seconds: None,
            extra: toml::Table::new(),
        }
    }

    pub fn validate(&self, name: &str) -> Result<(), String> {
        validate_host_name(name)?;
        validate_address(&self.address).map_err(|e| format!("host {name}: {e}"))?;
        if self.port == 0 {
            return Err(format!(
                "host {name}: port 0 is not a usable TCP port (1-65535)"
            ));
        }
        if self.delay_ms > 60_000 {
            return Err(format!(
                "host {name}: delay_ms {} is over a minute",
                self.delay_ms
            ));
        }
        validate_period(self.period).map_err(|e| format!("host {name}: {e}"))?;
        if let Some(open) = self.open_seconds {
            if !(1..=MAX_OPEN_SECONDS).contains(&open) {
                return Err(format!(
                    "host {name}: open_seconds {open} is outside 1-{MAX_OPEN_SECONDS}"
                ));
            }
        }
        if let Some(user) = &self.user {
            validate_user(user).map_err(|e| format!("host {name}: {e}"))?;
        }
        Ok(())
    }
}

/// The whole `hosts.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostsFile {
    /// Default store for hosts that do not name one (`keyring` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store: Option<StoreKind>,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostProfile>,
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl HostsFile {
    pub fn host(&self, name: &str) -> Result<&HostProfile, UserError> {
        self.hosts.get(name).ok_or_else(|| no_such_host(name))
    }

    pub fn store_for(&self, profile: &HostProfile) -> StoreKind {
        self.store_choosing(profile.store)
    }

    /// The store a profile that names `explicit` (or no store) uses.
    pub fn store_choosing(&self, explicit: Option<StoreKind>) -> StoreKind {
        explicit.or(self.secret_store).unwrap_or(StoreKind::Keyring)
    }

    /// Parses the file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, UserError> {
        let file: Self = parse_toml(text, origin).map_err(|e| {
            e.with_hint(
                "fix or move the file; knock-totp will not overwrite it while it is malformed",
            )
        })?;
        for (name, profile) in &file.hosts {
            profile
                .validate(name)
                .map_err(|e| UserError::usage(format!("{}: {e}", origin.display())))?;
        }
        Ok(file)
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

pub fn no_such_host(name: &str) -> UserError {
    UserError::new(ExitKind::NoSuchHost, format!("no such host: {name}")).with_hint(
        "`knock-totp list` shows the hosts; `knock-totp add NAME --address ADDR` adds one",
    )
}

/// Where the configuration and file-store secrets live.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub hosts_file: PathBuf,
    /// Where the client keeps what it remembers of its knocks (`knocks.toml`): beside
    /// hosts.toml (`state/`) when `$KNOCK_TOTP_CONFIG` names it, else the platform state
    /// directory (`~/.local/state/knock-totp`). `None` without a home directory.
    pub state_dir: Option<PathBuf>,
}

impl ConfigPaths {
    /// `$KNOCK_TOTP_CONFIG`, else the platform config dir (`~/.config/knock-totp/hosts.toml`).
    pub fn from_env() -> anyhow::Result<Self> {
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            let mut paths = Self {
                hosts_file: PathBuf::from(path),
                state_dir: None,
            };
            paths.state_dir = Some(paths.config_dir().join("state"));
            return Ok(paths);
        }
        let dirs = directories::ProjectDirs::from("", "", "knock-totp").ok_or_else(|| {
            UserError::runtime("cannot find a home directory for the configuration")
                .with_hint(format!("set {CONFIG_ENV} to the path of hosts.toml"))
        })?;
        let state_dir = dirs
            .state_dir()
            .unwrap_or(dirs.data_local_dir())
            .to_path_buf();
        Ok(Self {
            hosts_file: dirs.config_dir().join("hosts.toml"),
            state_dir: Some(state_dir),
        })
    }

    pub fn config_dir(&self) -> PathBuf {
        match self.hosts_file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Directory of the file store: one 0600 file per host.
    pub fn secrets_dir(&self) -> PathBuf {
        self.config_dir().join("secrets")
    }

    fn lock_file(&self) -> PathBuf {
        let mut name = self
            .hosts_file
            .file_name()
            .unwrap_or_default()
            .to_os_string();
        name.push(".lock");
        self.config_dir().join(name)
    }

    /// Reads hosts.toml; a missing file is an empty configuration.
    pub fn load(&self) -> anyhow::Result<HostsFile> {
        let path = &self.hosts_file;
        match fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    UserError::usage(format!("{}: not UTF-8 text", path.display()))
                        .with_hint("fix or move the file; knock-totp will not overwrite it")
                })?;
                Ok(HostsFile::parse(&text, path)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostsFile::default()),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory || path.is_dir() => {
                Err(UserError::usage(format!(
                    "{} is a directory, not a hosts file",
                    path.display()
                ))
                .with_hint(format!("move it away or point {CONFIG_ENV} at a file"))
                .into())
            }
            Err(e) => {
                Err(UserError::runtime(format!("cannot read {}: {e}", path.display())).into())
            }
        }
    }

    /// Loads, changes and saves hosts.toml under an exclusive lock, so that concurrent
    /// invocations do not lose each other's changes. Nothing is written if `change` fails,
    /// and nothing is left behind: the lock file exists only while it is held, and a
    /// configuration directory this call created is removed again when it stays empty.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut HostsFile) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let dir = self.config_dir();
        let dir_existed = dir.is_dir();
        create_private_dir(&dir)?;
        let result = self.lock().and_then(|lock| {
            let result = self.load().and_then(|mut hosts| {
                let value = change(&mut hosts)?;
                write_atomically(&self.hosts_file, hosts.to_toml()?.as_bytes(), 0o600)?;
                Ok(value)
            });
            // Removed while still held: see `lock` for why a waiter copes with that.
            let _ = fs::remove_file(self.lock_file());
            drop(lock);
            result
        });
        if result.is_err() && !dir_existed {
            // Only succeeds when empty (a store that wrote a secret there keeps it).
            let _ = fs::remove_dir(&dir);
        }
        result
    }

    /// Takes the exclusive lock on hosts.toml.lock. The holder deletes the file before it
    /// lets go, so a waiter may be granted the lock of a file no longer there: it checks that
    /// the path still names the file it locked, and otherwise tries again.
    fn lock(&self) -> anyhow::Result<fs::File> {
        #[cfg(unix)]
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let lock_path = self.lock_file();
        loop {
            let mut options = OpenOptions::new();
            options.create(true).truncate(false).write(true);
            #[cfg(unix)]
            options
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
            let lock = options.open(&lock_path).map_err(|e| {
                UserError::runtime(format!(
                    "cannot write in {}: {e}",
                    self.config_dir().display()
                ))
            })?;
            lock.lock()
                .with_context(|| format!("cannot lock {}", lock_path.display()))?;
            #[cfg(unix)]
            {
                let held = lock.metadata()?;
                match fs::symlink_metadata(&lock_path) {
                    Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {}
                    _ => continue,
                }
            }
            return Ok(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_defaults_and_unknown_keys_survive() {
        let text = "future_key = 1\n[hosts.web]\naddress = \"example.com\"\ncolour = \"blue\"\n";
        let file = HostsFile::parse(text, Path::new("hosts.toml")).unwrap();
        let web = file.host("web").unwrap();
        assert_eq!((web.port, web.delay_ms, web.period), (22, 10, 30));
        assert_eq!(file.store_for(web), StoreKind::Keyring);
        let again = HostsFile::parse(&file.to_toml().unwrap(), Path::new("x")).unwrap();
        assert_eq!(again, file);
        assert_eq!(again.extra["future_key"].as_integer(), Some(1));
        assert_eq!(again.hosts["web"].extra["colour"].as_str(), Some("blue"));
    }

    #[test]
    fn open_seconds_is_optional_and_bounded_like_the_servers() {
        let parse = |extra: &str| {
            HostsFile::parse(
                &format!("[hosts.web]\naddress = \"x\"\n{extra}"),
                Path::new("h.toml"),
            )
        };
        assert_eq!(parse("").unwrap().hosts["web"].open_seconds, None);
        let file = parse("open_seconds = 30\n").unwrap();
        assert_eq!(file.hosts["web"].open_seconds, Some(30));
        assert!(file.to_toml().unwrap().contains("open_seconds = 30"));
        for bad in ["0", "301"] {
            let err = parse(&format!("open_seconds = {bad}\n")).unwrap_err();
            assert!(err.message.contains("open_seconds"), "{}", err.message);
        }
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let err = HostsFile::parse(
            "[hosts.web]\naddress = \"x\"\nport = 70000\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(err.message.starts_with("h.toml:3:"), "{}", err.message);
        let err = HostsFile::parse(
            "[hosts.web]\naddress = \"x\"\nport = 0\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("port 0"), "{}", err.message);
        let err = HostsFile::parse("[hosts.\"a/b\"]\naddress = \"x\"\n", Path::new("h.toml"))
            .unwrap_err();
        assert!(err.message.contains("invalid host name"), "{}", err.message);
        assert!(HostsFile::parse("[hosts.web\n", Path::new("h.toml")).is_err());
    }
}
