//! Command-line surface (clap derive types only; doc comments are the help text).

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand};

use crate::client::hosts::{StoreKind, DEFAULT_DELAY_MS};
use crate::core::totp::Algorithm;
use crate::core::window::DEFAULT_MARGIN_SECS;
use crate::server::config::EngineKind;
use crate::server::firewall::FirewallKind;

#[derive(Debug, Parser)]
#[command(
    name = "knock-totp",
    version,
    about = "Time-based port knocking: TOTP codes turned into knocks, doors in nftables or knockd",
    long_about = "Time-based port knocking. Every 30 seconds a host's shared secret gives a \
                  six-digit TOTP code (the one Google Authenticator shows); its first and last \
                  four digits are the two ports to knock. knock-totp knocks them, connects and \
                  runs ssh for the user; for the administrator it enrolls servers and runs the \
                  server that opens the doors: its nftables engine (the default) keeps them in \
                  the kernel, single use, rate limited and banning guessers; its knockd engine \
                  (for compatibility with knockd servers) rotates knockd's sequence instead."
)]
pub struct Cli {
    /// Say more on stderr (repeat for more detail); never shows secrets
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a host profile and store its secret
    Add(AddArgs),
    /// List host profiles (never shows secrets)
    List(ListArgs),
    /// Show one host profile; with --qr, its enrollment QR code and URI
    Show(ShowArgs),
    /// Remove a host profile and its secret
    Remove(RemoveArgs),
    /// Print the current code and seconds left; without NAME, every host's
    Code(CodeArgs),
    /// Print the knock ports of the current (or another) window
    Ports(PortsArgs),
    /// Knock a host's port sequence
    Knock(KnockArgs),
    /// Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection
    Ssh(SshArgs),
    /// Knock, connect and relay stdin/stdout (for ssh's ProxyCommand)
    Proxy(ProxyArgs),
    /// Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs
    ///
    /// The daemon's systemd unit runs this very binary (`ExecStart` is its canonical path):
    /// run setup with the knock-totp the server will use, installed as root (setup warns when
    /// another user could replace it), or change `ExecStart`. The unit keeps only the
    /// capability its engine needs (nftables: CAP_NET_ADMIN; knockd: none), filters system
    /// calls and allows no core dump.
    Setup(SetupArgs),
    /// Run the rotation daemon that keeps the doors following the code
    ///
    /// The configuration (TOML, written by `setup`) names the engine: `nftables` (the doors in
    /// the kernel) or `knockd`. With knockd, `knockd_reload_command` tells knockd to reload
    /// (`systemctl reload knockd.service`); without systemd, set `knockd_pid_file` instead
    /// (knockd writes a pid file only when run with -d and PidFile): the daemon then sends
    /// knockd SIGHUP itself and restarts it if a reload kills it.
    ///
    /// For the operator of the nftables engine: `--status` reads the kernel's table (the doors
    /// and their owners, allowed, banned and trusted sources with the level of each ban and the
    /// time left, the counters; `--json` adds RFC 3339 times) and starts with a WARNING line when
    /// no door covers the current moment (the daemon is not running or not rotating);
    /// `server unban --config FILE ADDRESS` lifts an address's bans. Run them as root.
    Server(ServerArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// Where `add` reads the secret from (at most one; a hidden prompt when none and on a TTY).
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct SecretSource {
    /// Base32 secret, - to read it from stdin, or nothing to be asked (hidden prompt on a terminal, else stdin); a value on the command line lands in shell history
    #[arg(long, value_name = "SECRET|-", num_args = 0..=1)]
    pub secret: Option<Option<String>>,

    /// Read the Base32 secret from a file
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,

    /// An otpauth://totp/ URI (as `setup` prints it), or - to read it from stdin
    #[arg(long, value_name = "URI|-")]
    pub uri: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name of the profile: up to 63 letters, digits, '.', '_' and '-', not starting with '-'
    pub name: String,

    /// DNS name or IP address of the server
    #[arg(long, short = 'a')]
    pub address: String,

    /// Protected port that the knock opens
    #[arg(long, short = 'p', default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// User for ssh
    #[arg(long, short = 'u')]
    pub user: Option<String>,

    /// Milliseconds between the two knocks
    #[arg(long, default_value_t = DEFAULT_DELAY_MS, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub delay_ms: u64,

    /// HMAC algorithm (from the URI when --uri is given)
    #[arg(long, value_parser = parse_algorithm)]
    pub algorithm: Option<Algorithm>,

    /// TOTP period in seconds (from the URI when --uri is given)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub period: Option<u64>,

    /// Secret store for this host (default: `secret_store` in hosts.toml, else keyring)
    #[arg(long, value_enum)]
    pub store: Option<StoreArg>,

    #[command(flatten)]
    pub source: SecretSource,

    /// Replace an existing profile of the same name
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON
    #[arg(long, conflicts_with = "names")]
    pub json: bool,

    /// Print only the host names, one per line (for shell completion)
    #[arg(long)]
    pub names: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Host profile
    pub name: String,

    /// Show the enrollment QR code and otpauth URI (reveals the secret)
    #[arg(long)]
    pub qr: bool,

    /// Print the Base32 secret
    #[arg(long, conflicts_with = "qr")]
    pub secret: bool,

    /// Do not ask before revealing the secret
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print JSON (never includes the secret)
    #[arg(long, conflicts_with_all = ["qr", "secret"])]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Host profile
    pub name: String,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// When to compute a code: now, or another moment.
#[derive(Debug, Args, Default, Clone)]
pub struct TimeArgs {
    /// Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    pub at: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CodeArgs {
    /// Host profile (all hosts when omitted)
    pub name: Option<String>,

    /// Redraw every second with a countdown until Ctrl-C
    #[arg(long, short = 'w', conflicts_with_all = ["at", "json"])]
    pub watch: bool,

    #[command(flatten)]
    pub time: TimeArgs,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Host profile
    #[arg(required_unless_present = "from_code")]
    pub name: Option<String>,

    /// The next window's ports instead of the current one's
    #[arg(long, short = 'n')]
    pub next: bool,

    #[command(flatten)]
    pub time: TimeArgs,

    /// Print JSON
    #[arg(long)]
    pub json: bool,

    /// Turn a code read off an authenticator app into ports (no host, no secret)
    #[arg(long, value_name = "CODE", conflicts_with_all = ["name", "next", "at"])]
    pub from_code: Option<String>,
}

/// How knocks are sent and checked.
#[derive(Debug, Args, Clone)]
pub struct KnockOptions {
    /// Seconds to wait for the protected port to open
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub timeout: f64,

    /// Wait for the next window when fewer than this many seconds are left
    #[arg(long, default_value_t = DEFAULT_MARGIN_SECS, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub margin: u64,
}

#[derive(Debug, Args)]
pub struct KnockArgs {
    /// Host profile (or give --address, --port and --secret -)
    #[arg(required_unless_present = "address")]
    pub name: Option<String>,

    /// Knock this address instead of a profile's (the secret comes from stdin)
    #[arg(long, short = 'a', conflicts_with = "name", requires = "secret")]
    pub address: Option<String>,

    /// Protected port, for --address
    #[arg(long, short = 'p', default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// With --address: - reads the Base32 secret from stdin
    #[arg(long, value_name = "-", requires = "address")]
    pub secret: Option<String>,

    /// Milliseconds between knocks (default: the profile's, else 10)
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub delay_ms: Option<u64>,

    /// With --address: HMAC algorithm
    #[arg(long, value_parser = parse_algorithm, requires = "address")]
    pub algorithm: Option<Algorithm>,

    /// With --address: TOTP period in seconds
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400), requires = "address")]
    pub period: Option<u64>,

