//! `knock`: not implemented yet.

use super::Context;
use crate::cli::KnockArgs;
use crate::error::UserError;

pub fn run(_ctx: &Context, _args: KnockArgs) -> anyhow::Result<()> {
    Err(UserError::runtime("`knock` is not implemented yet").into())
}
