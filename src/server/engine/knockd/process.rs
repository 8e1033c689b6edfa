//! Getting a new knockd.conf into knockd: validate, write atomically, SIGHUP, check it lived.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fsutil::StagedFile;

/// knockd has no "check the config" flag; on an interface that cannot exist it parses the
/// file and then fails to open the interface, or fails on the file first.
pub const NO_SUCH_INTERFACE: &str = "no-such-if0";

/// A knockd process younger than this may not have its signal handlers yet (the pid file is
/// written before they exist), and a SIGHUP would kill it.
pub const READY_AGE: Duration = Duration::from_millis(1_000);

/// How long after a SIGHUP we look whether knockd is still there (a reload takes ~5 ms).
pub const REPARSE_GRACE: Duration = Duration::from_millis(250);

/// How long a stopped knockd has to exit after SIGTERM (it exits at once unless a door's
/// stop command is pending) before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long a restarted knockd has to write its pid file.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the running knockd's process id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidSource {
    /// knockd's own pid file (written in daemon mode, `-d`).
    File(PathBuf),
    /// The main process of a systemd unit (knockd in the foreground under systemd).
    SystemdUnit(String),
}

impl std::fmt::Display for PidSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "pid file {}", path.display()),
            Self::SystemdUnit(unit) => write!(f, "systemd unit {unit}"),
        }
    }
}

/// How to reach the running knockd.
#[derive(Debug, Clone)]
pub struct Knockd {
    /// The knockd program, used to check a candidate config.
    pub program: PathBuf,
    /// The config file knockd reads.
    pub conf: PathBuf,
    /// Where to find knockd's process id.
    pub pid_source: PidSource,
    /// Command (argv, no shell) that reloads knockd instead of `kill -HUP PID`.
    pub reload_command: Option<Vec<String>>,
    /// Command (argv, no shell) that starts knockd again if it died.
    pub restart_command: Option<Vec<String>>,
}

/// Why a config could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("knockd rejected the new config, kept the old one: {0}")]
    Invalid(String),
    #[error("cannot check the new config with {program}: {detail}")]
    CannotValidate { program: String, detail: String },
    #[error("{0}")]
    Io(String),
    #[error("knockd is not running: {0}")]
    NotRunning(String),
    #[error("KNOCKD IS GONE and could not be restarted: {0}")]
    DiedNotRestarted(String),
}

/// What happened when a config was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The knockd that now runs the config.
    pub pid: u32,
    /// Set when knockd was gone (after the reload, or already before it) and was restarted:
    /// what happened to it.
    pub died: Option<String>,
}

/// The verdict on a candidate config, from knockd's own output.
pub fn judge_validation(stderr: &str) -> Result<(), String> {
    if let Some(line) = stderr.lines().find(|l| l.contains("config: line")) {
        return Err(line.trim().to_owned());
    }
    if stderr.contains("could not open") && stderr.contains(NO_SUCH_INTERFACE) {
        return Ok(());
    }
    let text = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('-') && !l.starts_with("usage:"))
        .filter(|l| *l != "options:")
        .collect::<Vec<_>>()
        .join("; ");
    Err(if text.is_empty() {
        "knockd said nothing".into()
    } else {
        text
    })
}

impl Knockd {
    /// Fails unless the config's directory exists and is a directory we can list.
    pub fn check_conf_dir(&self) -> Result<(), ReloadError> {
        let dir = match self.conf.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::read_dir(dir).map(drop).map_err(|e| {
            ReloadError::Io(format!(
                "cannot use the knockd config directory {}: {e}",
                dir.display()
            ))
        })
    }

