//! The command line: clap types, the shared `Context`, the one dispatch `match`, one file per
//! subcommand, completions, man pages and QR codes.

pub mod args;
pub mod cmd;
pub mod completions;
pub mod manpages;
pub mod qr;
pub mod term;

use self::args::{Cli, Command};
use self::cmd::{add, code, knock, list, ports, proxy, remove, server, setup, show, ssh};
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
        Command::Completions(args) => cmd::completions::run(&ctx, args),
    }
}
