//! `show`: one host profile; with --qr or --secret, what a phone needs to enroll.

use std::io::Write;

use crate::cli::args::ShowArgs;
use crate::cli::qr;
use crate::cli::term::{confirm, stdout_is_tty};
use crate::cli::Context;
use crate::core::otpauth::OtpauthUri;
use crate::error::UserError;

pub fn run(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let (hosts, profile) = ctx.host(&args.name)?;
    let mut out = std::io::stdout().lock();
    let store = hosts.store_for(&profile);

    if args.qr || args.secret {
        if !args.yes && !confirm("This shows the host's secret on screen. Continue?")? {
            return Err(
                UserError::usage("not revealing the secret without confirmation")
                    .with_hint("answer yes at the prompt, or pass --yes")
                    .into(),
            );
        }
        let secret = ctx.secret(&hosts, &args.name, &profile)?;
        if args.secret {
            writeln!(out, "{}", secret.to_base32().as_str())?;
            return Ok(());
        }
        let uri =
            OtpauthUri::for_host(&args.name, secret, profile.algorithm, profile.period).to_uri();
        write!(out, "{}", qr::to_terminal(&uri, stdout_is_tty())?)?;
        writeln!(out, "{}", uri.as_str())?;
        return Ok(());
    }

    if args.json {
        let value = serde_json::json!({
            "name": args.name,
            "address": profile.address,
            "port": profile.port,
            "user": profile.user,
            "delay_ms": profile.delay_ms,
            "algorithm": profile.algorithm.as_str(),
            "period": profile.period,
            "store": store.as_str(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(out, "name:      {}", args.name)?;
    writeln!(out, "address:   {}", profile.address)?;
    writeln!(out, "port:      {}", profile.port)?;
    writeln!(out, "user:      {}", profile.user.as_deref().unwrap_or("-"))?;
    writeln!(out, "delay_ms:  {}", profile.delay_ms)?;
    writeln!(out, "algorithm: {}", profile.algorithm)?;
    writeln!(out, "period:    {}", profile.period)?;
    writeln!(out, "store:     {}", store.as_str())?;
    Ok(())
}
