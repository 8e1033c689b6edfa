//! `server`: the rotation daemon that keeps the doors following the code.

use std::path::PathBuf;

use crate::cli::args::ServerArgs;
use crate::cli::term::now;
use crate::cli::Context;
use crate::core::totp::Totp;
use crate::error::UserError;
use crate::server::config::{EngineKind, ServerConfig};
use crate::server::engine;
use crate::server::engine::nftables::{self, report};
use crate::server::load_secret_file;
use crate::server::rotation::{Rotation, StopSignal};
use crate::server::state::ServedState;

pub fn run(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    let config = ServerConfig::load(&args.config)?;
    if args.status {
        return status(ctx, &config, args.json);
    }
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret = load_secret_file(&config.secret_path(credentials.as_deref()))?;
    let totp = Totp::new(&secret, config.algorithm, config.period)
        .map_err(|e| UserError::usage(format!("{}: {e}", args.config.display())))?;
    drop(secret);

    let state = ServedState::for_server(&config.name);
    let engine = engine::build(config, ctx.log)?;
    let mut server = Rotation::new(totp, engine, ctx.log, args.dry_run).remembering(state);
    server.preflight()?;
    let mut stop = StopSignal::install()?;
    server.run(args.once, &mut stop)
}

/// Prints what the kernel holds for this server: doors, allowed and banned sources, counters.
fn status(ctx: &Context, config: &ServerConfig, as_json: bool) -> anyhow::Result<()> {
    if config.engine != EngineKind::Nftables {
        return Err(UserError::usage(format!(
            "--status reads the nftables engine's table; this server runs engine = \"{}\"",
            config.engine.as_str()
        ))
        .with_hint("knockd logs its knocks to syslog (journalctl -u knockd)")
        .into());
    }
    let table = nftables::table_name(&config.name);
    let nft = nftables::Nft::on_path();
    let Some((state, protected)) = nft.status(&table, config.port)? else {
        return Err(UserError::runtime(format!(
            "table inet {table} is not in the kernel: port {} is NOT protected",
            config.port
        ))
        .with_hint("start the daemon, or load the base table (firewall-setup.sh)")
        .into());
    };
    let now = now()?;
    let show_ports = ctx.log.verbose > 0;
    if as_json {
        let mut value = report::json(&table, &state, now, show_ports);
        value["protected"] = protected.into();
        println!("{value}");
    } else {
        print!("{}", report::text(&table, &state, now, show_ports));
        if !protected {
            println!(
                "WARNING: the table does not drop port {}: the port is NOT protected",
                config.port
            );
        }
    }
    Ok(())
}
