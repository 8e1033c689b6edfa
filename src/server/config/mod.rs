//! The server's configuration file for `knock-totp server`, and the systemd unit that runs it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::names::validate_host_name;
use crate::core::ports::{knock_range_text, MAX_KNOCK_PORT, MIN_KNOCK_PORT};
use crate::core::totp::{Algorithm, DEFAULT_PERIOD};
use crate::error::UserError;
use crate::fsutil::{file_place, parse_toml};
use crate::server::firewall::{
    AwsTarget, AzureTarget, Firewall, FirewallKind, GcpTarget, ProtectedPort, SettingsSource,
};
use crate::server::paths::{self, SECRET_CREDENTIAL};

pub mod nftables;

pub use self::nftables::{Cidr, NftSettings};

pub const DEFAULT_OPEN_SECONDS: u64 = 30;
/// Longest grant: a grant only has to let a connection start.
pub const MAX_OPEN_SECONDS: u64 = 300;
pub const DEFAULT_SEQ_TIMEOUT: u64 = 10;

/// What a knockd server without systemd sets instead of `knockd_reload_command`.
const KNOCKD_PID_FILE_HINT: &str = "\
# Without systemd: remove knockd_reload_command, run knockd with -d, and uncomment this;
# the daemon then reloads knockd with SIGHUP itself (knockd.conf gets PidFile = this path).
# knockd_pid_file = \"/run/knockd.pid\"
";

/// `knock-totp server`'s configuration (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Server name (a valid host name); rule descriptions say `knock-totp:NAME`.
    pub name: String,
    /// Base32 secret, in a root-only 0600 file.
    pub secret_file: PathBuf,
    /// Protected port.
    pub port: u16,
    /// Knock engine; a file without the key predates the nftables engine and means knockd.
    #[serde(default = "EngineKind::legacy")]
    pub engine: EngineKind,
    /// Interface knockd listens on (knockd engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// knockd.conf the daemon rewrites (atomically) at every window (knockd engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knockd_conf: Option<PathBuf>,
    /// knockd's pid file, to send it SIGHUP (knockd writes one only with `-d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knockd_pid_file: Option<PathBuf>,
    /// Command that makes knockd reload its configuration (argv, no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knockd_reload_command: Option<Vec<String>>,
    pub firewall: FirewallKind,
    /// Seconds a door stays open for the knocking address.
    #[serde(default = "default_open_seconds")]
    pub open_seconds: u64,
    /// Seconds allowed between the two knocks.
    #[serde(default = "default_seq_timeout")]
    pub seq_timeout: u64,
    /// Seconds before knockd runs a door's stop command (default: open_seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd_timeout: Option<u64>,
    #[serde(default = "crate::core::totp::default_period")]
    pub period: u64,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureTarget>,
    /// The nftables engine's limits (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables: Option<NftSettings>,
}

/// Which engine opens the doors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// In the kernel: sweep-proof, rate-limited, single-use, time-bounded doors.
    Nftables,
    /// knockd with one door per window (the original design).
    Knockd,
}

impl EngineKind {
    fn legacy() -> Self {
        Self::Knockd
    }

    pub const ALL: &'static [Self] = &[Self::Nftables, Self::Knockd];

    pub fn as_str(self) -> &'static str {
        self.about().0
    }

    /// What it is, in one line.
    pub fn summary(self) -> &'static str {
        self.about().1
    }

    fn about(self) -> (&'static str, &'static str) {
        match self {
            Self::Nftables => (
                "nftables",
                "In-kernel doors: sweep-proof, rate-limited, single-use, fail-closed",
            ),
            Self::Knockd => (
                "knockd",
                "knockd with one door per window (the original design)",
            ),
        }
    }
}

fn default_open_seconds() -> u64 {
    DEFAULT_OPEN_SECONDS
}
fn default_seq_timeout() -> u64 {
    DEFAULT_SEQ_TIMEOUT
}

/// A network interface name as Linux accepts it: 1-15 bytes, no '/', ':' or whitespace.
pub fn validate_interface(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid interface name {:?}: 1-15 letters, digits, '-', '_', '.' or '@'",
            name.chars().take(40).collect::<String>()
        ))
    }
}

