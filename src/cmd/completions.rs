//! `completions`: shell completion scripts.

use std::io::Write;

use super::Context;
use crate::cli::CompletionsArgs;

pub fn run(_ctx: &Context, args: CompletionsArgs) -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(crate::completions::script(args.shell).as_bytes())?;
    Ok(())
}
