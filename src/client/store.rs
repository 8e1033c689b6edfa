//! Where host secrets are kept: the OS keyring, 0600 files, or memory (tests).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::client::hosts::{ConfigPaths, StoreKind};
use crate::core::secret::SecretKey;
use crate::error::{ExitKind, UserError};
use crate::fsutil::{create_private_dir, write_atomically};

/// Keyring service name; the account is the host name.
pub const KEYRING_SERVICE: &str = "knock-totp";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no secret stored for host {host} in the {store}")]
    NotFound { host: String, store: &'static str },
    #[error("the OS keyring is unavailable: {reason}")]
    KeyringUnavailable { reason: String },
    #[error("the stored secret for host {host} is unusable: {reason}")]
    Corrupt { host: String, reason: String },
    #[error(
        "refusing the secret file {path}: its mode {mode:03o} lets other users read or change it"
    )]
    Exposed { path: String, mode: u32 },
    #[error("{0}")]
    Io(String),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::KeyringUnavailable { .. } => UserError::new(
                ExitKind::StoreUnavailable,
                error.to_string(),
            )
            .with_hint(
                "start a Secret Service (e.g. gnome-keyring) and unlock it, or keep secrets in \
                     0600 files instead: add the host with `--store file`, or set \
                     `secret_store = \"file\"` in hosts.toml",
            ),
            StoreError::NotFound { host, .. } => UserError::runtime(error.to_string()).with_hint(
                format!("re-enroll it: `knock-totp add {host} --address ADDR --force --secret -`"),
            ),
            StoreError::Exposed { path, .. } => UserError::usage(error.to_string()).with_hint(
                format!("chmod 600 {path} (and if others may have read it, re-enroll the host with a new secret)"),
            ),
            _ => UserError::runtime(error.to_string()),
        }
    }
}

pub trait SecretStore {
    fn get(&self, host: &str) -> Result<SecretKey, StoreError>;
    fn set(&self, host: &str, secret: &SecretKey) -> Result<(), StoreError>;
    /// Removes the secret; removing one that is not there is not an error.
    fn delete(&self, host: &str) -> Result<(), StoreError>;
    fn describe(&self) -> &'static str;
    /// Whether the store can be used at all, asked before the user is asked for a secret.
    fn check_available(&self, _host: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Opens the store of the given kind for this configuration.
pub fn open(kind: StoreKind, paths: &ConfigPaths) -> Box<dyn SecretStore> {
    match kind {
        StoreKind::Keyring => Box::new(KeyringStore),
        StoreKind::File => Box::new(FileStore::new(paths.secrets_dir())),
    }
}

/// The platform keyring through the `keyring` crate. On Linux it is zbus, which blocks on a
/// tokio runtime of its own: call it outside any tokio runtime (inside one it panics).
pub struct KeyringStore;

impl KeyringStore {
    fn entry(host: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(KEYRING_SERVICE, host).map_err(keyring_error)
    }
}

fn keyring_error(error: keyring::Error) -> StoreError {
    match error {
        keyring::Error::PlatformFailure(e) => StoreError::KeyringUnavailable {
            reason: one_line(&e.to_string()),
        },
        keyring::Error::NoStorageAccess(e) => StoreError::KeyringUnavailable {
            reason: one_line(&e.to_string()),
        },
        other => StoreError::Io(format!("keyring: {}", one_line(&other.to_string()))),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl SecretStore for KeyringStore {
    fn get(&self, host: &str) -> Result<SecretKey, StoreError> {
        match Self::entry(host)?.get_password() {
            Ok(value) => {
                let value = Zeroizing::new(value);
                SecretKey::from_base32(&value).map_err(|e| StoreError::Corrupt {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })
            }
            Err(keyring::Error::NoEntry) => Err(StoreError::NotFound {
                host: host.to_owned(),
                store: "OS keyring",
            }),
            Err(e) => Err(keyring_error(e)),
        }
    }

    fn set(&self, host: &str, secret: &SecretKey) -> Result<(), StoreError> {
        Self::entry(host)?
            .set_password(&secret.to_base32())
            .map_err(keyring_error)
    }

    fn delete(&self, host: &str) -> Result<(), StoreError> {
        match Self::entry(host)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(e)),
        }
    }

    fn describe(&self) -> &'static str {
        "OS keyring"
    }

    fn check_available(&self, host: &str) -> Result<(), StoreError> {
        match Self::entry(host)?.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(e)),
        }
    }
}

