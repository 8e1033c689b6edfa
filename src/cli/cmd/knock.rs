//! `knock`: knock a host's current sequence, optionally waiting until the port opens.
//! Also the profile-to-target step that `ssh` and `proxy` share.

use std::time::Duration;

use crate::cli::args::{KnockArgs, KnockOptions};
use crate::cli::term::read_stdin_value;
use crate::cli::Context;
use crate::client::history::History;
use crate::client::hosts::{HostProfile, DEFAULT_DELAY_MS};
use crate::client::knock::{knock_target, resolve, KnockPolicy, Target};
use crate::core::secret::SecretKey;
use crate::core::totp::{Algorithm, Totp, DEFAULT_PERIOD};
use crate::error::UserError;

pub fn run(ctx: &Context, args: KnockArgs) -> anyhow::Result<()> {
    let (target, totp) = match (&args.name, &args.address) {
        (Some(name), None) => {
            let (_, mut target, totp) = target_for_host(ctx, name, None)?;
            if let Some(delay_ms) = args.delay_ms {
                target.delay = Duration::from_millis(delay_ms);
            }
            (target, totp)
        }
        (None, Some(address)) => {
            if args.secret.as_deref() != Some("-") {
                return Err(UserError::usage("--secret only takes - (read the secret from stdin)")
                    .with_hint("pipe the secret in: `printf %s \"$SECRET\" | knock-totp knock --address A --port P --secret -`")
                    .into());
            }
            let value = read_stdin_value("secret")?;
            let secret = SecretKey::from_base32(&value)
                .map_err(|e| UserError::usage(format!("the secret on stdin: {e}")))?;
            let totp = Totp::new(
                &secret,
                args.algorithm.unwrap_or(Algorithm::Sha1),
                args.period.unwrap_or(DEFAULT_PERIOD),
            )
            .map_err(|e| UserError::usage(e.to_string()))?;
            // Remembered apart from profiles (whose names never start with `@`).
            let history = history(ctx, &format!("@{address}"));
            let prefer = history.as_ref().and_then(|h| h.load().last_address);
            let addr = resolve(address, args.port, prefer)?;
            let delay = args.delay_ms.unwrap_or(DEFAULT_DELAY_MS);
            let target = Target::new(address, addr, delay).remembering(history, None);
            (target, totp)
        }
        _ => unreachable!("clap makes NAME and --address exclusive and requires one"),
    };
    let opened = knock_target(
        &ctx.log,
        &target,
        &totp,
        &policy(&args.options, args.verify),
    )?;
    if opened.is_some() {
        ctx.log.note(format!(
            "{}: port {} on {} is open",
            target.label,
            target.addr.port(),
            target.addr.ip()
        ));
    }
    Ok(())
}

/// Host `name`'s profile, its protected address (the profile's port unless `port` says
/// otherwise) resolved once with the profile's knock delay, and its code generator. A name
/// that still resolves to the address of this host's last success resolves to that one, so
/// that logins in a row knock (and connect) over one address family.
pub fn target_for_host(
    ctx: &Context,
    name: &str,
    port: Option<u16>,
) -> anyhow::Result<(HostProfile, Target, Totp)> {
    let (profile, totp) = ctx.totp(name)?;
    let history = history(ctx, name);
    let prefer = history.as_ref().and_then(|h| h.load().last_address);
    let addr = resolve(&profile.address, port.unwrap_or(profile.port), prefer)?;
    let target =
        Target::new(name, addr, profile.delay_ms).remembering(history, profile.open_seconds);
    Ok((profile, target, totp))
}

/// The record of `key`'s knocks, when there is a state directory.
fn history(ctx: &Context, key: &str) -> Option<History> {
    ctx.paths
        .state_dir
        .as_deref()
        .map(|dir| History::new(dir, key))
}

/// The knock policy of the command line's options.
pub fn policy(options: &KnockOptions, verify: bool) -> KnockPolicy {
    KnockPolicy {
        timeout: options.timeout,
        margin: options.margin,
        verify,
    }
}
