//! Entry point: parse, dispatch, report errors with exit codes.

use std::process::ExitCode;

use clap::Parser;
use knock_totp::cli::{self, args::Cli};
use knock_totp::error;
use knock_totp::log::{self, Priority};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors too carry their priority in the journal (a unit's ExecStart= typo).
        Err(err) if err.use_stderr() && log::stderr_is_journal() => {
            log::emit(Priority::Error, err.render().to_string().trim_end());
            std::process::exit(err.exit_code());
        }
        Err(err) => err.exit(),
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, hint) = error::classify(&err);
            if code != 0 {
                let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                let mut text = format!("knock-totp: {}", dedup_chain(&chain));
                if let Some(hint) = hint {
                    text.push_str(&format!("\nhint: {hint}"));
                }
                // One write: in the journal, each line carries the error's priority.
                log::emit(Priority::Error, &text);
            }
            ExitCode::from(code as u8)
        }
    }
}

/// Joins an error chain on one line, skipping causes whose text the outer message already has.
fn dedup_chain(chain: &[String]) -> String {
    let mut line = String::new();
    for cause in chain {
        if !line.contains(cause.as_str()) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(cause);
        }
    }
    line.replace('\n', " ")
}
