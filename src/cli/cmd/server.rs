//! `server`: the rotation daemon that keeps the doors following the code.

use std::path::PathBuf;

use crate::cli::args::{ServerAction, ServerArgs, UnbanArgs};
use crate::cli::term::now;
use crate::cli::Context;
use crate::core::ports::guessing_odds;
use crate::core::totp::Totp;
use crate::error::UserError;
use crate::server::config::{EngineKind, ServerConfig};
use crate::server::engine;
use crate::server::engine::nftables::{self, report, unban::EntryKind};
use crate::server::load_secret_file;
use crate::server::paths::{self, users_dir};
use crate::server::rotation::Rotation;
use crate::server::signals::StopSignal;
use crate::server::state::ServedState;
use crate::server::users::{load_users, UserSource};

pub fn run(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    if let Some(ServerAction::Unban(unban_args)) = &args.action {
        return unban(ctx, &args, unban_args);
    }
    let Some(config_path) = args.config.as_ref() else {
        return Err(UserError::usage("server needs --config FILE")
            .with_hint("knock-totp server --config /etc/knock-totp/NAME.toml")
            .into());
    };
    let config = ServerConfig::load(config_path)?;
    if args.status {
        return status(ctx, &config, config_path, args.json);
    }
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret = load_secret_file(&config.secret_path(credentials.as_deref()))?;
    let totp = Totp::new(&secret, config.algorithm, config.period)
        .map_err(|e| UserError::usage(format!("{}: {e}", config_path.display())))?;
    drop(secret);
    let users = UserSource {
        dir: users_dir(config_path),
        algorithm: config.algorithm,
        period: config.period,
    };
    let holders = users.holders()?;

    let state = ServedState::for_server(&config.name);
    let user_count = holders.as_ref().map_or(0, |h| h.len().max(1));
    if args.metrics_file.is_some() && config.engine != EngineKind::Nftables {
        return Err(UserError::usage(format!(
            "--metrics-file writes the nftables engine's counters, which the kernel keeps; \
             this server runs engine = \"{}\", whose knocks only knockd sees",
            config.engine.as_str()
        ))
        .with_hint("knockd logs its knocks to syslog (journalctl -u knockd): count them there")
        .into());
    }
    let mut engine = engine::build(config, user_count, ctx.log)?;
    if let Some(path) = &args.metrics_file {
        engine.write_metrics_to(path)?;
    }
    let mut server = Rotation::new(totp, engine, ctx.log, args.dry_run).remembering(state);
    if let Some(holders) = holders {
        ctx.log.note(format!(
            "{} enabled users in {}: each knocks with their own secret (the server's opens no \
             door)",
            holders.len(),
            users.dir.display()
        ));
        server = server.serving_users(users, holders);
    }
    server.preflight()?;
    let mut stop = StopSignal::install()?;
    server.run(args.once, &mut stop)
}

/// Prints what the kernel holds for this server: doors, allowed and banned sources, counters.
fn status(
    ctx: &Context,
    config: &ServerConfig,
    config_path: &std::path::Path,
    as_json: bool,
) -> anyhow::Result<()> {
    if config.engine != EngineKind::Nftables {
        return Err(UserError::usage(format!(
            "--status reads the nftables engine's table; this server runs engine = \"{}\"",
            config.engine.as_str()
        ))
        .with_hint("knockd logs its knocks to syslog (journalctl -u knockd)")
        .into());
    }
    let table = paths::table_name(&config.name);
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
    let guessing = guessing(config, config_path)?;
    if as_json {
        if let Some(warning) = report::doorless_warning(&state, now) {
            // The JSON carries it; say it on stderr too, where a person sees it.
            ctx.log
                .alarm(warning.trim_start_matches("WARNING: ").to_string());
        }
        let mut value = report::json(&table, &state, now, show_ports);
        value["protected"] = protected.into();
        value["guessing"] = serde_json::json!({
            "users": guessing.users,
            "live_doors": guessing.live_doors,
            "pairs_per_day": guessing.pairs_per_day,
            "odds_per_day": guessing.odds_per_day,
        });
        println!("{value}");
    } else {
        print!("{}", report::text(&table, &state, now, show_ports));
        println!("{}", guessing.line());
        if !protected {
            println!(
                "WARNING: the table does not drop port {}: the port is NOT protected",
                config.port
            );
        }
    }
    Ok(())
}

