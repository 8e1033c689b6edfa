//! Messages on stderr: one line each, `knock-totp: ` first; quieter or chattier on request.
//! When stderr is the journal (a systemd service's), each line starts with its syslog priority
//! (`<3>`, `<4>`, `<6>`, `<7>`), which journald takes off and records as the line's level.

use std::io::Write;
use std::sync::OnceLock;

/// A line's syslog priority, as journald reads it from a `<N>` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Something failed: the fatal error that ends the process.
    Error = 3,
    /// An operator must look: attacks, a clock behind, doors that may stay open.
    Warning = 4,
    /// The normal course of things.
    Info = 6,
    /// What -v adds.
    Debug = 7,
}

/// Where messages go: stderr, one line each (journald adds the time for the daemon).
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    pub verbose: u8,
    pub quiet: bool,
}

impl Log {
    /// A normal line, suppressed by --quiet.
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            emit(Priority::Info, &format!("knock-totp: {message}"));
        }
    }

    /// A detail line for -v.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.verbose > 0 {
            emit(Priority::Debug, &format!("knock-totp: {message}"));
        }
    }

    /// A line for -vv: what is as sensitive as the code itself, such as knock ports.
    pub fn trace(&self, message: impl std::fmt::Display) {
        if self.verbose > 1 {
            emit(Priority::Debug, &format!("knock-totp: {message}"));
        }
    }

    /// Something an operator must see, even with --quiet.
    pub fn alarm(&self, message: impl std::fmt::Display) {
        emit(
            Priority::Warning,
            &format!("knock-totp: WARNING: {message}"),
        );
    }
}

/// Writes `text` to stderr, a line per line of it, each with `priority`'s prefix when stderr is
/// the journal (and as it is otherwise).
pub fn emit(priority: Priority, text: &str) {
    let text = render(text, journal_prefix(priority));
    // Like eprintln!, but one write for all the lines, and no panic if stderr is gone.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `text` with `prefix` before each of its lines, and a newline after the last.
fn render(text: &str, prefix: Option<String>) -> String {
    let Some(prefix) = prefix else {
        return format!("{text}\n");
    };
    let mut out = String::with_capacity(text.len() + 4);
    for line in text.split('\n') {
        out.push_str(&prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn journal_prefix(priority: Priority) -> Option<String> {
    stderr_is_journal().then(|| format!("<{}>", priority as u8))
}

/// Whether stderr is the journal stream systemd connected: `JOURNAL_STREAM` (`DEV:INODE`, set
/// for a service whose stderr is the journal) names the file on fd 2. A child whose stderr was
/// redirected elsewhere inherits the variable, hence the comparison (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
            return false;
        };
        names_stream(&stream.to_string_lossy(), stat.st_dev, stat.st_ino)
    })
}

/// Whether `JOURNAL_STREAM`'s value is `dev:ino`.
fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_carries_the_prefix_in_the_journal_and_none_elsewhere() {
        assert_eq!(render("a", None), "a\n");
        assert_eq!(render("a\nb", None), "a\nb\n");
        assert_eq!(render("a", Some("<6>".into())), "<6>a\n");
        assert_eq!(
            render("a\nhint: b", Some("<3>".into())),
            "<3>a\n<3>hint: b\n"
        );
    }

    #[test]
    fn the_stream_is_named_by_device_and_inode() {
        assert!(names_stream("8:1234", 8, 1234));
        assert!(names_stream("8:1234\n", 8, 1234));
        assert!(!names_stream("8:1235", 8, 1234));
        assert!(!names_stream("9:1234", 8, 1234));
        assert!(!names_stream("8", 8, 1234));
        assert!(!names_stream("", 8, 1234));
        assert!(!names_stream("x:y", 8, 1234));
    }
}
