//! Messages on stderr: one line each, `knock-totp: ` first; quieter or chattier on request.

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
            eprintln!("knock-totp: {message}");
        }
    }

    /// A detail line for -v.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.verbose > 0 {
            eprintln!("knock-totp: {message}");
        }
    }

    /// A line for -vv: what is as sensitive as the code itself, such as knock ports.
    pub fn trace(&self, message: impl std::fmt::Display) {
        if self.verbose > 1 {
            eprintln!("knock-totp: {message}");
        }
    }

    /// Something an operator must see, even with --quiet.
    pub fn alarm(&self, message: impl std::fmt::Display) {
        eprintln!("knock-totp: WARNING: {message}");
    }
}
