//! `add`: create a host profile and store its secret.

use std::fs;

use zeroize::Zeroizing;

use crate::cli::args::AddArgs;
use crate::cli::term::{read_stdin_value, stdin_is_tty};
use crate::cli::Context;
use crate::client::hosts::{HostProfile, StoreKind};
use crate::client::store;
use crate::core::names::{validate_address, validate_host_name};
use crate::core::otpauth::{OtpauthUri, ISSUER};
use crate::core::secret::SecretKey;
use crate::core::totp::{Algorithm, DEFAULT_PERIOD};
use crate::error::UserError;

pub fn run(ctx: &Context, args: AddArgs) -> anyhow::Result<()> {
    validate_host_name(&args.name).map_err(UserError::usage)?;
    validate_address(&args.address).map_err(UserError::usage)?;

    // Fail on a duplicate before asking for a secret.
    let existing = ctx.paths.load()?;
    if existing.hosts.contains_key(&args.name) && !args.force {
        return Err(duplicate(&args.name).into());
    }

    // A headless machine without a keyring says so before the user pastes a secret.
    let explicit_store = args.store.map(StoreKind::from);
    store::open(existing.store_choosing(explicit_store), &ctx.paths)
        .check_available(&args.name)
        .map_err(UserError::from)?;

    let (secret, from_uri) = read_secret(ctx, &args)?;
    let mut profile = HostProfile::new(args.address.clone());
    profile.port = args.port;
    profile.user = args.user.clone();
    profile.delay_ms = args.delay_ms;
    profile.algorithm = args
        .algorithm
        .or(from_uri.as_ref().map(|u| u.0))
        .unwrap_or(Algorithm::Sha1);
    profile.period = args
        .period
        .or(from_uri.as_ref().map(|u| u.1))
        .unwrap_or(DEFAULT_PERIOD);
    profile.store = explicit_store;
    profile.validate(&args.name).map_err(UserError::usage)?;

    ctx.paths.update(|hosts| {
        if hosts.hosts.contains_key(&args.name) && !args.force {
            return Err(duplicate(&args.name).into());
        }
        let kind = args
            .store
            .map(StoreKind::from)
            .unwrap_or_else(|| hosts.store_for(&profile));
        let previous_kind = hosts.hosts.get(&args.name).map(|p| hosts.store_for(p));
        // The secret goes in first: a profile without its secret would be useless.
        store::open(kind, &ctx.paths)
            .set(&args.name, &secret)
            .map_err(UserError::from)?;
        if let Some(previous) = previous_kind.filter(|p| *p != kind) {
            let _ = store::open(previous, &ctx.paths).delete(&args.name);
        }
        hosts.hosts.insert(args.name.clone(), profile.clone());
        ctx.log.note(format_args!(
            "added {} ({}:{}), secret in the {}",
            args.name,
            profile.address,
            profile.port,
            store::open(kind, &ctx.paths).describe()
        ));
        Ok(())
    })
}

fn duplicate(name: &str) -> UserError {
    UserError::usage(format!("host {name} already exists"))
        .with_hint("pass --force to replace it, or `knock-totp remove` it first")
}

/// The secret, and the algorithm and period when it came from a URI.
fn read_secret(
    ctx: &Context,
    args: &AddArgs,
) -> anyhow::Result<(SecretKey, Option<(Algorithm, u64)>)> {
    let source = &args.source;
    if let Some(uri) = &source.uri {
        let text = if uri == "-" {
            read_stdin_value("otpauth URI")?
        } else {
            ctx.log.note(
                "warning: a URI on the command line lands in your shell history; prefer --uri -",
            );
            Zeroizing::new(uri.clone())
        };
        let parsed = OtpauthUri::parse(&text).map_err(|e| UserError::usage(e.to_string()))?;
        // Another service's QR code (GitHub, a bank...) gives codes no knock-totp server knows.
        if let Some(issuer) = parsed.issuer.as_deref().filter(|i| *i != ISSUER) {
            ctx.log.note(format_args!(
                "WARNING: this URI is {issuer}'s, not knock-totp's (knock-totp:{}); \
                 if it is not the one `knock-totp setup` printed, `knock-totp remove {}` it",
                args.name, args.name
            ));
        }
        return Ok((parsed.secret, Some((parsed.algorithm, parsed.period))));
    }
    let text = match (&source.secret, &source.secret_file) {
        // A bare --secret asks: the hidden prompt on a terminal, stdin otherwise.
        (Some(None), _) if stdin_is_tty() => prompt_secret(&args.name)?,
        (Some(None), _) => read_stdin_value("secret")?,
        (Some(Some(value)), _) if value == "-" => read_stdin_value("secret")?,
        (Some(Some(value)), _) => {
            ctx.log.note("warning: a secret on the command line lands in your shell history; prefer --secret -");
            Zeroizing::new(value.clone())
        }
        (None, Some(path)) => Zeroizing::new(fs::read_to_string(path).map_err(|e| {
            UserError::usage(format!("cannot read secret file {}: {e}", path.display()))
        })?),
        (None, None) if stdin_is_tty() => prompt_secret(&args.name)?,
        (None, None) => {
            return Err(
                UserError::usage("no secret given and stdin is not a terminal to ask on")
                    .with_hint(
                        "pipe it in with `--secret -`, or use --uri -, or --secret-file PATH",
                    )
                    .into(),
            )
        }
    };
    let secret = SecretKey::from_base32(&text).map_err(|e| UserError::usage(e.to_string()))?;
    Ok((secret, None))
}

/// The hidden prompt for `name`'s secret.
fn prompt_secret(name: &str) -> anyhow::Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        dialoguer::Password::new()
            .with_prompt(format!("Base32 secret for {name}"))
            .interact()?,
    ))
}