    /// Wait until the protected port accepts a connection (knock again once if the window changed)
    #[arg(long)]
    pub verify: bool,

    #[command(flatten)]
    pub options: KnockOptions,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Host profile
    pub name: String,

    /// ssh program to run
    #[arg(long, env = "KNOCK_TOTP_SSH", default_value = "ssh")]
    pub ssh_bin: PathBuf,

    #[command(flatten)]
    pub options: KnockOptions,

    /// Arguments passed to ssh after the destination (put them after --)
    #[arg(last = true)]
    pub ssh_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Host profile (ssh's %n)
    pub name: String,

    /// Host ssh asked for (%h); informational, the profile's address is used
    pub host: Option<String>,

    /// Port ssh asked for (%p); overrides the profile's port
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Hand the connection to ssh and exit instead of relaying it (needs `ProxyUseFdpass yes`)
    #[arg(long)]
    pub fdpass: bool,

    #[command(flatten)]
    pub options: KnockOptions,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("writes").args(["out", "user"]).multiple(true))]
pub struct SetupArgs {
    /// Name of the server (the label in the authenticator app and the client profile): up to 63
    /// letters, digits, '.', '_' and '-', not starting with '-'
    pub name: String,

    /// Address clients use to reach the server (for the enrollment command)
    #[arg(long, short = 'a')]
    pub address: Option<String>,

