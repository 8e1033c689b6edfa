//! Errors the user can act on, each with its exit code and an optional hint.

use std::fmt;

/// Exit codes (documented in the man page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 1: network failure, port never opened, I/O trouble.
    Runtime = 1,
    /// 2: bad arguments or input.
    Usage = 2,
    /// 3: no such host profile.
    NoSuchHost = 3,
    /// 4: the secret store cannot be reached.
    StoreUnavailable = 4,
}

/// An error that carries its exit code and a `hint:` line for the user.
#[derive(Debug)]
pub struct UserError {
    pub kind: ExitKind,
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Usage, message)
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Runtime, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// The exit code and hint for any error chain: the first `UserError` in it decides; a broken
/// pipe on stdout is success (the reader went away, as with `| head`).
pub fn classify(error: &anyhow::Error) -> (i32, Option<String>) {
    for cause in error.chain() {
        if let Some(user) = cause.downcast_ref::<UserError>() {
            return (user.kind as i32, user.hint.clone());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return (0, None);
            }
        }
    }
    (ExitKind::Runtime as i32, None)
}