/// One file per host, mode 0600, in a 0700 directory.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path_for(&self, host: &str) -> PathBuf {
        self.dir.join(host)
    }
}

impl SecretStore for FileStore {
    /// Refuses a file others can read (after a restore or a dotfile sync, say), as ssh does a
    /// private key: a warning would scroll by unseen under ssh's ProxyCommand, and the fix is
    /// one chmod the error names. The mode is checked on the opened file itself.
    fn get(&self, host: &str) -> Result<SecretKey, StoreError> {
        use std::io::Read;
        let path = self.path_for(host);
        let cannot_read = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound {
                    host: host.to_owned(),
                    store: "file store",
                }
            } else {
                StoreError::Io(format!("cannot read {}: {e}", path.display()))
            }
        };
        let mut file = fs::File::open(&path).map_err(cannot_read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(cannot_read)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::Exposed {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(cannot_read)?;
        SecretKey::from_base32(&text).map_err(|e| StoreError::Corrupt {
            host: host.to_owned(),
            reason: format!("{}: {e}", path.display()),
        })
    }

    fn set(&self, host: &str, secret: &SecretKey) -> Result<(), StoreError> {
        create_private_dir(&self.dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let mut contents = Zeroizing::new(secret.to_base32().to_string());
        contents.push('\n');
        write_atomically(&self.path_for(host), contents.as_bytes(), 0o600)
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    fn delete(&self, host: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path_for(host)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(format!(
                "cannot remove {}: {e}",
                self.path_for(host).display()
            ))),
        }
    }

    fn describe(&self) -> &'static str {
        "file store"
    }
}

/// A process-local store for tests.
#[derive(Default)]
pub struct MemoryStore {
    secrets: Mutex<HashMap<String, SecretKey>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, host: &str) -> Result<SecretKey, StoreError> {
        self.secrets
            .lock()
            .expect("store lock")
            .get(host)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                host: host.to_owned(),
                store: "memory store",
            })
    }

    fn set(&self, host: &str, secret: &SecretKey) -> Result<(), StoreError> {
        self.secrets
            .lock()
            .expect("store lock")
            .insert(host.to_owned(), secret.clone());
        Ok(())
    }

    fn delete(&self, host: &str) -> Result<(), StoreError> {
        self.secrets.lock().expect("store lock").remove(host);
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "memory store"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn SecretStore) {
        let key = SecretKey::generate();
        assert!(matches!(store.get("web"), Err(StoreError::NotFound { .. })));
        store.set("web", &key).unwrap();
        assert_eq!(store.get("web").unwrap(), key);
        store.delete("web").unwrap();
        store.delete("web").unwrap();
        assert!(matches!(store.get("web"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::default());
    }

    #[cfg(unix)]
    #[test]
    fn file_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("secrets"));
        exercise(&store);
        store.set("web", &SecretKey::generate()).unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path().join("secrets")), 0o700);
        assert_eq!(mode(store.path_for("web")), 0o600);
    }

    /// A store file others can read (restored from a backup or synced as a dotfile with a
    /// loose mode) is refused with the chmod that fixes it, never the secret.
    #[cfg(unix)]
    #[test]
    fn file_store_refuses_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("secrets"));
        let key = SecretKey::generate();
        store.set("web", &key).unwrap();
        let path = store.path_for("web");
        for loose in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            let err = store.get("web").unwrap_err();
            assert!(matches!(err, StoreError::Exposed { .. }), "{err}");
            let user = UserError::from(err);
            assert!(
                user.message.contains(&format!("{loose:03o}")),
                "{}",
                user.message
            );
            assert!(!user.message.contains(key.to_base32().as_str()));
            let hint = user.hint.unwrap();
            assert!(
                hint.contains(&format!("chmod 600 {}", path.display())),
                "{hint}"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(store.get("web").unwrap(), key);
    }
}