    /// Protected port
    #[arg(long, short = 'p', default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Network interface knockd listens on
    #[arg(long, short = 'i', default_value = "eth0")]
    pub interface: String,

    /// Knock engine: nftables (in the kernel) or knockd (the original design)
    #[arg(long, value_enum, default_value_t = EngineKind::Nftables)]
    pub engine: EngineKind,

    /// How the door opens the protected port (default: nftables; iptables with --engine knockd)
    #[arg(long, value_enum)]
    pub firewall: Option<FirewallKind>,

    /// AWS security group (sg-...) for --firewall aws; the NSG name for --firewall azure
    #[arg(long, value_name = "SG")]
    pub security_group: Option<String>,

    /// Cloud region, for --firewall aws
    #[arg(long)]
    pub region: Option<String>,

    /// Azure resource group of the network security group (--security-group), for --firewall azure
    #[arg(long, value_name = "GROUP")]
    pub resource_group: Option<String>,

    /// VPC network for the firewall rules, for --firewall gcp
    #[arg(long, value_name = "NETWORK", default_value = "default")]
    pub network: String,

    /// - reads the Base32 secret from stdin instead of generating one
    #[arg(long, value_name = "-")]
    pub secret: Option<String>,

    /// TOTP period in seconds, 5-120 (authenticator apps assume 30)
    #[arg(long, default_value_t = 30)]
    pub period: u64,

    /// Seconds a door stays open for the knocking address, 1-300 (default 30; with --user, the
    /// user's own, default the server's)
    #[arg(long)]
    pub open_seconds: Option<u64>,

    /// Write the files into this directory instead of printing them (created 0700; an existing
    /// one must be yours and writable by you only)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Overwrite existing files under --out
    #[arg(long, short = 'f')]
    pub force: bool,

    /// With --out or --user, print the QR code and the otpauth URI (they hold the secret) even
    /// when stdout is not a terminal; they are always in NAME.otpauth (mode 0600) under --out
    #[arg(long, requires = "writes")]
    pub show_secret: bool,

    /// Also write the QR code as a PNG image
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<PathBuf>,

    /// Also write the QR code as an SVG image
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,

    /// Render the example doors for this moment instead of now (for tests and previews)
    #[arg(long, hide = true, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<u64>,

    /// Enroll user USER of server NAME instead: write NAME.d/USER.toml, USER.secret and
    /// USER.otpauth under --out (default /etc/knock-totp), with the server's period and algorithm
    #[arg(
        long,
        value_name = "USER",
        conflicts_with_all = [
            "port", "interface", "engine", "firewall", "security_group", "region",
            "resource_group", "network", "period", "at",
        ],
    )]
    pub user: Option<String>,

    /// With --user, when the user stops opening doors: unix seconds or RFC 3339
    /// (2027-01-31T18:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "user")]
    pub expires: Option<u64>,
}

#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true, disable_help_subcommand = true)]
pub struct ServerArgs {
    /// Server configuration file (written by `setup`)
    #[arg(long, short = 'c', value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,

    /// Do one rotation and exit
    #[arg(long)]
    pub once: bool,

    /// Print the actions instead of doing them, window after window (it never exits: add --once for one pass)
    #[arg(long)]
    pub dry_run: bool,

