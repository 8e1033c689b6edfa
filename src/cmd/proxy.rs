//! `proxy`: not implemented yet.

use super::Context;
use crate::cli::ProxyArgs;
use crate::error::UserError;

pub fn run(_ctx: &Context, _args: ProxyArgs) -> anyhow::Result<()> {
    Err(UserError::runtime("`proxy` is not implemented yet").into())
}
