//! `ports`: the knock ports of a window, or of a code read off a phone.

use std::io::Write;

use super::code::json_for;
use crate::cli::args::PortsArgs;
use crate::cli::term::{now, stdout_is_tty};
use crate::cli::Context;
use crate::core::ports::{Code, WEAK_PAIR};
use crate::error::UserError;

pub fn run(ctx: &Context, args: PortsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(text) = &args.from_code {
        let code: Code = text
            .parse()
            .map_err(|e: crate::core::ports::CodeError| UserError::usage(e.to_string()))?;
        let ports = code.ports();
        if ports.is_weak() {
            ctx.log.note(format!(
                "{WEAK_PAIR}: knock the next window's ports (wait for the next code in your app)"
            ));
        }
        if args.json {
            let value = serde_json::json!({"code": code.to_string(), "ports": ports.0});
            writeln!(out, "{value}")?;
        } else {
            writeln!(out, "{ports}")?;
        }
        return Ok(());
    }
    let name = args
        .name
        .as_deref()
        .expect("clap requires NAME without --from-code");
    let (_, totp) = ctx.totp(name)?;
    let time = match args.time.at {
        Some(at) => at,
        None => now()?,
    };
    let current = totp.window_at(time);
    let window = if args.next { current.next() } else { current };
    let code = totp.code_for(window);
    if code.ports().is_weak() {
        ctx.log.note(format!(
            "{WEAK_PAIR}: knock the next window's ports (`knock-totp ports {name} --next`)"
        ));
    }
    if args.json {
        writeln!(out, "{}", json_for(name, code, window, time))?;
    } else if stdout_is_tty() {
        let when = if args.next {
            format!("from {} s from now", current.seconds_left(time))
        } else {
            format!("{} s left", window.seconds_left(time))
        };
        writeln!(out, "{}  ({when})", code.ports())?;
    } else {
        writeln!(out, "{}", code.ports())?;
    }
    Ok(())
}