    /// Print the engine's state (doors, allowed and banned sources, counters) and exit; with
    /// -v, the door ports too
    #[arg(long, conflicts_with_all = ["once", "dry_run"])]
    pub status: bool,

    /// With --status: print JSON
    #[arg(long, requires = "status")]
    pub json: bool,

    /// Write Prometheus metrics (counters, attack state, doors) to PATH, replaced atomically
    /// after each rotation and within seconds of a change, for node_exporter's textfile
    /// collector (name it *.prom); nftables engine only
    #[arg(long, value_name = "PATH", conflicts_with_all = ["status", "dry_run"])]
    pub metrics_file: Option<PathBuf>,

    #[command(subcommand)]
    pub action: Option<ServerAction>,
}

/// What `server` does instead of running the daemon.
#[derive(Debug, Subcommand)]
pub enum ServerAction {
    /// Lift the nftables engine's bans of an address and forget its wrong knocks
    ///
    /// Its next knock is then not banned again.
    /// ADDRESS is one IPv4 or IPv6 address, as a client knocks from: every ban level whose
    /// network holds it is lifted (its own /32, its /24 and /16 with the default prefixes; an
    /// IPv6 address's /64, /48 and /32), with the wrong-knock and rate meters of those
    /// networks, in one nft transaction. Lifting a network's ban lifts it for the whole
    /// network: any address inside a network `--status` lists will do. Run as root.
    Unban(UnbanArgs),
}

#[derive(Debug, Args)]
pub struct UnbanArgs {
    /// The address to unban (IPv4 or IPv6, no prefix length)
    #[arg(value_name = "ADDRESS")]
    pub address: String,

    /// Server configuration file (written by `setup`), here or before `unban`
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate the script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn parse_algorithm(input: &str) -> Result<Algorithm, String> {
    input
        .parse()
        .map_err(|e: crate::core::totp::TotpError| e.to_string())
}

fn parse_seconds(input: &str) -> Result<f64, String> {
    match input.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(s),
        _ => Err("expected a number of seconds between 0 and 3600".into()),
    }
}

/// Unix seconds or an RFC 3339 timestamp, from 1970 up to the year 9999.
pub fn parse_time(input: &str) -> Result<u64, String> {
    let input = input.trim();
    if let Some(digits) = input.strip_prefix('@').or(Some(input)) {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let seconds: u64 = digits
                .parse()
                .map_err(|_| "the time is too large".to_string())?;
            if seconds > 253_402_300_799 {
                return Err("the time is past the year 9999".into());
            }
            return Ok(seconds);
        }
    }
    if input.starts_with('-') {
        return Err("the time is before 1970: give unix seconds >= 0 or a later date".into());
    }
    let timestamp: jiff::Timestamp = input.parse().map_err(|_| {
        "expected unix seconds (1111111109) or RFC 3339 (2026-01-02T03:04:05Z)".to_string()
    })?;
    u64::try_from(timestamp.as_second())
        .map_err(|_| "the time is before 1970: TOTP counts from the unix epoch".to_string())
}

/// Where a host's secret is kept (maps to [`StoreKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreArg {
    /// The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager)
    Keyring,
    /// One 0600 file per host under the config directory
    File,
}

impl From<StoreArg> for StoreKind {
    fn from(arg: StoreArg) -> Self {
        match arg {
            StoreArg::Keyring => Self::Keyring,
            StoreArg::File => Self::File,
        }
    }
}

/// `--engine` takes the engines by name, with their summaries in `--help`.
impl clap::ValueEnum for EngineKind {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()).help(self.summary()))
    }
}

/// `--firewall` takes the firewall backends by name, with their summaries in `--help`.
impl clap::ValueEnum for FirewallKind {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()).help(self.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1111111109"), Ok(1111111109));
        assert_eq!(parse_time("@59"), Ok(59));
        assert_eq!(parse_time("2005-03-18T01:58:29Z"), Ok(1111111109));
        assert_eq!(parse_time("2005-03-18T02:58:29+01:00"), Ok(1111111109));
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("-1").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("99999999999999999999999").is_err());
        assert_eq!(parse_time("2200-01-01T00:00:00Z"), Ok(7_258_118_400));
    }
}
