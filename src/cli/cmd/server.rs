//! `server`: the rotation daemon that keeps knockd's doors following the code.

use std::path::PathBuf;

use crate::cli::args::ServerArgs;
use crate::cli::Context;
use crate::core::totp::Totp;
use crate::error::UserError;
use crate::server::cloud::aws::{AwsCommand, KnockPortRules};
use crate::server::config::ServerConfig;
use crate::server::engine::knockd::process::{Knockd, PidSource};
use crate::server::engine::knockd::KnockdEngine;
use crate::server::firewall::FirewallKind;
use crate::server::load_secret_file;
use crate::server::rotation::{Rotation, StopSignal};

pub fn run(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    let config = ServerConfig::load(&args.config)?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret = load_secret_file(&config.secret_path(credentials.as_deref()))?;
    let totp = Totp::new(&secret, config.algorithm, config.period)
        .map_err(|e| UserError::usage(format!("{}: {e}", args.config.display())))?;
    drop(secret);

    let knockd = knockd_for(&config)?;
    let rules = match (&config.firewall, &config.aws) {
        (FirewallKind::Aws, Some(aws)) => Some(KnockPortRules::new(
            AwsCommand {
                program: "aws".into(),
                region: aws.region.clone(),
                profile: aws.profile.clone(),
            },
            &aws.security_group,
            &config.name,
        )),
        (FirewallKind::Gcp | FirewallKind::Azure, _) => {
            ctx.log.note(format!(
                "firewall = \"{}\": the knock ports are not managed; allow TCP 1000-9999 to \
                 reach knockd in the cloud firewall",
                config.firewall.as_str()
            ));
            None
        }
        _ => None,
    };
    let log = ctx.log;
    let engine = KnockdEngine::new(config, knockd, rules, log, args.dry_run);
    let mut server = Rotation::new(totp, Box::new(engine), log, args.dry_run);
    server.preflight()?;
    let mut stop = StopSignal::install()?;
    server.run(args.once, &mut stop)
}

/// How to find, reload and restart knockd from the config: its pid file, or the systemd unit
/// named by a `systemctl reload UNIT` reload command.
fn knockd_for(config: &ServerConfig) -> anyhow::Result<Knockd> {
    let program = PathBuf::from("knockd");
    let reload = config.knockd_reload_command.clone();
    let systemd_unit = reload.as_ref().and_then(|argv| {
        let is_systemctl = argv.first()?.rsplit('/').next()? == "systemctl";
        let is_reload = argv
            .iter()
            .any(|a| a == "reload" || a == "reload-or-restart");
        (is_systemctl && is_reload)
            .then(|| argv.last().cloned())
            .flatten()
    });
    let (pid_source, restart) = match (&config.knockd_pid_file, systemd_unit) {
        (Some(pid_file), _) => (
            PidSource::File(pid_file.clone()),
            // knockd in daemon mode, on the same config (whose PidFile is this pid file).
            vec![
                program.display().to_string(),
                "-d".into(),
                "-c".into(),
                config.knockd_conf.display().to_string(),
                "-i".into(),
                config.interface.clone(),
            ],
        ),
        (None, Some(unit)) => (
            PidSource::SystemdUnit(unit.clone()),
            vec!["systemctl".into(), "restart".into(), unit],
        ),
        (None, None) => {
            return Err(UserError::usage(
                "set knockd_pid_file in the server config: without it (or a \
                 `systemctl reload UNIT` reload command) the server cannot tell whether knockd \
                 survived a reload",
            )
            .into())
        }
    };
    Ok(Knockd {
        program,
        conf: config.knockd_conf.clone(),
        pid_source,
        reload_command: reload,
        restart_command: Some(restart),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::SecretKey;
    use crate::core::totp::Algorithm;
    use crate::core::window::Window;
    use crate::server::doors::active_doors;
    use crate::server::engine::knockd::render_conf;

    const CONFIG: &str = r#"
name = "web"
secret_file = "/etc/knock-totp/web.secret"
port = 22
interface = "eth0"
knockd_conf = "/etc/knock-totp/knockd/web.conf"
knockd_pid_file = "/run/knockd.pid"
firewall = "iptables"
"#;

    #[test]
    fn knockd_conf_for_the_window_of_code_000418() {
        let config = ServerConfig::parse(CONFIG, "web.toml".as_ref()).unwrap();
        let totp = Totp::new(
            &SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap(),
            Algorithm::Sha1,
            30,
        )
        .unwrap();
        let doors = active_doors(&totp, Window::at(1_740_012_930, 30));
        let text = render_conf(&config, &doors).unwrap();
        let sequences: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("sequence") || l.starts_with('['))
            .collect();
        assert_eq!(
            sequences,
            [
                "[options]",
                "[knock-totp-58000430]",
                "\tsequence        = 2332:tcp,3279:tcp",
                "[knock-totp-58000431]",
                "\tsequence        = 4000:tcp,4180:tcp",
                "[knock-totp-58000432]",
                "\tsequence        = 1015:tcp,1537:tcp",
            ]
        );
        assert!(text.contains("PidFile = /run/knockd.pid"), "{text}");
        assert!(text.contains("%IP%"), "{text}");
        assert!(!text.contains("LPI3UVRWMUTRNDBD") && !text.contains("000418"));
    }

    #[test]
    fn knockd_is_found_through_its_pid_file_or_systemd_unit() {
        let config = ServerConfig::parse(CONFIG, "web.toml".as_ref()).unwrap();
        let knockd = knockd_for(&config).unwrap();
        assert_eq!(knockd.pid_source, PidSource::File("/run/knockd.pid".into()));
        assert_eq!(
            knockd.restart_command.unwrap(),
            [
                "knockd",
                "-d",
                "-c",
                "/etc/knock-totp/knockd/web.conf",
                "-i",
                "eth0"
            ]
        );
        let systemd = CONFIG.replace(
            "knockd_pid_file = \"/run/knockd.pid\"",
            "knockd_reload_command = [\"systemctl\", \"reload\", \"knockd.service\"]",
        );
        let config = ServerConfig::parse(&systemd, "web.toml".as_ref()).unwrap();
        let knockd = knockd_for(&config).unwrap();
        assert_eq!(
            knockd.pid_source,
            PidSource::SystemdUnit("knockd.service".into())
        );
        assert_eq!(
            knockd.restart_command.unwrap(),
            ["systemctl", "restart", "knockd.service"]
        );
    }
}
