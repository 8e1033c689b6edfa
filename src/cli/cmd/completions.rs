//! `completions`: shell completion scripts.

use std::io::Write;

use crate::cli::args::CompletionsArgs;
use crate::cli::Context;

pub fn run(_ctx: &Context, args: CompletionsArgs) -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(crate::cli::completions::script(args.shell).as_bytes())?;
    Ok(())
}
