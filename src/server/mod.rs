//! The server: the doors of each window go to a knock engine, which opens the protected port
//! through the host firewall or the cloud's. `config` is the daemon's file, `artifacts` what
//! `setup` writes, `doors` what a window needs, `rotation` the loop that follows the clock, `notify` its word to systemd, `state`
//! the newest window served (kept across restarts),
//! `engine/` the knock engines, `firewall/` the backends a door's grant runs through, and
//! `cloud/` the cloud CLIs.

pub mod artifacts;
pub mod cloud;
pub mod config;
pub mod doors;
pub mod engine;
pub mod firewall;
pub mod notify;
pub mod paths;
pub mod retry;
pub mod rotation;
pub mod schedule;
pub mod signals;
pub mod state;
pub mod systemd;
pub mod users;

use std::path::Path;

use zeroize::Zeroizing;

use crate::core::secret::SecretKey;
use crate::error::UserError;
use crate::fsutil::{open_owned_file, OwnedFileError};

/// Reads the server's secret from a file that only root or this daemon's user owns and only
/// its owner may read. The file is opened without following a symlink and checked through
/// the opened descriptor, so what is checked is what is read.
pub fn load_secret_file(path: &Path) -> anyhow::Result<SecretKey> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    let shown = path.display();
    let (mut file, meta) = open_owned_file(path).map_err(|e| match e {
        OwnedFileError::Symlink => UserError::usage(format!(
            "refusing the secret file {shown}: it is a symbolic link"
        ))
        .with_hint(format!(
            "point secret_file at the file itself, or replace the link with it: \
                 install -m 600 -o root TARGET {shown}"
        )),
        OwnedFileError::Open(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            UserError::usage(format!("cannot read the secret file {shown}: {e}")).with_hint(
                "run the server as root (sudo), or start it through its systemd unit \
                 (systemctl start knock-totp-NAME), which hands it the secret",
            )
        }
        OwnedFileError::Open(e) => {
            UserError::usage(format!("cannot read the secret file {shown}: {e}"))
                .with_hint("`knock-totp setup NAME --out DIR` writes one; point secret_file at it")
        }
        OwnedFileError::Stat(e) => {
            UserError::usage(format!("cannot read the secret file {shown}: {e}"))
        }
        OwnedFileError::NotRegular => {
            UserError::usage(format!("the secret file {shown} is not a regular file"))
        }
        OwnedFileError::Owner { uid, me } => UserError::usage(format!(
            "refusing the secret file {shown}: it belongs to uid {uid}, not to root or to this \
             daemon's user (uid {me}), so that user could change or read it"
        ))
        .with_hint(format!(
            "chown root {shown} && chmod 600 {shown} (and consider the secret leaked: run \
             setup again)"
        )),
    })?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(UserError::usage(format!(
            "refusing the secret file {shown}: its mode {mode:03o} lets others read it"
        ))
        .with_hint(format!(
            "chmod 600 {shown} (and consider the secret leaked: run setup again)"
        ))
        .into());
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| UserError::usage(format!("cannot read the secret file {shown}: {e}")))?;
    SecretKey::from_base32(text.trim())
        .map_err(|e| UserError::usage(format!("the secret file {shown}: {e}")).into())
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

    /// A symlink to a good secret file is refused: whoever can change the link (or the
    /// directory it sits in) chooses what the daemon reads.
    #[test]
    fn a_symlinked_secret_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.secret");
        std::fs::write(&target, "LPI3UVRWMUTRNDBD\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("web.secret");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = load_secret_file(&link).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("symbolic link"), "{text}");
        assert!(text.contains(&link.display().to_string()), "{text}");
        assert!(load_secret_file(&target).is_ok());
    }

    /// A 0600 file that another user owns is refused (that user could rewrite it, or read
    /// it). Needs root to give the file away.
    #[test]
    fn a_secret_file_owned_by_another_user_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to chown a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.secret");
        std::fs::write(&path, "LPI3UVRWMUTRNDBD\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = load_secret_file(&path).unwrap_err();
        let user = err.downcast_ref::<UserError>().expect("a UserError");
        assert!(user.message.contains("uid 65534"), "{}", user.message);
        assert!(
            user.hint.as_deref().unwrap_or("").contains("chown root"),
            "{:?}",
            user.hint
        );
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert!(load_secret_file(&path).is_ok());
    }
}