impl ServerConfig {
    /// The configuration `setup` writes for a new server, with the standard paths.
    pub fn new(
        name: &str,
        port: u16,
        engine: EngineKind,
        interface: &str,
        firewall: &Firewall,
    ) -> Self {
        let knockd = engine == EngineKind::Knockd;
        // A cloud's settings go in its table.
        let (aws, gcp, azure) = match firewall {
            Firewall::Aws(a) => (Some(a.clone()), None, None),
            Firewall::Gcp(g) => (None, Some(g.clone()), None),
            Firewall::Azure(a) => (None, None, Some(a.clone())),
            _ => (None, None, None),
        };
        Self {
            name: name.to_owned(),
            secret_file: paths::secret_file_path(name),
            port,
            engine,
            interface: knockd.then(|| interface.to_owned()),
            knockd_conf: knockd.then(|| paths::knockd_conf_path(name)),
            knockd_pid_file: None,
            knockd_reload_command: knockd.then(|| {
                ["systemctl", "reload", "knockd.service"]
                    .map(String::from)
                    .to_vec()
            }),
            firewall: firewall.kind(),
            open_seconds: DEFAULT_OPEN_SECONDS,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            cmd_timeout: None,
            period: DEFAULT_PERIOD,
            algorithm: Algorithm::Sha1,
            aws,
            gcp,
            azure,
            nftables: (!knockd).then(NftSettings::default),
        }
    }

    /// Where the configuration of server `name` goes on the server.
    pub fn default_path(name: &str) -> PathBuf {
        paths::config_path(name)
    }

