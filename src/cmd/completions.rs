//! `completions`: shell completion scripts.

use std::io::Write;

use clap::CommandFactory;

use super::Context;
use crate::cli::{Cli, CompletionsArgs};

pub fn run(_ctx: &Context, args: CompletionsArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "knock-totp", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}
