//! The knockd engine: knockd.conf with one door per window, validated and reloaded in knockd.

pub mod conf;
pub mod design;
pub mod host_drop;
pub mod process;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use self::conf::{
    door_counters, door_name, render_knockd_conf, KnockdDoor, KnockdLog, KnockdOptions,
};
use self::process::{Knockd, PidSource, ReloadError, NO_SUCH_INTERFACE};
use std::path::PathBuf;

use crate::clock::wall_clock;
use crate::core::ports::PortPair;
use crate::core::window::{Window, QUIET_ZONE_LEAD};
use crate::error::UserError;
use crate::log::Log;
use crate::server::cloud::{CliError, GrantStore};
use crate::server::config::ServerConfig;
use crate::server::doors::{door_ports, door_valid_until, door_windows, ActiveDoor};
use crate::server::engine::Engine;
use crate::server::firewall::{grant_description_prefix, rule_description};
use crate::server::retry::retrying;
use crate::server::signals::StopSignal;

/// knockd's `[options]` for a server.
pub fn knockd_options(config: &ServerConfig) -> KnockdOptions {
    KnockdOptions {
        log: KnockdLog::Syslog,
        interface: config.interface().to_owned(),
        pid_file: config
            .knockd_pid_file
            .as_ref()
            .map(|p| p.display().to_string()),
    }
}

/// The knockd door for one window whose code gives `ports`, running the configured firewall's
/// commands. Call only on a validated config.
pub fn knockd_door(config: &ServerConfig, window: Window, ports: PortPair) -> KnockdDoor {
    let commands = config
        .firewall_backend()
        .expect("a validated config has its firewall table")
        .door_commands(&config.protected_port());
    KnockdDoor {
        name: door_name(window.counter),
        ports,
        seq_timeout: config.seq_timeout,
        cmd_timeout: config.cmd_timeout(),
        start_command: commands.start,
        stop_command: commands.stop,
        start_command_6: commands.start_6,
        stop_command_6: commands.stop_6,
    }
}

/// The text of knockd.conf for these doors.
pub fn render_conf(config: &ServerConfig, doors: &[ActiveDoor]) -> anyhow::Result<String> {
    let doors: Vec<KnockdDoor> = doors
        .iter()
        .map(|d| knockd_door(config, d.window, d.ports))
        .collect();
    render_knockd_conf(&knockd_options(config), &doors)
        .map_err(|e| UserError::usage(format!("cannot render knockd.conf: {e}")).into())
}

/// knockd with one door per window, and the cloud firewall whose door grants it sweeps when
/// the firewall is a cloud's.
pub struct KnockdEngine {
    pub config: ServerConfig,
    pub knockd: Knockd,
    pub grants: Option<Box<dyn GrantStore>>,
    pub log: Log,
    /// The windows of the doors knockd runs now (None until this daemon changed them: then
    /// knockd.conf tells).
    served: Option<Vec<Window>>,
    /// Whether a rotation of this daemon put doors in place (then it may have granted).
    rotated: bool,
    /// The doors of a rotation that failed, tried again between boundaries in its window.
    retry: Option<Vec<ActiveDoor>>,
}

/// How long to keep retrying cloud calls while shutting down.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(30);

impl KnockdEngine {
    pub fn new(
        config: ServerConfig,
        knockd: Knockd,
        grants: Option<Box<dyn GrantStore>>,
        log: Log,
    ) -> Self {
        Self {
            config,
            knockd,
            grants,
            log,
            served: None,
            rotated: false,
            retry: None,
        }
    }

