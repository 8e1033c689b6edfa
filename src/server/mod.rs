//! The server: the doors of each window go to a knock engine, which opens the protected port
//! through the host firewall or the cloud's. `config` is the daemon's file, `doors` what a
//! window needs, `rotation` the loop that follows the clock, `engine/` the knock engines,
//! `firewall/` the backends a door's grant runs through, and `cloud/` the cloud CLIs.

pub mod cloud;
pub mod config;
pub mod doors;
pub mod engine;
pub mod firewall;
pub mod rotation;
pub mod schedule;
pub mod systemd;

use std::path::Path;

use zeroize::Zeroizing;

use crate::core::secret::SecretKey;
use crate::error::UserError;

/// Reads the server's secret from a file that only its owner may read.
pub fn load_secret_file(path: &Path) -> anyhow::Result<SecretKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        UserError::usage(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        ))
        .with_hint("`knock-totp setup NAME --out DIR` writes one; point secret_file at it")
    })?;
    if !meta.is_file() {
        return Err(UserError::usage(format!(
            "the secret file {} is not a regular file",
            path.display()
        ))
        .into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(UserError::usage(format!(
            "refusing the secret file {}: its mode {mode:03o} lets others read it",
            path.display()
        ))
        .with_hint(format!(
            "chmod 600 {} (and consider the secret leaked: run setup again)",
            path.display()
        ))
        .into());
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        UserError::usage(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        ))
    })?);
    SecretKey::from_base32(text.trim())
        .map_err(|e| UserError::usage(format!("the secret file {}: {e}", path.display())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert!(load_secret_file(&path).is_err());
        std::fs::write(&path, "LPI3UVRWMUTRNDBD\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_secret_file(&path).unwrap_err().to_string();
        assert!(err.contains("640"), "{err}");
        assert!(!err.contains("LPI3"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            load_secret_file(&path).unwrap().to_base32().as_str(),
            "LPI3UVRWMUTRNDBD"
        );
    }
}
