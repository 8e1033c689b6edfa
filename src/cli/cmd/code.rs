//! `code`: the current code and seconds left, for one host or all (the authenticator view).

use std::io::Write;
use std::time::Duration;

use crate::cli::args::CodeArgs;
use crate::cli::term::{now, stdout_is_tty};
use crate::cli::Context;
use crate::core::ports::Code;
use crate::core::totp::Totp;
use crate::core::window::Window;

/// Characters in the `--watch` countdown bar.
const BAR_WIDTH: u64 = 30;

pub fn run(ctx: &Context, args: CodeArgs) -> anyhow::Result<()> {
    let hosts: Vec<(String, Totp)> = match &args.name {
        Some(name) => vec![(name.clone(), ctx.totp(name)?.1)],
        None => {
            let file = ctx.paths.load()?;
            if file.hosts.is_empty() {
                ctx.log
                    .note("no hosts yet: `knock-totp add NAME --address ADDR` adds one");
                return Ok(());
            }
            file.hosts
                .iter()
                .map(|(name, profile)| Ok((name.clone(), ctx.totp_of(&file, name, profile)?)))
                .collect::<anyhow::Result<_>>()?
        }
    };
    if args.watch {
        return watch(&hosts, args.name.is_none());
    }
    let time = match args.time.at {
        Some(at) => at,
        None => now()?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = hosts
            .iter()
            .map(|(name, totp)| json_row(name, totp, time))
            .collect();
        let value = match (args.name.is_some(), rows.as_slice()) {
            (true, [one]) => one.clone(),
            _ => serde_json::Value::Array(rows),
        };
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let tty = stdout_is_tty();
    for (name, totp) in &hosts {
        let window = totp.window_at(time);
        let code = totp.code_for(window);
        let left = window.seconds_left(time);
        match (args.name.is_some(), tty) {
            (true, false) => writeln!(out, "{code}")?,
            (true, true) => writeln!(out, "{code}  ({left} s left)")?,
            (false, _) => writeln!(out, "{name}  {code}  {}  {left:>2} s", code.ports())?,
        }
    }
    Ok(())
}

pub fn json_row(name: &str, totp: &Totp, time: u64) -> serde_json::Value {
    let window = totp.window_at(time);
    let code = totp.code_for(window);
    json_for(name, code, window, time)
}

pub fn json_for(name: &str, code: Code, window: Window, time: u64) -> serde_json::Value {
    serde_json::json!({
        "host": name,
        "code": code.to_string(),
        "ports": code.ports().0,
        "window": window.counter,
        "seconds_left": window.seconds_left(time),
    })
}

fn bar(left: u64, period: u64) -> String {
    let filled = (left * BAR_WIDTH).div_ceil(period.max(1)).min(BAR_WIDTH);
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        ".".repeat((BAR_WIDTH - filled) as usize)
    )
}

/// Redraws every second until interrupted. Without a terminal, prints one line per new code.
fn watch(hosts: &[(String, Totp)], all: bool) -> anyhow::Result<()> {
    let tty = stdout_is_tty();
    let mut last_windows: Vec<Option<Window>> = vec![None; hosts.len()];
    loop {
        let time = now()?;
        let mut out = std::io::stdout().lock();
        if tty && all {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        for (i, (name, totp)) in hosts.iter().enumerate() {
            let window = totp.window_at(time);
            let code = totp.code_for(window);
            let left = window.seconds_left(time);
            if tty {
                let line = format!(
                    "{code}  {}  {} {left:>2} s",
                    code.ports(),
                    bar(left, totp.period())
                );
                if all {
                    writeln!(out, "{name:<20} {line}")?;
                } else {
                    write!(out, "\r\x1b[2K{line}")?;
                }
            } else if last_windows[i] != Some(window) {
                if all {
                    writeln!(out, "{name} {code}")?;
                } else {
                    writeln!(out, "{code}")?;
                }
            }
            last_windows[i] = Some(window);
        }
        out.flush()?;
        drop(out);
        let subsec = crate::clock::wall_clock()?.subsec_millis();
        std::thread::sleep(Duration::from_millis(u64::from(1000 - subsec.min(999))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_counts_down() {
        assert_eq!(bar(30, 30), format!("[{}]", "#".repeat(30)));
        assert_eq!(bar(15, 30).matches('#').count(), 15);
        assert_eq!(bar(1, 30).matches('#').count(), 1);
    }
}
