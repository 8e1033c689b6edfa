//! `knock`: knock a host's current sequence, optionally waiting until the port opens.
//! Also the knock-and-verify step that `ssh` and `proxy` share.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{read_stdin_value, Context};
use crate::cli::{KnockArgs, KnockOptions};
use crate::clock::wall_clock;
use crate::config::{HostProfile, DEFAULT_DELAY_MS};
use crate::core::secret::SecretKey;
use crate::core::totp::{Algorithm, Totp, DEFAULT_PERIOD};
use crate::core::window::Window;
use crate::error::UserError;
use crate::knock::{self, KnockError};

pub fn run(ctx: &Context, args: KnockArgs) -> anyhow::Result<()> {
    let (target, totp) = match (&args.name, &args.address) {
        (Some(name), None) => {
            let (_, mut target, totp) = Target::for_host(ctx, name, None)?;
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
            let addr = resolve(address, args.port)?;
            let delay = args.delay_ms.unwrap_or(DEFAULT_DELAY_MS);
            (Target::new(address, addr, delay), totp)
        }
        _ => unreachable!("clap makes NAME and --address exclusive and requires one"),
    };
    let opened = knock_host(ctx, &target, &totp, &args.options, args.verify)?;
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

/// Where to knock: the resolved protected address, a label for messages, the knock spacing.
pub struct Target {
    pub label: String,
    pub addr: SocketAddr,
    pub delay: Duration,
}

impl Target {
    pub fn new(label: &str, addr: SocketAddr, delay_ms: u64) -> Self {
        Self {
            label: label.to_owned(),
            addr,
            delay: Duration::from_millis(delay_ms),
        }
    }

    /// Host `name`'s profile, its protected address (the profile's port unless `port` says
    /// otherwise) resolved once with the profile's knock delay, and its code generator.
    pub fn for_host(
        ctx: &Context,
        name: &str,
        port: Option<u16>,
    ) -> anyhow::Result<(HostProfile, Self, Totp)> {
        let (profile, totp) = ctx.totp(name)?;
        let addr = resolve(&profile.address, port.unwrap_or(profile.port))?;
        let target = Self::new(name, addr, profile.delay_ms);
        Ok((profile, target, totp))
    }
}

/// Resolves a profile's address once, mapping failures to a runtime error with a hint.
pub fn resolve(address: &str, port: u16) -> anyhow::Result<SocketAddr> {
    knock::resolve_once(address, port).map_err(|e| {
        UserError::runtime(e.to_string())
            .with_hint(
                "check the name and your DNS, or store an IP address in the profile \
                 (`knock-totp add NAME --address IP --force ...`)",
            )
            .into()
    })
}

/// Knocks the current window's sequence at `target`. With `verify`, polls the protected port
/// until it accepts (returning that connection), knocking once more if the window changed while
/// waiting; fails with the likely causes when it never opens.
pub fn knock_host(
    ctx: &Context,
    target: &Target,
    totp: &Totp,
    options: &KnockOptions,
    verify: bool,
) -> anyhow::Result<Option<TcpStream>> {
    let timeout = Duration::from_secs_f64(options.timeout);
    let mut window = knock_window(ctx, target, totp, options.margin)?;
    if !verify {
        return Ok(None);
    }
    let mut knocked_again = false;
    loop {
        if let Some(stream) = knock::wait_until_open(target.addr, timeout).map_err(network)? {
            ctx.log
                .detail(format!("port {} accepted a connection", target.addr.port()));
            return Ok(Some(stream));
        }
        let current = totp.window_at(wall_clock()?.as_secs());
        if !knock::should_knock_again(window.counter, current.counter, knocked_again) {
            break;
        }
        knocked_again = true;
        ctx.log.note(format!(
            "{}: port {} did not open and the code has changed since; knocking again",
            target.label,
            target.addr.port()
        ));
        window = knock_window(ctx, target, totp, options.margin)?;
    }
    Err(UserError::runtime(format!(
        "{}: port {} on {} did not open within {} s of knocking; likely causes: the clock is \
         off (TOTP needs it within a few seconds of the server's), the secret is wrong, or the \
         knock ports (1000-9999) are filtered before they reach knockd (a cloud firewall or \
         security group)",
        target.label,
        target.addr.port(),
        target.addr.ip(),
        options.timeout
    ))
    .with_hint(format!(
        "compare `knock-totp ports {}` with the ports knockd expects (its log, or the \
         authenticator app's code), sync the clock (e.g. `timedatectl set-ntp true`), and let \
         TCP 1000-9999 reach the server",
        target.label
    ))
    .into())
}

/// Waits out the end of a window when fewer than `margin` seconds are left, then knocks that
/// window's ports. Returns the window knocked.
fn knock_window(
    ctx: &Context,
    target: &Target,
    totp: &Totp,
    margin: u64,
) -> anyhow::Result<Window> {
    let now = wall_clock()?;
    if let Some(wait) = knock::edge_wait(now, totp.period(), margin) {
        ctx.log.note(format!(
            "{}: the code changes in {:.1} s; waiting for the next one",
            target.label,
            wait.as_secs_f64()
        ));
        std::thread::sleep(wait);
    }
    let window = totp.window_at(wall_clock()?.as_secs());
    let ports = totp.ports_for(window);
    ctx.log.detail(format!(
        "knocking {} on ports {} ({} ms apart), then port {}",
        target.addr.ip(),
        ports,
        target.delay.as_millis(),
        target.addr.port()
    ));
    knock::knock_sequence(target.addr.ip(), ports, target.delay).map_err(network)?;
    Ok(window)
}

fn network(error: KnockError) -> anyhow::Error {
    UserError::runtime(error.to_string()).into()
}
