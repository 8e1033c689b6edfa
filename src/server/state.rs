//! The newest window whose door the daemon put in the firewall, kept across restarts: a
//! daemon started with its clock behind never serves a window it served before (a knock
//! captured meanwhile would open the port again).
//!
//! The file, `NAME.window` in systemd's `$STATE_DIRECTORY` (else [`DEFAULT_STATE_DIR`]), holds
//! one line, `window=N`: N is the newest window counter that had a door in the firewall. It
//! is written (atomically, synced) before that door goes in, so a crash right after cannot
//! forget it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::core::window::Window;
use crate::fsutil::{
    create_private_dir, open_owned_file, unsafe_directory, write_atomically, OwnedFileError,
};
use crate::server::doors::ActiveDoor;
use crate::server::paths::{state_file_name, DEFAULT_STATE_DIR};

/// A file that holds more than this is not ours.
const MAX_LEN: u64 = 64;

/// A state file that cannot be read, trusted or written. Always fatal for the daemon: it
/// cannot tell which windows are safe to serve, or cannot keep what it serves.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateFileError(String);

/// The state file of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedState {
    path: PathBuf,
}

/// The state directory: the first path of `$STATE_DIRECTORY` (systemd sets it from the unit's
/// `StateDirectory=`, colon-separated when there are several), else [`DEFAULT_STATE_DIR`].
pub fn state_dir(state_directory: Option<&OsStr>) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    state_directory
        .and_then(|value| {
            value
                .as_bytes()
                .split(|&b| b == b':')
                .find(|path| !path.is_empty())
        })
        .map(|path| PathBuf::from(OsStr::from_bytes(path)))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

