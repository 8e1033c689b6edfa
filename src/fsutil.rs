//! Files written safely: atomic replacement, private directories, and TOML read with file:line errors.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::UserError;

/// Why [`open_owned_file`] refused a path.
#[derive(Debug)]
pub enum OwnedFileError {
    /// It is a symbolic link (never followed).
    Symlink,
    /// It could not be opened (missing, not permitted, ...).
    Open(std::io::Error),
    /// The opened file could not be examined.
    Stat(std::io::Error),
    /// It is not a regular file (a directory, a FIFO, a device).
    NotRegular,
    /// It belongs to `uid`, neither root nor this process's user `me`.
    Owner { uid: u32, me: u32 },
}

/// Opens `path` for reading without following a symlink and checks, through the opened
/// descriptor (so what is checked is what is read), that it is a regular file owned by root
/// or this process's user. Its mode is for the caller to judge.
#[cfg(unix)]
pub fn open_owned_file(path: &Path) -> Result<(File, fs::Metadata), OwnedFileError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::MetadataExt;

    // NONBLOCK: a FIFO put there must not hang the reader; a regular file reads the same.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => OwnedFileError::Symlink,
        e => OwnedFileError::Open(e.into()),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(OwnedFileError::Stat)?;
    if !meta.is_file() {
        return Err(OwnedFileError::NotRegular);
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(OwnedFileError::Owner {
            uid: meta.uid(),
            me,
        });
    }
    Ok((file, meta))
}

/// `origin:line`, or `origin` alone when the line is unknown, to start a message about a file.
pub fn file_place(origin: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", origin.display()),
        None => origin.display().to_string(),
    }
}

/// Deserializes a TOML file's text; a failure is a usage error `origin:line: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
) -> Result<T, UserError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        UserError::usage(format!(
            "{}: {}",
            file_place(origin, line),
            e.message().trim()
        ))
    })
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| UserError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    Ok(())
}

/// Why `dir` is no place for files another user must not read or replace: a symlink, a
/// directory someone else owns, or one others may write in. `None` when it is fine or absent
/// (whether it is a directory at all is for the caller to check).
#[cfg(unix)]
pub fn unsafe_directory(dir: &Path) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let me = rustix::process::geteuid().as_raw();
    Ok(if meta.file_type().is_symlink() {
        Some("is a symbolic link".into())
    } else if meta.uid() != me {
        Some(format!(
            "belongs to uid {}, not to you (uid {me})",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    })
}

/// A new file written beside its destination and synced, not yet in place: created
/// exclusively (`O_EXCL`, so never through a symlink someone planted) under a random name,
/// with its final mode from the start. [`StagedFile::commit`] renames it over the
/// destination; dropping it instead removes it.
pub struct StagedFile {
    file: tempfile::NamedTempFile,
    destination: PathBuf,
}

impl StagedFile {
    pub fn new(destination: &Path, contents: &[u8], mode: u32) -> anyhow::Result<Self> {
        let cannot = |e: std::io::Error| {
            UserError::runtime(format!("cannot write {}: {e}", destination.display()))
        };
        let file_name = destination
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let prefix = format!(".{file_name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(mode));
        }
        let mut file = builder
            .tempfile_in(parent_dir(destination))
            .map_err(cannot)?;
        #[cfg(unix)]
        {
            // The umask may have narrowed the mode it was created with; this is our own new
            // file (fchmod on its descriptor), never one a path now points to.
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))
                .map_err(cannot)?;
        }
        file.write_all(contents).map_err(cannot)?;
        file.as_file().sync_all().map_err(cannot)?;
        Ok(Self {
            file,
            destination: destination.to_path_buf(),
        })
    }

    /// Where the new file is until it is committed (to check it in place first).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Renames the file over its destination (replacing a symlink there, never following
    /// it) and syncs the directory.
    pub fn commit(self) -> anyhow::Result<()> {
        let destination = self.destination;
        self.file.persist(&destination).map_err(|e| {
            UserError::runtime(format!(
                "cannot write {}: {}",
                destination.display(),
                e.error
            ))
        })?;
        if let Ok(dir) = File::open(parent_dir(&destination)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Writes `contents` to `path` with `mode`: readers see the old file or the new one, never
/// half of one, and no symlink at `path` or beside it is followed.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    StagedFile::new(path, contents, mode)?.commit()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, b"one", 0o600).unwrap();
        write_atomically(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Symlinks planted where the file goes, and at the temp name the old code used
    /// (`.NAME.tmp-PID`, opened without O_EXCL and written through): the files they point
    /// to stay as they were.
    #[test]
    fn never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("secret");
        let old_temp = dir
            .path()
            .join(format!(".secret.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_temp).unwrap();
        write_atomically(&path, b"new secret", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(mode(&victim), 0o644);
        assert_eq!(fs::read(&path).unwrap(), b"new secret");

        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, b"newer secret", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(fs::read(&path).unwrap(), b"newer secret");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_dropped_staged_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedFile::new(&dir.path().join("conf"), b"x", 0o600).unwrap();
        assert!(staged.path().starts_with(dir.path()));
        assert_eq!(mode(staged.path()), 0o600);
        drop(staged);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
