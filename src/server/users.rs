//! A server's users: one secret each, in the drop-in directory beside its config
//! (`/etc/knock-totp/NAME.d/alice.toml` and `alice.secret`, 0600). A server without that
//! directory (or with no user in it) is the single-secret server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::names::name_hash;
use crate::core::secret::SecretKey;
use crate::core::totp::{Algorithm, Totp};
use crate::error::UserError;
use crate::fsutil::{file_place, parse_toml, OwnedFileError};
use crate::server::doors::{DoorUser, Holder};

/// Longest user name.
pub const MAX_USER_NAME: usize = 32;

/// Most users one server takes: 3,000 users keep 9,000 doors live, and the global budget's
/// floor (one wrong knock a day) then holds a guesser to one pair a day, whose odds (0.9 %)
/// are still within one secret's.
pub const MAX_USERS: usize = 3000;

/// What `NAME.d/USER.toml` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// A disabled user keeps the files but opens no door.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// When the user stops opening doors (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Seconds a door stays open for this user (default: the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_seconds: Option<u64>,
}

fn enabled_by_default() -> bool {
    true
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            expires: None,
            open_seconds: None,
        }
    }
}

/// One user as the daemon serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    /// Unix seconds.
    pub expires: Option<u64>,
    pub open_seconds: Option<u64>,
    pub secret_file: PathBuf,
}

impl User {
    /// Whether the user may open a door at `now` (unix seconds).
    pub fn is_active(&self, now: u64) -> bool {
        self.enabled && self.expires.is_none_or(|expires| now < expires)
    }

    /// The short tag that names the user's sets and counters in the kernel.
    pub fn tag(&self) -> String {
        user_tag(&self.name)
    }

    pub fn load_secret(&self) -> anyhow::Result<SecretKey> {
        crate::server::load_secret_file(&self.secret_file)
    }
}

/// Where a server's users come from, to read them at start and again on SIGHUP.
#[derive(Debug, Clone)]
pub struct UserSource {
    pub dir: PathBuf,
    /// The server's TOTP settings, which its users share.
    pub algorithm: Algorithm,
    pub period: u64,
}

impl UserSource {
    /// The enabled users, each with their TOTP (expired ones too: the rotation drops them
    /// when their time comes); `None` when the directory holds no user at all (a disabled
    /// user still counts: the server's own secret never comes back by itself).
    pub fn holders(&self) -> anyhow::Result<Option<Vec<Holder>>> {
        let users = load_users(&self.dir)?;
        if users.is_empty() {
            return Ok(None);
        }
        let mut holders = Vec::new();
        for user in users.into_iter().filter(|u| u.enabled) {
            let secret = user.load_secret()?;
            let totp = Totp::new(&secret, self.algorithm, self.period)
                .map_err(|e| UserError::usage(format!("user {}: {e}", user.name)))?;
            holders.push(Holder {
                totp,
                user: Some(Arc::new(DoorUser {
                    tag: user.tag(),
                    name: user.name,
                    open_seconds: user.open_seconds,
                    expires: user.expires,
                })),
            });
        }
        Ok(Some(holders))
    }
}

/// The tag of user `name`: six hex digits of a hash, stable across reloads and orders.
pub fn user_tag(name: &str) -> String {
    name_hash(&format!("user:{name}"))
}

/// A user name: a letter, then letters, digits, `_`, `-` or `.`, at most
/// [`MAX_USER_NAME`] characters (it names files and appears in otpauth labels).
pub fn validate_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid user name {name:?}: use a lowercase letter, then lowercase letters, digits, \
             '_', '-' or '.' (at most {MAX_USER_NAME})"
        ))
    }
}

/// Parses one user's settings; errors name `origin` and the line.
pub fn parse_user(name: &str, text: &str, origin: &Path) -> Result<User, UserError> {
    validate_user_name(name).map_err(|e| UserError::usage(format!("{}: {e}", origin.display())))?;
    let settings: UserSettings = parse_toml(text, origin)?;
    let expires = match &settings.expires {
        None => None,
        Some(text_value) => {
            let stamp: jiff::Timestamp = text_value.parse().map_err(|_| {
                UserError::usage(format!(
                    "{}: expires = {text_value:?} is not an RFC 3339 time",
                    file_place(origin, line_of(text, "expires"))
                ))
                .with_hint("write it as expires = \"2027-01-31T18:00:00Z\"")
            })?;
            Some(u64::try_from(stamp.as_second()).unwrap_or(0))
        }
    };
    if let Some(open) = settings.open_seconds {
        if !(1..=crate::server::config::MAX_OPEN_SECONDS).contains(&open) {
            return Err(UserError::usage(format!(
                "{}: open_seconds = {open} is out of range (1 to {})",
                file_place(origin, line_of(text, "open_seconds")),
                crate::server::config::MAX_OPEN_SECONDS
            )));
        }
    }
    Ok(User {
        name: name.to_owned(),
        enabled: settings.enabled,
        expires,
        open_seconds: settings.open_seconds,
        secret_file: origin.with_extension("secret"),
    })
}

fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| i + 1)
}

/// Every user in `dir`, by name; none when the directory does not exist. A `.toml` whose
/// name is not a user name, or that does not parse, stops the load (a typo must not quietly
/// drop a user, nor keep one that was meant to go).
pub fn load_users(dir: &Path) -> anyhow::Result<Vec<User>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(UserError::usage(format!(
                "cannot read the users directory {}: {e}",
                dir.display()
            ))
            .into())
        }
    };
    let mut users = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            UserError::usage(format!(
                "cannot read the users directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = read_regular(&path)?;
        users.push(parse_user(&name, &text, &path)?);
    }
    if users.len() > MAX_USERS {
        return Err(UserError::usage(format!(
            "{} holds {} users; a server takes at most {MAX_USERS}",
            dir.display(),
            users.len()
        ))
        .into());
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// A user's settings file, read without following a symlink.
fn read_regular(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let (mut file, _) = crate::fsutil::open_owned_file(path).map_err(|e| {
        let why = match e {
            OwnedFileError::Symlink => "it is a symbolic link".to_owned(),
            OwnedFileError::Open(e) | OwnedFileError::Stat(e) => e.to_string(),
            OwnedFileError::NotRegular => "it is not a regular file".to_owned(),
            OwnedFileError::Owner { uid, .. } => format!("it belongs to uid {uid}, not root"),
        };
        UserError::usage(format!("refusing the user file {}: {why}", path.display()))
            .with_hint("a user file is a regular file owned by root; fix or remove it")
    })?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| UserError::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in ["alice", "bob-laptop", "c.d_e9"] {
            assert!(validate_user_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Alice", "9lives", "a b", "a/b", &"a".repeat(33)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_parse_with_defaults_and_refuse_unknown_keys() {
        let origin = Path::new("/etc/knock-totp/web.d/alice.toml");
        let user = parse_user("alice", "", origin).unwrap();
        assert!(user.enabled && user.expires.is_none() && user.open_seconds.is_none());
        assert_eq!(
            user.secret_file,
            Path::new("/etc/knock-totp/web.d/alice.secret")
        );
        let user = parse_user(
            "alice",
            "enabled = false\nexpires = \"2027-01-01T00:00:00Z\"\nopen_seconds = 60\n",
            origin,
        )
        .unwrap();
        assert!(!user.enabled);
        assert_eq!(user.expires, Some(1_798_761_600));
        assert_eq!(user.open_seconds, Some(60));
        let err = parse_user("alice", "enabeld = true\n", origin).unwrap_err();
        assert!(err.message.contains("alice.toml"), "{}", err.message);
        let err = parse_user("alice", "expires = \"soon\"\n", origin).unwrap_err();
        assert!(err.message.contains("RFC 3339"), "{}", err.message);
        assert!(parse_user("alice", "open_seconds = 0\n", origin).is_err());
    }

    #[test]
    fn activity_follows_enabled_and_expires() {
        let mut user = parse_user("alice", "", Path::new("/x/alice.toml")).unwrap();
        assert!(user.is_active(100));
        user.expires = Some(100);
        assert!(user.is_active(99) && !user.is_active(100));
        user.expires = None;
        user.enabled = false;
        assert!(!user.is_active(0));
    }

    #[test]
    fn tags_differ_per_user() {
        assert_ne!(user_tag("alice"), user_tag("bob"));
        assert_eq!(user_tag("alice").len(), 6);
    }

    #[test]
    fn a_missing_directory_means_no_users() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_users(&dir.path().join("web.d")).unwrap().is_empty());
        std::fs::write(dir.path().join("bob.toml"), "").unwrap();
        std::fs::write(dir.path().join("alice.toml"), "open_seconds = 5\n").unwrap();
        std::fs::write(dir.path().join("alice.secret"), "x").unwrap();
        let users = load_users(dir.path()).unwrap();
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        std::fs::write(dir.path().join("Bad.toml"), "").unwrap();
        assert!(load_users(dir.path()).is_err());
    }
}
