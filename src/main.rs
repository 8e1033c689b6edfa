//! Entry point: parse, dispatch, report errors with exit codes.

use std::process::ExitCode;

use clap::Parser;
use knock_totp::cli::{self, args::Cli};
use knock_totp::error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, hint) = error::classify(&err);
            if code != 0 {
                let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                eprintln!("knock-totp: {}", dedup_chain(&chain));
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
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
