//! `server`: the rotation daemon that keeps the doors following the code.

use std::path::PathBuf;

use crate::cli::args::ServerArgs;
use crate::cli::Context;
use crate::core::totp::Totp;
use crate::error::UserError;
use crate::server::config::ServerConfig;
use crate::server::engine;
use crate::server::load_secret_file;
use crate::server::rotation::{Rotation, StopSignal};

pub fn run(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    let config = ServerConfig::load(&args.config)?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret = load_secret_file(&config.secret_path(credentials.as_deref()))?;
    let totp = Totp::new(&secret, config.algorithm, config.period)
        .map_err(|e| UserError::usage(format!("{}: {e}", args.config.display())))?;
    drop(secret);

    let engine = engine::build(config, ctx.log, args.dry_run)?;
    let mut server = Rotation::new(totp, engine, ctx.log, args.dry_run);
    server.preflight()?;
    let mut stop = StopSignal::install()?;
    server.run(args.once, &mut stop)
}
