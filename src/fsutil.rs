//! Files written safely: atomic replacement, private directories, and TOML read with file:line errors.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::UserError;

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

/// Writes `contents` to a temporary file beside `path` (created with `mode`), syncs it and
/// renames it over `path`: readers see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(UserError::runtime(format!("cannot write {}: {e}", path.display())).into());
    }
    Ok(())
}
