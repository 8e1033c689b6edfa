//! One module per subcommand, a shared `Context`, and the dispatch `match`.

mod add;
mod code;
mod completions;
mod knock;
mod list;
mod ports;
mod proxy;
mod remove;
mod server;
mod setup;
mod show;
mod ssh;

use std::io::{IsTerminal, Read};

use zeroize::Zeroizing;

use crate::cli::{Cli, Command};
use crate::client::hosts::{ConfigPaths, HostProfile, HostsFile};
use crate::client::store;
use crate::core::secret::SecretKey;
use crate::core::totp::Totp;
use crate::error::UserError;
use crate::log::Log;

/// What every subcommand may need: where the configuration is, and how chatty to be.
pub struct Context {
    pub paths: ConfigPaths,
    pub log: Log,
}

impl Context {
    /// A host's profile, or the "no such host" error (exit 3).
    pub fn host(&self, name: &str) -> anyhow::Result<(HostsFile, HostProfile)> {
        let hosts = self.paths.load()?;
        let profile = hosts.host(name)?.clone();
        Ok((hosts, profile))
    }

    /// The host's secret from its store.
    pub fn secret(
        &self,
        hosts: &HostsFile,
        name: &str,
        profile: &HostProfile,
    ) -> anyhow::Result<SecretKey> {
        let kind = hosts.store_for(profile);
        store::open(kind, &self.paths)
            .get(name)
            .map_err(|e| UserError::from(e).into())
    }

    /// Code generator for a host.
    pub fn totp(&self, name: &str) -> anyhow::Result<(HostProfile, Totp)> {
        let (hosts, profile) = self.host(name)?;
        let totp = self.totp_of(&hosts, name, &profile)?;
        Ok((profile, totp))
    }

    /// Code generator for a host of an already loaded hosts file.
    pub fn totp_of(
        &self,
        hosts: &HostsFile,
        name: &str,
        profile: &HostProfile,
    ) -> anyhow::Result<Totp> {
        let secret = self.secret(hosts, name, profile)?;
        Ok(Totp::new(&secret, profile.algorithm, profile.period)
            .map_err(|e| UserError::usage(format!("host {name}: {e}")))?)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        paths: ConfigPaths::from_env()?,
        log: Log {
            verbose: cli.verbose,
            quiet: cli.quiet,
        },
    };
    match cli.command {
        Command::Add(args) => add::run(&ctx, args),
        Command::List(args) => list::run(&ctx, args),
        Command::Show(args) => show::run(&ctx, args),
        Command::Remove(args) => remove::run(&ctx, args),
        Command::Code(args) => code::run(&ctx, args),
        Command::Ports(args) => ports::run(&ctx, args),
        Command::Knock(args) => knock::run(&ctx, args),
        Command::Ssh(args) => ssh::run(&ctx, args),
        Command::Proxy(args) => proxy::run(&ctx, args),
        Command::Setup(args) => setup::run(&ctx, args),
        Command::Server(args) => server::run(&ctx, args),
        Command::Completions(args) => completions::run(&ctx, args),
    }
}

/// Whole seconds since the unix epoch from the system clock.
pub fn now() -> anyhow::Result<u64> {
    Ok(crate::clock::wall_clock()?.as_secs())
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Longest stdin we read for a secret or URI; anything longer is not one.
const MAX_STDIN_SECRET: u64 = 64 * 1024;

/// Reads a secret or URI from stdin: one value, surrounding whitespace removed.
pub fn read_stdin_value(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN_SECRET + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UserError::runtime(format!("cannot read the {what} from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN_SECRET {
        return Err(UserError::usage(format!(
            "stdin is too long for a {what} (over {MAX_STDIN_SECRET} bytes)"
        ))
        .into());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| UserError::usage(format!("the {what} on stdin is not UTF-8 text")))?;
    let value = Zeroizing::new(text.trim().to_owned());
    if value.is_empty() {
        return Err(UserError::usage(format!("stdin held no {what}"))
            .with_hint("pipe it in, e.g. `printf %s \"$VALUE\" | knock-totp ... -`")
            .into());
    }
    Ok(value)
}

/// Asks a yes/no question on the terminal; `false` when there is no terminal to ask on.
pub fn confirm(prompt: &str) -> anyhow::Result<bool> {
    if !stdin_is_tty() {
        return Ok(false);
    }
    Ok(dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()?)
}
