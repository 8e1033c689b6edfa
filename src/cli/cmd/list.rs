//! `list`: the host profiles, never their secrets.

use std::io::Write;

use crate::cli::args::ListArgs;
use crate::cli::Context;

pub fn run(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let hosts = ctx.paths.load()?;
    let mut out = std::io::stdout().lock();
    if args.names {
        for name in hosts.hosts.keys() {
            writeln!(out, "{name}")?;
        }
        return Ok(());
    }
    if args.json {
        let rows: Vec<_> = hosts
            .hosts
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "name": name,
                    "address": p.address,
                    "port": p.port,
                    "user": p.user,
                    "delay_ms": p.delay_ms,
                    "algorithm": p.algorithm.as_str(),
                    "period": p.period,
                    "store": hosts.store_for(p).as_str(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    if hosts.hosts.is_empty() {
        ctx.log
            .note("no hosts yet: `knock-totp add NAME --address ADDR` adds one");
        return Ok(());
    }
    let width = hosts
        .hosts
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:width$}  {:<30} {:>5}  {:<10} STORE",
        "NAME", "ADDRESS", "PORT", "USER"
    )?;
    for (name, p) in &hosts.hosts {
        writeln!(
            out,
            "{name:width$}  {:<30} {:>5}  {:<10} {}",
            p.address,
            p.port,
            p.user.as_deref().unwrap_or("-"),
            hosts.store_for(p).as_str()
        )?;
    }
    Ok(())
}