    /// Parses and validates the file's text; errors name `origin` and the line.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, UserError> {
        let config: Self = parse_toml(text, origin)?;
        config.validate().map_err(|(key, message)| {
            UserError::usage(format!(
                "{}: {message}",
                file_place(origin, line_of_key(text, key))
            ))
        })?;
        Ok(config)
    }

    /// Reads and parses the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "run the server as root (sudo), or through its systemd unit \
                 (systemctl start knock-totp-NAME)"
            } else {
                "`knock-totp setup NAME --out DIR` writes one"
            };
            UserError::usage(format!("cannot read {}: {e}", path.display())).with_hint(hint)
        })?;
        Ok(Self::parse(&text, path)?)
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_host_name(&self.name).map_err(|e| ("name", e))?;
        for (key, path) in [
            ("secret_file", Some(&self.secret_file)),
            ("knockd_conf", self.knockd_conf.as_ref()),
            ("knockd_pid_file", self.knockd_pid_file.as_ref()),
        ] {
            if let Some(path) = path {
                if !path.is_absolute() || path.file_name().is_none() {
                    return Err((
                        key,
                        format!("{key} must be an absolute file path, got {:?}", path),
                    ));
                }
            }
        }
        if self.port == 0 {
            return Err(("port", "port 0 is not a usable TCP port (1-65535)".into()));
        }
        if self.engine == EngineKind::Knockd {
            self.validate_knockd()?;
        }
        if let Some(nft) = &self.nftables {
            nft.validate()?;
        }
        // Each bound says why a value outside it defeats the design.
        for (key, value, range, why) in [
            (
                "period",
                self.period,
                5..=120,
                "the doors of the previous, current and next windows are open, so a captured \
                 knock stays valid for three periods, and a client needs a few seconds of a \
                 window to knock",
            ),
            (
                "open_seconds",
                self.open_seconds,
                1..=MAX_OPEN_SECONDS,
                "a grant only has to let a connection start (established ones stay open); a \
                 long one opens the port to everyone behind the knocker's address",
            ),
            (
                "seq_timeout",
                self.seq_timeout,
                1..=60,
                "a door's two knocks come within a second; a long stage keeps a guesser's \
                 half-finished attempts alive",
            ),
            (
                "cmd_timeout",
                self.cmd_timeout(),
                1..=300,
                "it is how long a knockd door stays open, bounded as open_seconds is",
            ),
        ] {
            if !range.contains(&value) {
                return Err((
                    key,
                    format!(
                        "{key} must be between {} and {} seconds, got {value}: {why}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let firewall = self.firewall_backend()?;
        firewall
            .validate()
            .map_err(|e| (firewall.backend().settings_key(), e.to_string()))
    }

    /// What the knockd engine needs: an interface, knockd.conf, a way to reload knockd.
    fn validate_knockd(&self) -> Result<(), (&'static str, String)> {
        let Some(interface) = &self.interface else {
            return Err(("engine", "engine = \"knockd\" needs interface".into()));
        };
        validate_interface(interface).map_err(|e| ("interface", e))?;
        if self.knockd_conf.is_none() {
            return Err(("engine", "engine = \"knockd\" needs knockd_conf".into()));
        }
        let cloud = !self.firewall_backend()?.backend().on_host();
        if cloud && (MIN_KNOCK_PORT..=MAX_KNOCK_PORT).contains(&self.port) {
            return Err((
                "port",
                format!(
                    "port {} is in the knock range {}, which the cloud firewall opens to \
                     everyone for knockd: the port would be open to the world; use engine = \
                     \"nftables\" (it keeps such a port closed) or a port outside the range",
                    self.port,
                    knock_range_text()
                ),
            ));
        }
        match &self.knockd_reload_command {
            Some(argv) if argv.is_empty() || argv[0].is_empty() => {
                return Err((
                    "knockd_reload_command",
                    "knockd_reload_command is empty".into(),
                ))
            }
            None if self.knockd_pid_file.is_none() => {
                return Err((
                    "knockd_conf",
                    "set knockd_reload_command or knockd_pid_file so knockd can be told to reload"
                        .into(),
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// The firewall backend with its cloud settings.
    pub fn firewall_backend(&self) -> Result<Firewall, (&'static str, String)> {
        Firewall::from_settings(self.firewall, self)
    }

    /// The nftables engine's limits (the defaults when the table is absent).
    pub fn nft_settings(&self) -> NftSettings {
        self.nftables.clone().unwrap_or_default()
    }

    /// knockd.conf's path. Call only on a validated knockd-engine config.
    pub fn knockd_conf(&self) -> &Path {
        self.knockd_conf
            .as_deref()
            .expect("a validated knockd config names knockd_conf")
    }

    /// knockd's interface. Call only on a validated knockd-engine config.
    pub fn interface(&self) -> &str {
        self.interface
            .as_deref()
            .expect("a validated knockd config names its interface")
    }

    pub fn cmd_timeout(&self) -> u64 {
        self.cmd_timeout.unwrap_or(self.open_seconds)
    }

    pub fn protected_port(&self) -> ProtectedPort {
        ProtectedPort {
            server: self.name.clone(),
            port: self.port,
            open_seconds: self.open_seconds,
        }
    }

    /// The secret's path: systemd's credential when the unit passed one, else `secret_file`.
    pub fn secret_path(&self, credentials_directory: Option<&Path>) -> PathBuf {
        match credentials_directory {
            Some(dir) => dir.join(SECRET_CREDENTIAL),
            None => self.secret_file.clone(),
        }
    }

    pub fn to_toml(&self) -> String {
        let mut body = toml::to_string_pretty(self).expect("the server config serializes");
        if self.engine == EngineKind::Knockd && self.knockd_pid_file.is_none() {
            // Top-level keys come before the first table: the hint goes before `firewall`.
            if let Some(at) = body.find("\nfirewall = ") {
                body.insert_str(at + 1, KNOCKD_PID_FILE_HINT);
            }
        }
        format!(
            "# knock-totp server configuration for {}; run `knock-totp server --config FILE`.\n\
             # The secret is not in this file: see secret_file (root-only, mode 0600).\n\n{body}",
            self.name
        )
    }
}

/// A cloud backend's settings are the config's table of its name.
impl SettingsSource for ServerConfig {
    type Error = (&'static str, String);

    fn none(&self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn aws(&self) -> Result<AwsTarget, Self::Error> {
        self.aws.clone().ok_or_else(|| missing_table("aws"))
    }

    fn gcp(&self) -> Result<GcpTarget, Self::Error> {
        self.gcp.clone().ok_or_else(|| missing_table("gcp"))
    }

    fn azure(&self) -> Result<AzureTarget, Self::Error> {
        self.azure.clone().ok_or_else(|| missing_table("azure"))
    }
}

fn missing_table(table: &'static str) -> (&'static str, String) {
    (
        "firewall",
        format!("firewall = \"{table}\" needs a [{table}] table"),
    )
}

/// Line of the first `key = ...` in a TOML text, for errors that name a key.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

/// A knockd server on AWS, for tests of what is built from a config.
#[cfg(test)]
pub(crate) fn sample_config() -> ServerConfig {
    ServerConfig::new(
        "web",
        22,
        EngineKind::Knockd,
        "eth0",
        &Firewall::Aws(AwsTarget {
            security_group: "sg-0123abcd".into(),
            region: Some("eu-west-1".into()),
            profile: None,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServerConfig {
        sample_config()
    }

    #[test]
    fn kind_names_are_the_names_on_disk() {
        for engine in EngineKind::ALL {
            let on_disk = toml::Value::try_from(engine).unwrap();
            assert_eq!(on_disk.as_str(), Some(engine.as_str()));
        }
        for firewall in FirewallKind::ALL {
            let on_disk = toml::Value::try_from(firewall).unwrap();
            assert_eq!(on_disk.as_str(), Some(firewall.as_str()));
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let config = sample();
        let text = config.to_toml();
        assert_eq!(
            ServerConfig::parse(&text, Path::new("web.toml")).unwrap(),
            config
        );
        assert!(text.contains("secret_file = \"/etc/knock-totp/web.secret\""));
        assert!(
            text.contains("[aws]\nsecurity_group = \"sg-0123abcd\""),
            "{text}"
        );
    }

    #[test]
    fn a_knockd_config_shows_the_pid_file_way_to_reload_commented() {
        let text = sample().to_toml();
        assert!(
            text.contains("\n# knockd_pid_file = \"/run/knockd.pid\"\n"),
            "{text}"
        );
        // Following the hint gives a config the daemon accepts, the key at the top level.
        let start = text.find("knockd_reload_command = [").unwrap();
        let end = start + text[start..].find("]\n").unwrap() + 2;
        let edited = format!("{}{}", &text[..start], &text[end..])
            .replace("# knockd_pid_file = ", "knockd_pid_file = ");
        let config = ServerConfig::parse(&edited, Path::new("web.toml")).unwrap();
        assert_eq!(
            config.knockd_pid_file.as_deref(),
            Some(Path::new("/run/knockd.pid"))
        );
        assert_eq!(config.knockd_reload_command, None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = sample().to_toml().replace("port = 22", "port = 70000");
        let err = ServerConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        let line = line_of_key(&text, "port").unwrap();
        assert!(
            err.message.starts_with(&format!("s.toml:{line}:")),
            "{}",
            err.message
        );

        let text = sample()
            .to_toml()
            .replace("interface = \"eth0\"", "interface = \"eth 0\"");
        let err = ServerConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        let line = line_of_key(&text, "interface").unwrap();
        assert!(
            err.message
                .starts_with(&format!("s.toml:{line}: invalid interface")),
            "{}",
            err.message
        );

        let text = sample().to_toml().replace("sg-0123abcd", "sg-nope");
        let err = ServerConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        assert!(err.message.contains("security group"), "{}", err.message);

        let err = ServerConfig::parse(
            &format!("{}\ncolour = 1\n", sample().to_toml()),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
    }

    #[test]
    fn knockd_on_a_cloud_refuses_a_port_in_the_knock_range() {
        let text = |firewall: &str, port: u16| {
            format!(
                "name = \"web\"\nsecret_file = \"/s\"\nport = {port}\nengine = \"knockd\"\n\
                 interface = \"eth0\"\nknockd_conf = \"/k.conf\"\nknockd_pid_file = \"/k.pid\"\n\
                 firewall = \"{firewall}\"\n[aws]\nsecurity_group = \"sg-0123abcd\"\n\
                 [gcp]\nnetwork = \"n\"\n[azure]\nresource_group = \"g\"\nnsg = \"n\"\n"
            )
        };
        for firewall in ["aws", "gcp", "azure"] {
            let err = ServerConfig::parse(&text(firewall, 2222), "web.toml".as_ref())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("web.toml:3:") && err.contains("port 2222 is in the knock range"),
                "{err}"
            );
            ServerConfig::parse(&text(firewall, 22), "web.toml".as_ref()).unwrap();
            ServerConfig::parse(&text(firewall, 10022), "web.toml".as_ref()).unwrap();
        }
        // On the host the knock range is not opened to anyone: such a port is fine there.
        ServerConfig::parse(&text("iptables", 2222), "web.toml".as_ref()).unwrap();
    }

    #[test]
    fn cloud_table_required() {
        let mut config = sample();
        config.aws = None;
        assert!(config.validate().unwrap_err().1.contains("[aws]"));
    }

    #[test]
    fn secret_path_prefers_the_systemd_credential() {
        let config = sample();
        assert_eq!(
            config.secret_path(Some(Path::new("/run/credentials/x"))),
            Path::new("/run/credentials/x/secret")
        );
        assert_eq!(config.secret_path(None), config.secret_file);
    }

    #[test]
    fn interfaces() {
        for ok in ["eth0", "ens5", "wlp2s0", "br-1a2b", "veth0@if3"] {
            assert!(validate_interface(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "0123456789abcdef", "..", "eth0:1"] {
            assert!(validate_interface(bad).is_err(), "{bad}");
        }
    }
}
