//! The terminal: whether stdin/stdout are one, reading a value from stdin, yes/no questions.

use std::io::{IsTerminal, Read};

use zeroize::Zeroizing;

use crate::error::UserError;

/// Whole seconds since the unix epoch from the system clock.
pub fn now() -> anyhow::Result<u64> {
    Ok(crate::clock::wall_clock()?.as_secs())
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Longest stdin we read for a secret or URI; anything longer is not one.
const MAX_STDIN_SECRET: u64 = 64 * 1024;

/// Reads a secret or URI from stdin: one value, surrounding whitespace removed. On a terminal
/// it asks with a hidden prompt, so the pasted value is never echoed.
pub fn read_stdin_value(what: &str) -> anyhow::Result<Zeroizing<String>> {
    if stdin_is_tty() {
        let value = Zeroizing::new(
            dialoguer::Password::new()
                .with_prompt(format!("Paste the {what}"))
                .interact()?,
        );
        return non_empty(what, Zeroizing::new(value.trim().to_owned()));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN_SECRET + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UserError::runtime(format!("cannot read the {what} from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN_SECRET {
        return Err(UserError::usage(format!(
            "stdin is too long for a {what} (over {MAX_STDIN_SECRET} bytes)"
        ))
        .into());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| UserError::usage(format!("the {what} on stdin is not UTF-8 text")))?;
    non_empty(what, Zeroizing::new(text.trim().to_owned()))
}

fn non_empty(what: &str, value: Zeroizing<String>) -> anyhow::Result<Zeroizing<String>> {
    if value.is_empty() {
        return Err(UserError::usage(format!("stdin held no {what}"))
            .with_hint("pipe it in, e.g. `printf %s \"$VALUE\" | knock-totp ... -`")
            .into());
    }
    Ok(value)
}

/// Asks a yes/no question on the terminal; `false` when there is no terminal to ask on.
pub fn confirm(prompt: &str) -> anyhow::Result<bool> {
    if !stdin_is_tty() {
        return Ok(false);
    }
    Ok(dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()?)
}