    /// Runs knockd on the candidate against an interface that does not exist.
    pub fn validate(&self, candidate: &Path) -> Result<(), ReloadError> {
        let output = Command::new(&self.program)
            .arg("-c")
            .arg(candidate)
            .args(["-i", NO_SUCH_INTERFACE])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ReloadError::CannotValidate {
                program: self.program.display().to_string(),
                detail: e.to_string(),
            })?;
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        judge_validation(&text).map_err(ReloadError::Invalid)
    }

    /// The pid of the running knockd.
    pub fn running_pid(&self) -> Result<u32, ReloadError> {
        let pid = match &self.pid_source {
            PidSource::File(path) => {
                let text = fs::read_to_string(path).map_err(|e| {
                    ReloadError::NotRunning(format!(
                        "cannot read its pid file {}: {e}",
                        path.display()
                    ))
                })?;
                text.trim().parse::<u32>().map_err(|_| {
                    ReloadError::NotRunning(format!(
                        "{} does not hold a process id",
                        path.display()
                    ))
                })?
            }
            PidSource::SystemdUnit(unit) => {
                let output = Command::new("systemctl")
                    .args(["show", "--property=MainPID", "--value", unit])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| ReloadError::NotRunning(format!("cannot run systemctl: {e}")))?;
                String::from_utf8_lossy(&output.stdout)
                    .trim()
                    .parse::<u32>()
                    .unwrap_or(0)
            }
        };
        if pid == 0 || !is_knockd(pid) {
            return Err(ReloadError::NotRunning(format!(
                "no live knockd process found through its {}",
                self.pid_source
            )));
        }
        Ok(pid)
    }

    /// Waits until the knockd `pid` is old enough to have its signal handlers.
    pub fn wait_ready(&self, pid: u32) {
        if let Some(age) = process_age(pid) {
            if age < READY_AGE {
                std::thread::sleep(READY_AGE - age);
            }
        } else {
            std::thread::sleep(READY_AGE);
        }
    }

    /// Validates `text`, puts it in place atomically and makes knockd load it. The old file
    /// stays untouched unless knockd accepted the new one.
    /// If knockd vanished since the last rotation, it is started again on the new config.
    pub fn install(&self, text: &str) -> Result<Installed, ReloadError> {
        let before = self.running_pid();
        self.write_validated(text)?;
        match before {
            Ok(pid) => self.reload(pid),
            Err(gone) => {
                let pid = self
                    .restart()
                    .map_err(|detail| ReloadError::DiedNotRestarted(format!("{gone}; {detail}")))?;
                Ok(Installed {
                    pid,
                    died: Some(gone.to_string()),
                })
            }
        }
    }

    /// Writes the candidate beside the config (under a random name, created exclusively),
    /// validates it, then renames it over the config.
    pub fn write_validated(&self, text: &str) -> Result<(), ReloadError> {
        // Root-only whatever the old file's mode: the doors hold the current knock ports,
        // which would let any local user knock.
        let candidate = StagedFile::new(&self.conf, text.as_bytes(), 0o600)
            .map_err(|e| ReloadError::Io(format!("{e:#}")))?;
        self.validate(candidate.path())?;
        candidate
            .commit()
            .map_err(|e| ReloadError::Io(format!("{e:#}")))
    }

    /// Signals knockd (or runs the reload command) and restarts it if it died of the reload.
    pub fn reload(&self, pid: u32) -> Result<Installed, ReloadError> {
        let sent = match &self.reload_command {
            Some(command) => run_argv(command),
            None => Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run kill: {e}"))
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
                    }
                }),
        };
        std::thread::sleep(REPARSE_GRACE);
        if sent.is_ok() && is_knockd(pid) {
            return Ok(Installed { pid, died: None });
        }
        if let Ok(new_pid) = self.running_pid() {
            if new_pid != pid {
                // A reload command that restarts knockd under a new pid.
                self.wait_ready(new_pid);
                return Ok(Installed {
                    pid: new_pid,
                    died: None,
                });
            }
        }
        let mut reason = match sent {
            Ok(()) => format!("knockd (pid {pid}) is gone after the reload"),
            Err(e) => format!("the reload failed: {e}"),
        };
        if is_knockd(pid) && matches!(self.pid_source, PidSource::File(_)) {
            // It still runs the old doors: a second knockd beside it would leave them open.
            self.stop()
                .map_err(|detail| ReloadError::DiedNotRestarted(format!("{reason}; {detail}")))?;
            reason.push_str(&format!("; stopped knockd (pid {pid}) to start it again"));
        }
        let new_pid = self
            .restart()
            .map_err(|detail| ReloadError::DiedNotRestarted(format!("{reason}; {detail}")))?;
        Ok(Installed {
            pid: new_pid,
            died: Some(reason),
        })
    }

    /// Stops the running knockd (a knockd that can no longer be given a new config must not
    /// keep its doors): `systemctl stop` for a unit, otherwise SIGTERM, then SIGKILL if it is
    /// still there after `STOP_GRACE`. Returns the pid it stopped, None if none ran.
    pub fn stop(&self) -> Result<Option<u32>, String> {
        let Ok(pid) = self.running_pid() else {
            return Ok(None);
        };
        if let PidSource::SystemdUnit(unit) = &self.pid_source {
            let command = ["systemctl".to_owned(), "stop".into(), unit.clone()];
            run_argv(&command).map_err(|e| format!("`systemctl stop {unit}` failed: {e}"))?;
        } else {
            signal(pid, "-TERM")?;
        }
        let deadline = Instant::now() + STOP_GRACE;
        while is_knockd(pid) {
            if Instant::now() > deadline {
                signal(pid, "-KILL")?;
                std::thread::sleep(Duration::from_millis(100));
                if is_knockd(pid) {
                    return Err(format!("knockd (pid {pid}) survived SIGKILL"));
                }
                return Ok(Some(pid));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(pid))
    }

    /// Starts knockd through the restart command and waits for a new live pid.
    fn restart(&self) -> Result<u32, String> {
        let Some(command) = &self.restart_command else {
            return Err("no restart_command is configured".into());
        };
        let shown = command.join(" ");
        run_argv(command).map_err(|e| format!("`{shown}` failed: {e}"))?;
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            // running_pid only answers for a live knockd, so a stale pid file does not count.
            if let Ok(pid) = self.running_pid() {
                self.wait_ready(pid);
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no live knockd through its {} {} s after `{shown}`",
                    self.pid_source,
                    RESTART_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn signal(pid: u32, which: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    // A knockd that exited meanwhile is what we wanted.
    if status.success() || !is_knockd(pid) {
        Ok(())
    } else {
        Err(format!("kill {which} {pid} failed ({status})"))
    }
}

fn run_argv(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("the command is empty")?;
    // No pipes: a command that starts a daemon must not keep us waiting for their end.
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("it failed ({status})"))
    }
}

/// Whether `pid` is a live knockd (not a zombie, not a recycled pid of another program).
pub fn is_knockd(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or("");
            let state = tail.split_whitespace().next().unwrap_or("");
            name == "knockd" && state != "Z" && state != "X"
        }
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// How long `pid` has been running, from /proc (clock ticks are 100 Hz on Linux).
pub fn process_age(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, tail) = stat.rsplit_once(')')?;
    // Field 22 (starttime) is the 20th after the command name.
    let start_ticks: f64 = tail.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = uptime - start_ticks / 100.0;
    Some(Duration::from_secs_f64(age.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_verdicts_come_from_knockds_messages() {
        assert_eq!(
            judge_validation(
                "could not open no-such-if0: no-such-if0: No such device exists (No such device exists)\n"
            ),
            Ok(())
        );
        assert_eq!(
            judge_validation(
                "usage: knockd [options]\noptions:\n  -i ...\nconfig: line 5: syntax error\n"
            ),
            Err("config: line 5: syntax error".into())
        );
        assert_eq!(
            judge_validation("/etc/k.conf: No such file or directory\n"),
            Err("/etc/k.conf: No such file or directory".into())
        );
    }

    #[test]
    fn our_own_process_has_an_age_and_is_not_knockd() {
        let me = std::process::id();
        assert!(process_age(me).is_some());
        assert!(!is_knockd(me));
    }

    #[test]
    fn a_config_knockd_rejects_never_replaces_the_last_good_one() {
        let have_knockd = Command::new("knockd").arg("-V").output().is_ok();
        if !have_knockd {
            eprintln!("skipped: knockd is not installed (apt-get install knockd)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let k = Knockd {
            program: "knockd".into(),
            conf: dir.path().join("knockd.conf"),
            pid_source: PidSource::File(dir.path().join("knockd.pid")),
            reload_command: None,
            restart_command: None,
        };
        let good = "[options]\n\tUseSyslog\n\tInterface = lo\n\n[d]\n\tsequence = 4000:tcp,4180:tcp\n\tstart_command = /bin/true %IP%\n";
        k.write_validated(good).unwrap();
        let err = k
            .write_validated(
                "[options]\n\tInterface = lo\n[d]\n\tsequence = 1:tcp\n\tno_such_key = 1\n",
            )
            .unwrap_err();
        assert!(
            matches!(&err, ReloadError::Invalid(line) if line.contains("config: line 5")),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&k.conf).unwrap(), good);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the candidate is gone"
        );
    }

    /// Symlinks at the predictable names the daemon used (the candidate
    /// `.NAME.knock-totp-new` and its temp file `..NAME.knock-totp-new.tmp-PID`, opened
    /// without O_EXCL and written through) or at the config itself: the file they point to
    /// stays as it was.
    #[test]
    fn never_writes_through_a_planted_symlink() {
        use std::os::unix::fs::symlink;
        if Command::new("knockd").arg("-V").output().is_err() {
            eprintln!("skipped: knockd is not installed (apt-get install knockd)");
            return;
        }
        let good = "[options]\n\tUseSyslog\n\tInterface = lo\n\n[d]\n\tsequence = 4000:tcp,4180:tcp\n\tstart_command = /bin/true %IP%\n";
        let dir = tempfile::tempdir().unwrap();
        let k = Knockd {
            program: "knockd".into(),
            conf: dir.path().join("knockd.conf"),
            pid_source: PidSource::File(dir.path().join("knockd.pid")),
            reload_command: None,
            restart_command: None,
        };
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        symlink(&victim, dir.path().join(".knockd.conf.knock-totp-new")).unwrap();
        let old_temp = format!("..knockd.conf.knock-totp-new.tmp-{}", std::process::id());
        symlink(&victim, dir.path().join(old_temp)).unwrap();
        k.write_validated(good).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&k.conf).unwrap(), good);

        fs::remove_file(&k.conf).unwrap();
        symlink(&victim, &k.conf).unwrap();
        k.write_validated(good).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&k.conf).unwrap().is_symlink());
    }
}
