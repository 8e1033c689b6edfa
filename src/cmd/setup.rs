//! `setup`: not implemented yet.

use super::Context;
use crate::cli::SetupArgs;
use crate::error::UserError;

pub fn run(_ctx: &Context, _args: SetupArgs) -> anyhow::Result<()> {
    Err(UserError::runtime("`setup` is not implemented yet").into())
}