/// The odds of the best-equipped guesser (any number of sources) against this server's
/// doors, from the config and its users: the global budget bounds them.
struct Guessing {
    users: usize,
    live_doors: u64,
    pairs_per_day: u64,
    odds_per_day: f64,
}

impl Guessing {
    fn line(&self) -> String {
        format!(
            "guessing odds: {} live doors ({}), at most {} guessed pairs a day from any number \
             of sources: {:.2} % a day (1 in {:.0})",
            self.live_doors,
            match self.users {
                0 => "one secret".to_owned(),
                n => format!("{n} users"),
            },
            self.pairs_per_day,
            self.odds_per_day * 100.0,
            1.0 / self.odds_per_day.max(f64::MIN_POSITIVE)
        )
    }
}

fn guessing(config: &ServerConfig, config_path: &std::path::Path) -> anyhow::Result<Guessing> {
    let users = load_users(&users_dir(config_path))?
        .iter()
        .filter(|u| u.enabled)
        .count();
    let params = nftables::params(config).for_users(users);
    let live_doors = 3 * users.max(1) as u64;
    let pairs_per_day = params.global_pairs_per_day();
    Ok(Guessing {
        users,
        live_doors,
        pairs_per_day,
        odds_per_day: guessing_odds(pairs_per_day, live_doors),
    })
}

/// `server unban ADDRESS`: lifts the address's bans (and its networks') and forgets its
/// wrong knocks, in one nft transaction.
fn unban(ctx: &Context, args: &ServerArgs, unban_args: &UnbanArgs) -> anyhow::Result<()> {
    if args.status || args.once || args.dry_run || args.json || args.metrics_file.is_some() {
        return Err(UserError::usage(
            "server unban does not take --status, --json, --once, --dry-run or --metrics-file",
        )
        .with_hint("run `knock-totp server unban --config FILE ADDRESS` on its own")
        .into());
    }
    let addr = nftables::unban::parse_address(&unban_args.address)?;
    let path = match (&unban_args.config, &args.config) {
        (Some(a), Some(b)) if a != b => {
            return Err(
                UserError::usage("server unban got two different --config files")
                    .with_hint("give --config FILE once")
                    .into(),
            )
        }
        (Some(path), _) | (None, Some(path)) => path,
        (None, None) => {
            return Err(
                UserError::usage("server unban needs the server's configuration")
                    .with_hint("knock-totp server unban --config /etc/knock-totp/NAME.toml ADDRESS")
                    .into(),
            )
        }
    };
    let config = &ServerConfig::load(path)?;
    if config.engine != EngineKind::Nftables {
        return Err(UserError::usage(format!(
            "server unban lifts the nftables engine's bans; this server runs engine = \"{}\", \
             and knockd bans nobody: there is no ban to lift",
            config.engine.as_str()
        ))
        .with_hint("a knockd client that cannot get in should check its clock and secret")
        .into());
    }
    let params = nftables::params(config);
    let nft = nftables::Nft::on_path();
    let Some(removed) = nft.unban(&params, addr)? else {
        return Err(UserError::runtime(format!(
            "table inet {} is not in the kernel: nothing is banned, and port {} is NOT protected",
            params.table, config.port
        ))
        .with_hint("start the daemon, or load the base table (firewall-setup.sh)")
        .into());
    };
    let bans: Vec<_> = removed
        .iter()
        .filter(|f| f.entry.kind == EntryKind::Ban)
        .collect();
    for found in &bans {
        let left = found
            .seconds_left
            .map(|t| format!(", {} left", report::human_duration(t)))
            .unwrap_or_default();
        let what = if found.entry.prefix_len >= found.entry.family.full_len() {
            "the address itself".to_string()
        } else {
            format!("its /{} {}", found.entry.prefix_len, found.entry.network())
        };
        println!("unbanned {addr} ({what} was banned{left})");
    }
    if bans.is_empty() {
        println!("{addr} is not banned");
    }
    let meters: Vec<String> = removed
        .iter()
        .filter(|f| f.entry.kind != EntryKind::Ban)
        .map(|f| f.entry.network())
        .collect();
    if !meters.is_empty() {
        let mut networks: Vec<String> = Vec::new();
        for network in meters {
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        println!(
            "forgot the knocks counted against {}: its next knock starts afresh",
            networks.join(", ")
        );
    }
    if ctx.log.verbose > 0 {
        for found in &removed {
            ctx.log.detail(format!(
                "removed {} from set {}",
                found.entry.key, found.entry.set
            ));
        }
    }
    Ok(())
}
