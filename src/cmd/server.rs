//! `server`: not implemented yet.

use super::Context;
use crate::cli::ServerArgs;
use crate::error::UserError;

pub fn run(_ctx: &Context, _args: ServerArgs) -> anyhow::Result<()> {
    Err(UserError::runtime("`server` is not implemented yet").into())
}
