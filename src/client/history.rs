//! What the client remembers of its knocks, per host, in `knocks.toml` in its state
//! directory: the last success (its time and the address knocked), and the failures in a row
//! since. It only feeds diagnoses and the "open before knocking" check; losing it loses
//! nothing else, so a damaged or unreadable file is read as empty and replaced.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{create_private_dir, write_atomically};

/// File name in the state directory.
pub const HISTORY_FILE: &str = "knocks.toml";
/// How many failure times are kept per host (the rules look at fewer).
pub const MAX_FAILURES: usize = 16;

/// One host's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Unix time of the last knock that opened the door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    /// The address that knock went to (and connected to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_address: Option<IpAddr>,
    /// Unix times of the knocks that failed since (oldest first, at most `MAX_FAILURES`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<u64>,
}

impl HostRecord {
    /// A door opened at `at` (unix seconds) for `address`: the failures in a row end.
    pub fn success(&mut self, at: u64, address: IpAddr) {
        self.last_success = Some(at);
        self.last_address = Some(address);
        self.failures.clear();
    }

    /// A knock at `at` whose door never opened.
    pub fn failure(&mut self, at: u64) {
        self.failures.push(at);
        let extra = self.failures.len().saturating_sub(MAX_FAILURES);
        self.failures.drain(..extra);
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HistoryFile {
    #[serde(default)]
    hosts: BTreeMap<String, HostRecord>,
}

/// One host's record in a state directory.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    key: String,
}

impl History {
    /// The record of host `key` (a profile name, or the address knocked) under `state_dir`.
    pub fn new(state_dir: &Path, key: &str) -> Self {
        Self {
            path: state_dir.join(HISTORY_FILE),
            key: key.to_owned(),
        }
    }

    fn read_all(&self) -> HistoryFile {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// The host's record; empty when there is none (or the file is unreadable).
    pub fn load(&self) -> HostRecord {
        self.read_all().hosts.remove(&self.key).unwrap_or_default()
    }

    /// Replaces the host's record (the file atomically, 0600, in a 0700 directory). Two
    /// clients finishing at once may lose one's update; the record only guides messages.
    pub fn save(&self, record: &HostRecord) -> anyhow::Result<()> {
        let mut all = self.read_all();
        all.hosts.insert(self.key.clone(), record.clone());
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        write_atomically(&self.path, toml::to_string(&all)?.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keep_the_newest_failures() {
        let dir = tempfile::tempdir().unwrap();
        let web = History::new(&dir.path().join("state"), "web");
        let db = History::new(&dir.path().join("state"), "10.0.0.1");
        assert_eq!(web.load(), HostRecord::default());
        let mut record = HostRecord::default();
        for t in 0..20 {
            record.failure(100 + t);
        }
        assert_eq!(record.failures.len(), MAX_FAILURES);
        assert_eq!(record.failures[0], 104);
        web.save(&record).unwrap();
        let mut other = HostRecord::default();
        other.success(50, "10.0.0.1".parse().unwrap());
        db.save(&other).unwrap();
        assert_eq!(web.load(), record);
        assert_eq!(db.load(), other);
        record.success(200, "::1".parse().unwrap());
        assert!(record.failures.is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("state").join(HISTORY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_file_reads_as_empty_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HISTORY_FILE), "[[[ not toml").unwrap();
        let web = History::new(dir.path(), "web");
        assert_eq!(web.load(), HostRecord::default());
        let mut record = HostRecord::default();
        record.failure(7);
        web.save(&record).unwrap();
        assert_eq!(web.load(), record);
    }
}