    /// The windows of the doors knockd runs now.
    fn served_windows(&self) -> Vec<Window> {
        match &self.served {
            Some(windows) => windows.clone(),
            None => std::fs::read_to_string(&self.knockd.conf)
                .map(|text| {
                    door_counters(&text)
                        .into_iter()
                        .map(|counter| Window {
                            counter,
                            period: self.config.period,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Fail closed after a failed rotation: knockd keeps no door past its time bound (the end
    /// of the window after its own). knockd holds its doors in one file, so any door stale at
    /// `horizon` means no door at all until a rotation succeeds.
    fn close_stale_doors(&mut self, horizon: u64) {
        let stale: Vec<String> = self
            .served_windows()
            .into_iter()
            .filter(|w| door_valid_until(*w) <= horizon)
            .map(|w| w.counter.to_string())
            .collect();
        if stale.is_empty() {
            return;
        }
        self.log.alarm(format!(
            "knockd still serves the doors of windows {} past their time: removing every door \
             until a rotation succeeds",
            stale.join(" ")
        ));
        self.remove_doors();
    }

    /// Gives knockd a door-less knockd.conf or, when even that cannot be installed, stops
    /// knockd: either way no knock opens anything.
    fn remove_doors(&mut self) {
        let installed = render_conf(&self.config, &[])
            .and_then(|doorless| Ok(self.knockd.install(&doorless)?));
        match installed {
            Ok(_) => {
                self.log.detail("knockd now has no doors");
                self.served = Some(Vec::new());
            }
            Err(e) => {
                self.log.alarm(format!(
                    "cannot give knockd a door-less config ({e:#}); stopping knockd"
                ));
                match self.knockd.stop() {
                    Ok(stopped) => {
                        if let Some(pid) = stopped {
                            self.log.alarm(format!(
                                "stopped knockd (pid {pid}): nothing opens the port until a \
                                 rotation succeeds and starts it again"
                            ));
                        }
                        self.served = Some(Vec::new());
                    }
                    Err(e) => self
                        .log
                        .alarm(format!("CANNOT STOP KNOCKD, ITS DOORS STAY OPEN: {e}")),
                }
            }
        }
    }
}

/// Unix seconds as the signed count the group's expiries are compared with.
fn unix_seconds(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

impl Engine for KnockdEngine {
    /// Checks what must hold before anything changes: the config directory is usable and
    /// knockd runs (and is old enough to survive a SIGHUP).
    fn preflight(&mut self, dry_run: bool) -> anyhow::Result<()> {
        self.knockd.check_conf_dir().map_err(|e| {
            anyhow::Error::from(e).context(UserError::runtime(format!(
                "cannot manage {}",
                self.knockd.conf.display()
            )))
        })?;
        match self.knockd.running_pid() {
            Ok(pid) => {
                if !dry_run {
                    self.knockd.wait_ready(pid);
                }
                self.log.detail(format!("knockd runs as pid {pid}"));
                Ok(())
            }
            Err(e) if dry_run => {
                self.log.alarm(format!("{e} (dry run: going on)"));
                Ok(())
            }
            Err(e) => Err(UserError::runtime(e.to_string())
                .with_hint(match self.knockd.pid_source {
                    PidSource::File(_) => {
                        "start knockd in daemon mode first (knockd -d, with PidFile in its \
                         config) and check knockd_pid_file"
                    }
                    PidSource::SystemdUnit(_) => {
                        "start knockd first (systemctl start knockd) and check \
                         knockd_reload_command"
                    }
                })
                .into()),
        }
    }

    /// Puts the doors for `window` in place: install and reload knockd.conf, then, on a
    /// cloud, revoke the door grants whose expiry has passed (a door whose stop command never
    /// ran) and the per-port knock rules older versions rotated. The knock range in the cloud
    /// firewall is static: the daemon never opens or closes it. `first` reads the firewall
    /// before anything changes, so a daemon that cannot reach it stops at once.
    fn apply(
        &mut self,
        window: Window,
        doors: &[ActiveDoor],
        stop: &mut StopSignal,
        first: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let text = render_conf(&self.config, doors)?;
        let now = wall_clock()?.as_secs();
        // Retry cloud calls until the window ends (at least a few seconds, after a late start).
        let deadline = Instant::now() + Duration::from_secs(window.seconds_left(now).max(5));
        let log = self.log;
        let mut cloud_trouble: Option<CliError> = None;

        let mut review = None;
        if let Some(grants) = self.grants.as_mut() {
            let place = grants.place();
            match retrying(
                deadline,
                &mut |d| stop.pause(d),
                &mut |e: &CliError| log.alarm(format!("{place}: {e}")),
                CliError::is_permanent,
                || grants.review(unix_seconds(now)),
            ) {
                Ok(found) => review = Some(found),
                Err(e) if first => {
                    return Err(cloud_failure(&format!("cannot read the {place}"), e))
                }
                Err(e) => cloud_trouble = Some(e),
            }
        }

        let installed = match self.knockd.install(&text) {
            Ok(installed) => installed,
            Err(e) => {
                self.retry = Some(doors.to_vec());
                // The rotation ran ahead of the boundary where the oldest door expires.
                self.close_stale_doors((wall_clock()? + QUIET_ZONE_LEAD).as_secs() + 1);
                return Err(e.into());
            }
        };
        self.served = Some(door_windows_of(doors));
        self.retry = None;
        if let Some(died) = &installed.died {
            self.log.alarm(format!(
                "KNOCKD WAS GONE ({died}); restarted it, now pid {}",
                installed.pid
            ));
        }

        if let (Some(grants), Some(review)) = (self.grants.as_mut(), &review) {
            if first {
                // What defeats the design, said loudly once.
                for problem in &review.problems {
                    log.alarm(problem);
                }
            }
            let stale = review.to_revoke();
            if !stale.is_empty() {
                log.note(format!(
                    "revoking {} expired door grants and {} per-port knock rules of older \
                     versions",
                    review.expired.len(),
                    review.leftovers.len()
                ));
                let place = grants.place();
                if let Err(e) = retrying(
                    deadline,
                    &mut |d| stop.pause(d),
                    &mut |e: &CliError| log.alarm(format!("{place}: {e}")),
                    CliError::is_permanent,
                    || grants.revoke(&stale),
                ) {
                    if first {
                        return Err(cloud_failure("cannot revoke stale rules", e));
                    }
                    cloud_trouble = Some(e);
                }
            }
        }

        let which = match (doors.first(), doors.last()) {
            (Some(first), Some(last)) => {
                format!(
                    "doors for {}..={}",
                    first.window.counter, last.window.counter
                )
            }
            _ => "no doors".to_owned(),
        };
        self.log.note(format!(
            "window {}: {which}, {} ms{}",
            window.counter,
            started.elapsed().as_millis(),
            if cloud_trouble.is_some() {
                " (cloud firewall not swept, retrying next window)"
            } else {
                ""
            }
        ));
        // Counts only: the ports are the code, and this log goes to the journal.
        self.log.detail(format!(
            "knockd pid {} serves {} doors on {} knock ports",
            installed.pid,
            doors.len(),
            door_ports(doors).len()
        ));
        self.rotated = true;
        Ok(())
    }

    fn dry_run(&mut self, window: Window, doors: &[ActiveDoor]) -> anyhow::Result<()> {
        let text = &render_conf(&self.config, doors)?;
        let mut out = String::new();
        let _ = writeln!(out, "# dry run: window {}", window.counter);
        for door in doors {
            let _ = writeln!(
                out,
                "# door for window {}: knock {}",
                door.window.counter, door.ports
            );
        }
        let _ = writeln!(
            out,
            "would write a new file beside {} (a random name) and check it: {} -c NEW -i {}",
            self.knockd.conf.display(),
            self.knockd.program.display(),
            NO_SUCH_INTERFACE
        );
        let _ = writeln!(out, "would rename it over {}:", self.knockd.conf.display());
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        match &self.knockd.reload_command {
            Some(command) => {
                let _ = writeln!(out, "would reload knockd: {}", command.join(" "));
            }
            None => {
                let pid = self
                    .knockd
                    .running_pid()
                    .map_or_else(|_| "PID".to_string(), |p| p.to_string());
                let _ = writeln!(
                    out,
                    "would reload knockd: kill -HUP {pid} (from its {})",
                    self.knockd.pid_source
                );
            }
        }
        if let Some(grants) = &self.grants {
            let _ = writeln!(
                out,
                "would read the {}: {}",
                grants.place(),
                grants.show_review()
            );
            let _ = writeln!(
                out,
                "would revoke the door grants described {}<expiry> whose expiry has passed, \
                 and per-port knock rules described {} ({})",
                grant_description_prefix(&self.config.name),
                rule_description(&self.config.name),
                grants.show_revoke()
            );
        }
        print!("{out}");
        Ok(())
    }

    /// Tries a failed rotation again (knockd.conf only) while its window lasts.
    fn repair(&mut self, _restore: bool) -> anyhow::Result<()> {
        let Some(doors) = self.retry.clone() else {
            return Ok(());
        };
        let window = Window::at(
            (wall_clock()? + QUIET_ZONE_LEAD).as_secs(),
            self.config.period,
        );
        let wanted = door_windows_of(&doors);
        if wanted != door_windows(window) {
            self.retry = None;
            return Ok(());
        }
        let text = render_conf(&self.config, &doors)?;
        match self.knockd.install(&text) {
            Ok(installed) => {
                self.retry = None;
                self.served = Some(wanted);
                self.rotated = true;
                self.log.note(format!(
                    "window {}: doors in place after all (knockd pid {})",
                    window.counter, installed.pid
                ));
            }
            Err(e) => {
                self.log
                    .detail(format!("window {}: still failing: {e}", window.counter));
                self.close_stale_doors(wall_clock()?.as_secs());
            }
        }
        Ok(())
    }

    /// knockd's reload drops every half-finished knock, so it happens where clients do not
    /// knock: inside the quiet zone before a boundary, with doors that already cover the
    /// coming window.
    fn rotation_lead(&self) -> Duration {
        QUIET_ZONE_LEAD
    }

    fn stopping(&self) -> &'static str {
        "removing the doors"
    }

    /// A dead knockd that could not be restarted ends the daemon.
    fn is_fatal(&self, error: &anyhow::Error) -> bool {
        matches!(
            error.downcast_ref::<ReloadError>(),
            Some(ReloadError::DiedNotRestarted(_) | ReloadError::NotRunning(_))
        )
    }

    /// Leaves knockd without doors and, on a cloud, revokes every door grant of this server
    /// (running or not: fail closed; open connections survive, the cloud tracks them).
    fn shut_down(&mut self) -> anyhow::Result<()> {
        // Fail closed: knockd keeps running, but with no door a captured knock could open (or,
        // if it cannot be given one, it is stopped). A knockd.conf with no door of ours is left
        // as it was.
        if !self.served_windows().is_empty() {
            self.remove_doors();
        }
        // A daemon that never rotated has granted nothing and may not reach the cloud at all.
        let (Some(grants), true) = (self.grants.as_mut(), self.rotated) else {
            return Ok(());
        };
        let log = self.log;
        let mut revoked = 0;
        let result = retrying(
            Instant::now() + SHUTDOWN_RETRY,
            &mut |d| {
                std::thread::sleep(d);
                true
            },
            &mut |e| log.alarm(format!("revoking the door grants failed: {e}")),
            CliError::is_permanent,
            || {
                let ours = grants
                    .review(unix_seconds(wall_clock_seconds()))?
                    .everything();
                revoked = ours.len();
                grants.revoke(&ours)
            },
        );
        match result {
            Ok(()) => {
                log.note(format!("revoked {revoked} door grants"));
                Ok(())
            }
            Err(e) => Err(UserError::runtime(format!(
                "could not revoke the door grants in {}: {e}",
                grants.place()
            ))
            .with_hint(format!(
                "delete the rules described \"{}<expiry>\" by hand ({})",
                grant_description_prefix(&self.config.name),
                grants.manual_revoke()
            ))
            .into()),
        }
    }
}

fn wall_clock_seconds() -> u64 {
    wall_clock().map_or(u64::MAX, |d| d.as_secs())
}

/// How to find, reload and restart knockd from the config: its pid file, or the systemd unit
/// named by a `systemctl reload UNIT` reload command.
pub fn knockd_for(config: &ServerConfig) -> anyhow::Result<Knockd> {
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
                config.knockd_conf().display().to_string(),
                "-i".into(),
                config.interface().to_owned(),
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
        conf: config.knockd_conf().to_path_buf(),
        pid_source,
        reload_command: reload,
        restart_command: Some(restart),
    })
}

fn door_windows_of(doors: &[ActiveDoor]) -> Vec<Window> {
    doors.iter().map(|d| d.window).collect()
}

fn cloud_failure(what: &str, error: CliError) -> anyhow::Error {
    UserError::runtime(format!("{what}: {error}"))
        .with_hint("check the cloud CLI, its credentials, and the cloud table of the server config")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::SecretKey;
    use crate::core::totp::{Algorithm, Totp};
    use crate::core::window::Window;
    use crate::server::doors::active_doors;

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
