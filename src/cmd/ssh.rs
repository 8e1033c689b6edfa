//! `ssh`: not implemented yet.

use super::Context;
use crate::cli::SshArgs;
use crate::error::UserError;

pub fn run(_ctx: &Context, _args: SshArgs) -> anyhow::Result<()> {
    Err(UserError::runtime("`ssh` is not implemented yet").into())
}
