//! Getting a new knockd.conf into knockd: validate, write atomically, SIGHUP, check it lived.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::write_atomically;

/// knockd has no "check the config" flag; on an interface that cannot exist it parses the
/// file and then fails to open the interface, or fails on the file first.
pub const NO_SUCH_INTERFACE: &str = "no-such-if0";

/// A knockd process younger than this may not have its signal handlers yet (the pid file is
/// written before they exist), and a SIGHUP would kill it.
pub const READY_AGE: Duration = Duration::from_millis(1_000);

/// How long after a SIGHUP we look whether knockd is still there (a reload takes ~5 ms).
pub const REPARSE_GRACE: Duration = Duration::from_millis(250);

/// How long a restarted knockd has to write its pid file.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the running knockd.
#[derive(Debug, Clone)]
pub struct Knockd {
    /// The knockd program, used to check a candidate config.
    pub program: PathBuf,
    /// The config file knockd reads.
    pub conf: PathBuf,
    /// knockd's pid file (written in daemon mode).
    pub pid_file: PathBuf,
    /// Shell command that reloads knockd instead of `kill -HUP PID`.
    pub reload_command: Option<String>,
    /// Shell command that starts knockd again if it died.
    pub restart_command: Option<String>,
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
    #[error("KNOCKD DIED after the reload (pid {pid}) and could not be restarted: {detail}")]
    DiedNotRestarted { pid: u32, detail: String },
}

/// What happened when a config was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The knockd that now runs the config.
    pub pid: u32,
    /// Set when knockd died after the reload and was restarted: the pid that died.
    pub died: Option<u32>,
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
    /// The candidate's path: beside the config, so the final rename stays on one filesystem.
    pub fn candidate_path(&self) -> PathBuf {
        let name = self
            .conf
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "knockd.conf".into());
        self.conf.with_file_name(format!(".{name}.knock-totp-new"))
    }

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

    /// The pid of the running knockd, from the pid file.
    pub fn running_pid(&self) -> Result<u32, ReloadError> {
        let text = fs::read_to_string(&self.pid_file).map_err(|e| {
            ReloadError::NotRunning(format!(
                "cannot read its pid file {}: {e}",
                self.pid_file.display()
            ))
        })?;
        let pid: u32 = text.trim().parse().map_err(|_| {
            ReloadError::NotRunning(format!(
                "{} does not hold a process id",
                self.pid_file.display()
            ))
        })?;
        if !is_knockd(pid) {
            return Err(ReloadError::NotRunning(format!(
                "no knockd process has pid {pid} (from {}): a stale pid file",
                self.pid_file.display()
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
    pub fn install(&self, text: &str) -> Result<Installed, ReloadError> {
        let pid = self.running_pid()?;
        self.write_validated(text)?;
        self.reload(pid)
    }

    /// Writes and validates the candidate, then renames it over the config.
    pub fn write_validated(&self, text: &str) -> Result<(), ReloadError> {
        let candidate = self.candidate_path();
        let mode = fs::metadata(&self.conf)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o600);
        write_atomically(&candidate, text.as_bytes(), mode)
            .map_err(|e| ReloadError::Io(format!("{e:#}")))?;
        if let Err(e) = self.validate(&candidate) {
            let _ = fs::remove_file(&candidate);
            return Err(e);
        }
        fs::rename(&candidate, &self.conf).map_err(|e| {
            let _ = fs::remove_file(&candidate);
            ReloadError::Io(format!("cannot replace {}: {e}", self.conf.display()))
        })?;
        if let Some(dir) = self.conf.parent() {
            if let Ok(dir) = fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    /// Signals knockd (or runs the reload command) and restarts it if it died of the reload.
    pub fn reload(&self, pid: u32) -> Result<Installed, ReloadError> {
        let sent = match &self.reload_command {
            Some(command) => run_shell(command),
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
        let reason = match sent {
            Ok(()) => format!("knockd (pid {pid}) is gone after the reload"),
            Err(e) => format!("the reload failed: {e}"),
        };
        let new_pid = self
            .restart()
            .map_err(|detail| ReloadError::DiedNotRestarted {
                pid,
                detail: format!("{reason}; {detail}"),
            })?;
        Ok(Installed {
            pid: new_pid,
            died: Some(pid),
        })
    }

    /// Starts knockd through the restart command and waits for a new live pid.
    fn restart(&self) -> Result<u32, String> {
        let Some(command) = &self.restart_command else {
            return Err("no restart_command is configured".into());
        };
        run_shell(command).map_err(|e| format!("`{command}` failed: {e}"))?;
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            // running_pid only answers for a live knockd, so a stale pid file does not count.
            if let Ok(pid) = self.running_pid() {
                self.wait_ready(pid);
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no live knockd in {} {} s after `{command}`",
                    self.pid_file.display(),
                    RESTART_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn run_shell(command: &str) -> Result<(), String> {
    let output = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({})",
            String::from_utf8_lossy(&output.stderr).trim(),
            output.status
        ))
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
            judge_validation("usage: knockd [options]\noptions:\n  -i ...\nconfig: line 5: syntax error\n"),
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
    fn candidate_sits_beside_the_config() {
        let k = Knockd {
            program: "knockd".into(),
            conf: "/etc/knockd.conf".into(),
            pid_file: "/run/knockd.pid".into(),
            reload_command: None,
            restart_command: None,
        };
        assert_eq!(k.candidate_path(), Path::new("/etc/.knockd.conf.knock-totp-new"));
    }
}
