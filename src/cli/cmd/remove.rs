//! `remove`: delete a host profile and its secret.

use crate::cli::args::RemoveArgs;
use crate::cli::term::{confirm, stdin_is_tty};
use crate::cli::Context;
use crate::client::hosts::no_such_host;
use crate::client::store;
use crate::error::UserError;

pub fn run(ctx: &Context, args: RemoveArgs) -> anyhow::Result<()> {
    ctx.host(&args.name)?;
    if !args.yes {
        if !stdin_is_tty() {
            return Err(UserError::usage(format!(
                "not removing {} without confirmation",
                args.name
            ))
            .with_hint("pass --yes")
            .into());
        }
        if !confirm(&format!("Remove host {} and its secret?", args.name))? {
            return Err(UserError::usage("cancelled").into());
        }
    }
    ctx.paths.update(|hosts| {
        let profile = hosts
            .hosts
            .get(&args.name)
            .ok_or_else(|| no_such_host(&args.name))?;
        store::open(hosts.store_for(profile), &ctx.paths)
            .delete(&args.name)
            .map_err(UserError::from)?;
        hosts.hosts.remove(&args.name);
        Ok(())
    })?;
    ctx.log.note(format_args!("removed {}", args.name));
    Ok(())
}