impl ServedState {
    /// The state file of server `name`, in the directory the environment names.
    pub fn for_server(name: &str) -> Self {
        Self::in_dir(
            &state_dir(std::env::var_os("STATE_DIRECTORY").as_deref()),
            name,
        )
    }

    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(state_file_name(name)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// What went wrong with the file, as one line that says what to do.
    fn refuse(&self, problem: impl std::fmt::Display) -> StateFileError {
        StateFileError(format!(
            "the state file {} {problem}: it records the newest window served, so that a restart \
             with the clock behind never serves an old window again; remove it if the clock is \
             right",
            self.path.display()
        ))
    }

    /// The newest window counter recorded, `None` when there is no file (the first start).
    /// A file that is not what [`ServedState::record`] writes, a symlink, or one others could
    /// have written is an error.
    pub fn read(&self) -> Result<Option<u64>, StateFileError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;

        match unsafe_directory(self.dir()) {
            Ok(None) => {}
            Ok(Some(why)) => {
                return Err(self.refuse(format!("is in {}, which {why}", self.dir().display())))
            }
            Err(e) => return Err(self.refuse(format!("cannot be checked: {e}"))),
        }
        let (file, meta) = match open_owned_file(&self.path) {
            Ok(opened) => opened,
            Err(OwnedFileError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(OwnedFileError::Symlink) => return Err(self.refuse("is a symbolic link")),
            Err(OwnedFileError::Open(e) | OwnedFileError::Stat(e)) => {
                return Err(self.refuse(format!("cannot be read: {e}")))
            }
            Err(OwnedFileError::NotRegular) => return Err(self.refuse("is not a regular file")),
            Err(OwnedFileError::Owner { uid, me }) => {
                return Err(self.refuse(format!(
                    "belongs to uid {uid}, not to root or to this daemon's user (uid {me})"
                )))
            }
        };
        if meta.mode() & 0o022 != 0 {
            return Err(self.refuse(format!(
                "is writable by others (mode {:04o})",
                meta.mode() & 0o7777
            )));
        }
        let mut text = String::new();
        file.take(MAX_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|_| self.refuse("is not a window=N line"))?;
        parse(&text).map(Some).ok_or_else(|| {
            self.refuse("is not the window=N line knock-totp writes (it is damaged or not ours)")
        })
    }

    /// Records `counter` as the newest window with a door in the firewall: a new 0600 file
    /// beside the old one (exclusive, under a random name, never through a symlink), synced,
    /// then renamed over it. Creates the directory (0700) when it is missing.
    pub fn record(&self, counter: u64) -> Result<(), StateFileError> {
        let cannot = |e: &dyn std::fmt::Display| {
            StateFileError(format!(
                "cannot record the newest window served in {}: {e}; no door goes in the firewall \
                 before it is recorded",
                self.path.display()
            ))
        };
        create_private_dir(self.dir()).map_err(|e| cannot(&format!("{e:#}")))?;
        match unsafe_directory(self.dir()) {
            Ok(None) => {}
            Ok(Some(why)) => return Err(cannot(&format!("{} {why}", self.dir().display()))),
            Err(e) => return Err(cannot(&e)),
        }
        write_atomically(&self.path, render(counter).as_bytes(), 0o600)
            .map_err(|e| cannot(&format!("{e:#}")))
    }
}

/// The file's text for `counter`.
pub fn render(counter: u64) -> String {
    format!("window={counter}\n")
}

/// The counter of a `window=N` line (a final newline is optional); `None` for anything else.
pub fn parse(text: &str) -> Option<u64> {
    let digits = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .strip_prefix("window=")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Removes the doors of windows up to `floor` (the newest window served before this start):
/// their doors were in the firewall once, and a knock captured then must not open the port
/// again. Returns how many were held back.
pub fn hold_back(doors: &mut Vec<ActiveDoor>, floor: Option<u64>) -> usize {
    let Some(floor) = floor else {
        return 0;
    };
    let before = doors.len();
    doors.retain(|door| door.window.counter > floor);
    before - doors.len()
}

/// Whether the daemon starts behind what it served before: the clock's window is before the
/// window whose doors were last put in place. Doors reach one window ahead (the next
/// window's), so the window served then is the one before the newest door, `floor - 1`; a
/// restart within that window is a normal restart, not a clock set back.
pub fn starts_behind(clock: Window, floor: Option<u64>) -> bool {
    floor.is_some_and(|floor| clock.counter.saturating_add(1) < floor)
}

/// The newest window among `doors`, to record before they go in place.
pub fn newest(doors: &[ActiveDoor]) -> Option<u64> {
    doors.iter().map(|door| door.window.counter).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::SecretKey;
    use crate::core::totp::{Algorithm, Totp};
    use crate::server::doors::active_doors;
    use std::os::unix::fs::PermissionsExt;

    fn totp() -> Totp {
        Totp::new(
            &SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap(),
            Algorithm::Sha1,
            30,
        )
        .unwrap()
    }

    fn counters(doors: &[ActiveDoor]) -> Vec<u64> {
        doors.iter().map(|d| d.window.counter).collect()
    }

    #[test]
    fn the_state_directory_is_the_first_of_systemds() {
        assert_eq!(state_dir(None), Path::new(DEFAULT_STATE_DIR));
        assert_eq!(state_dir(Some("".as_ref())), Path::new(DEFAULT_STATE_DIR));
        assert_eq!(
            state_dir(Some("/var/lib/knock-totp".as_ref())),
            Path::new("/var/lib/knock-totp")
        );
        assert_eq!(
            state_dir(Some("/var/lib/a:/var/lib/b".as_ref())),
            Path::new("/var/lib/a")
        );
        assert_eq!(
            ServedState::in_dir(Path::new("/var/lib/knock-totp"), "web").path(),
            Path::new("/var/lib/knock-totp/web.window")
        );
    }

    #[test]
    fn only_a_window_line_parses() {
        assert_eq!(parse("window=58000431\n"), Some(58_000_431));
        assert_eq!(parse("window=0"), Some(0));
        for bad in [
            "",
            "\n",
            "window=",
            "window=-1\n",
            "window=+1\n",
            "window=12 \n",
            " window=12\n",
            "window=12\n\n",
            "window=99999999999999999999999\n",
            "counter=12\n",
            "garbage",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse(&render(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn a_recorded_window_reads_back_from_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = ServedState::in_dir(&dir.path().join("state"), "web");
        assert_eq!(state.read().unwrap(), None, "no file: the first start");
        state.record(58_000_432).unwrap();
        assert_eq!(state.read().unwrap(), Some(58_000_432));
        state.record(58_000_433).unwrap();
        assert_eq!(state.read().unwrap(), Some(58_000_433));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.path()), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(
            std::fs::read_to_string(state.path()).unwrap(),
            "window=58000433\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("state")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_damaged_linked_or_writable_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let state = ServedState::in_dir(dir.path(), "web");
        let shown = state.path().display().to_string();
        let check = |what: &str| {
            let err = state.read().unwrap_err().to_string();
            assert!(err.contains(&shown), "{err}");
            assert!(err.contains(what), "{err}");
            assert!(err.contains("remove it if the clock is right"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        };
        std::fs::write(state.path(), "garbage\n").unwrap();
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        check("not the window=N line");
        std::fs::write(state.path(), "x".repeat(10_000)).unwrap();
        check("not the window=N line");

        std::fs::write(state.path(), "window=5\n").unwrap();
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o622)).unwrap();
        check("writable by others");

        std::fs::remove_file(state.path()).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "window=5\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&target, state.path()).unwrap();
        check("symbolic link");
        // Recording replaces the link; the file it pointed to stays as it was.
        state.record(7).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "window=5\n");
        assert_eq!(state.read().unwrap(), Some(7));

        std::fs::remove_file(state.path()).unwrap();
        std::fs::create_dir(state.path()).unwrap();
        check("not a regular file");
    }

    #[test]
    fn a_state_directory_others_may_write_in_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let state = ServedState::in_dir(dir.path(), "web");
        let err = state.read().unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        let err = state.record(5).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        assert!(!state.path().exists());
    }

    #[test]
    fn no_door_of_a_window_served_before_goes_back_in() {
        let w = Window::at(1_740_012_930, 30); // 58000431
        let mut doors = active_doors(&totp(), w);
        assert_eq!(hold_back(&mut doors, None), 0);
        assert_eq!(counters(&doors), [58_000_430, 58_000_431, 58_000_432]);
        assert_eq!(newest(&doors), Some(58_000_432));
        // A restart in the same window: every door was in place before.
        assert_eq!(hold_back(&mut doors, Some(58_000_432)), 3);
        assert!(doors.is_empty());
        assert_eq!(newest(&doors), None);
        // One window later only the next window's door is new.
        let mut doors = active_doors(&totp(), w.next());
        assert_eq!(hold_back(&mut doors, Some(58_000_432)), 2);
        assert_eq!(counters(&doors), [58_000_433]);
    }

    #[test]
    fn only_a_clock_before_the_window_served_is_behind() {
        let floor = Some(58_000_432); // doors up to 58000432: window 58000431 was served
        let at = |counter| Window {
            counter,
            period: 30,
        };
        assert!(!starts_behind(at(58_000_431), floor), "a normal restart");
        assert!(!starts_behind(at(58_000_432), floor));
        assert!(!starts_behind(at(58_000_500), floor));
        assert!(starts_behind(at(58_000_430), floor));
        assert!(starts_behind(at(58_000_431 - 10), floor));
        assert!(!starts_behind(at(1), None));
        assert!(!starts_behind(at(u64::MAX), Some(u64::MAX)));
    }
}
