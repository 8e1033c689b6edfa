//! `knock-totp server`: refusals, dry runs and reloads of a real knockd on loopback (the AWS
//! security group against moto is in cloud_aws.rs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{can_run, have, is_root, stderr_of, stdout_of, write_private, Env};

const SECRET: &str = "LPI3UVRWMUTRNDBD";

/// A server directory: secret, server.toml and knockd.conf paths under a temp dir.
struct ServerDir {
    env: Env,
}

impl ServerDir {
    fn new() -> Self {
        let env = Env::new();
        let dir = env.path();
        write_private(&dir.join("secret"), &format!("{SECRET}\n"));
        std::fs::create_dir_all(dir.join("knockd")).unwrap();
        Self { env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.path().join(name)
    }

    fn conf(&self) -> PathBuf {
        self.path("knockd/web.conf")
    }

    fn pid_file(&self) -> PathBuf {
        self.path("knockd/knockd.pid")
    }

    /// Writes server.toml with a 5 s period and `extra` lines appended (tables go last).
    fn config(&self, extra: &str) -> PathBuf {
        self.config_with_period(5, extra)
    }

    fn config_with_period(&self, period: u64, extra: &str) -> PathBuf {
        let text = format!(
            "name = \"web\"\nsecret_file = \"{}\"\nport = 22\ninterface = \"lo\"\n\
             knockd_conf = \"{}\"\nknockd_pid_file = \"{}\"\nperiod = {period}\n{extra}\n",
            self.path("secret").display(),
            self.conf().display(),
            self.pid_file().display(),
        );
        let path = self.path("server.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn iptables_config(&self) -> PathBuf {
        self.config("firewall = \"iptables\"")
    }

    fn server(&self, config: &Path) -> assert_cmd::Command {
        let mut cmd = self.env.cmd();
        cmd.args(["server", "--config"]).arg(config);
        cmd
    }

    fn server_process(&self, config: &Path, envs: &[(&str, String)]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("knock-totp"));
        cmd.env("HOME", self.env.home())
            .env("KNOCK_TOTP_CONFIG", self.env.config())
            .env("STATE_DIRECTORY", self.env.state_dir())
            .args(["-v", "server", "--config"])
            .arg(config);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn refuses_a_missing_or_readable_secret_file() {
    let dir = ServerDir::new();
    let config = dir.iptables_config();
    set_mode(&dir.path("secret"), 0o644);
    let out = dir.server(&config).arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("refusing the secret file") && err.contains("644"),
        "{err}"
    );
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    std::fs::remove_file(dir.path("secret")).unwrap();
    let out = dir.server(&config).arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("cannot read the secret file"));
}

#[test]
fn refuses_when_knockd_is_not_running_or_its_directory_is_missing() {
    let dir = ServerDir::new();
    let config = dir.iptables_config();
    let out = dir.server(&config).arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("knockd is not running"),
        "{}",
        stderr_of(&out)
    );
    assert!(!dir.conf().exists(), "nothing written when knockd is down");

    std::fs::remove_dir(dir.path("knockd")).unwrap();
    let out = dir.server(&config).arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot use the knockd config directory"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn dry_run_prints_the_doors_and_changes_nothing() {
    let dir = ServerDir::new();
    let config = dir.config(
        "firewall = \"aws\"\n[aws]\nsecurity_group = \"sg-0123abcd\"\nregion = \"us-east-1\"",
    );
    let out = dir
        .server(&config)
        .args(["--once", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert_eq!(text.matches("sequence        = ").count(), 3, "{text}");
    assert!(text.contains("would reload knockd: kill -HUP"), "{text}");
    assert!(
        text.contains("authorize-security-group-ingress --group-id sg-0123abcd"),
        "{text}"
    );
    assert!(text.contains("knock-totp:web"), "{text}");
    assert!(!text.contains(SECRET) && !stderr_of(&out).contains(SECRET));
    assert!(!dir.conf().exists());
}

/// knockd in daemon mode on loopback (it only listens), stopped when dropped.
struct LoopbackKnockd {
    pid_file: PathBuf,
}

impl LoopbackKnockd {
    fn start(dir: &ServerDir) -> Self {
        std::fs::write(
            dir.conf(),
            format!(
                "[options]\n\tUseSyslog\n\tInterface = lo\n\tPidFile = {}\n",
                dir.pid_file().display()
            ),
        )
        .unwrap();
        let status = Command::new("knockd")
            .args(["-d", "-i", "lo", "-c"])
            .arg(dir.conf())
            .status()
            .unwrap();
        assert!(status.success());
        let knockd = Self {
            pid_file: dir.pid_file(),
        };
        wait_for("knockd's pid file", Duration::from_secs(5), || {
            knockd.pid().is_some()
        });
        knockd
    }

    fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        (stat.contains("(knockd)") && !stat.contains(") Z")).then_some(pid)
    }
}

impl Drop for LoopbackKnockd {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn knockd_available() -> bool {
    can_run(
        "needs root and knockd (apt-get install knockd) to run knockd on loopback",
        is_root() && have("knockd"),
    )
}

#[test]
fn reloads_a_running_knockd_in_place() {
    if !knockd_available() {
        return;
    }
    let dir = ServerDir::new();
    let config = dir.iptables_config();
    let knockd = LoopbackKnockd::start(&dir);
    let pid = knockd.pid().unwrap();
    let out = dir
        .server(&config)
        .args(["-vv", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(dir.conf()).unwrap();
    assert_eq!(text.matches("sequence").count(), 3, "{text}");
    assert_eq!(knockd.pid(), Some(pid), "reloaded, not restarted");
    let err = stderr_of(&out);
    assert_eq!(err.matches("window ").count(), 1, "{err}");
    assert!(!err.contains(SECRET), "{err}");
    // The ports are the code: the daemon's log (the journal) never names them, even at -vv.
    let ports: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("sequence"))
        .flat_map(|rest| rest.trim_start_matches([' ', '=']).split(','))
        .map(|port| port.trim().trim_end_matches(":tcp"))
        .collect();
    assert_eq!(ports.len(), 6, "{text}");
    let words: Vec<&str> = err.split(|c: char| !c.is_ascii_digit()).collect();
    let named: Vec<&&str> = ports.iter().filter(|p| words.contains(p)).collect();
    // One may match a pid or a duration by chance; the old log named all six.
    assert!(
        named.len() <= 1,
        "the log names door ports {named:?}:\n{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path("knockd"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".web.conf."))
        .collect();
    assert!(left.is_empty(), "candidates left behind: {left:?}");
}

#[test]
fn restarts_knockd_when_a_reload_kills_it() {
    if !knockd_available() {
        return;
    }
    let dir = ServerDir::new();
    // A reload command that kills knockd stands in for a reload knockd does not survive.
    let config = dir.config(&format!(
        "knockd_reload_command = [\"sh\", \"-c\", \"kill -9 $(cat {})\"]\nfirewall = \"iptables\"",
        dir.pid_file().display()
    ));
    let knockd = LoopbackKnockd::start(&dir);
    let pid = knockd.pid().unwrap();
    let out = dir.server(&config).arg("--once").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("KNOCKD WAS GONE"),
        "{}",
        stderr_of(&out)
    );
    let new_pid = knockd.pid().expect("knockd restarted");
    assert_ne!(new_pid, pid);
}

/// A stand-in `aws` that logs its argv and fails like the real one does without credentials.
fn failing_aws(dir: &ServerDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("aws");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\n\
             echo 'An error occurred (AuthFailure) when calling the DescribeSecurityGroups \
             operation: AWS was not able to validate the provided access credentials' >&2\nexit 254\n",
            dir.path("aws-argv.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn a_failing_or_missing_aws_cli_stops_the_server_before_anything_changes() {
    if !knockd_available() {
        return;
    }
    let dir = ServerDir::new();
    let config = dir.config("firewall = \"aws\"\n[aws]\nsecurity_group = \"sg-0123abcd\"");
    let _knockd = LoopbackKnockd::start(&dir);
    let before = std::fs::read_to_string(dir.conf()).unwrap();
    let bin = failing_aws(&dir);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = dir
        .server(&config)
        .arg("--once")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("cannot read the security group"), "{err}");
    assert_eq!(
        err.matches("AuthFailure").count(),
        2,
        "logged once, then the error: {err}"
    );
    assert_eq!(std::fs::read_to_string(dir.conf()).unwrap(), before);
    let argv = std::fs::read_to_string(dir.path("aws-argv.log")).unwrap();
    assert!(argv.lines().count() >= 2, "retried: {argv}");
    assert!(!argv.contains(SECRET));

    // No aws at all: PATH with knockd and the basics only.
    let no_aws = dir.path("no-aws");
    std::fs::create_dir_all(&no_aws).unwrap();
    for tool in ["knockd", "kill", "sh", "cat"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let target = String::from_utf8(found.stdout).unwrap();
        let _ = std::os::unix::fs::symlink(target.trim(), no_aws.join(tool));
    }
    let out = dir
        .server(&config)
        .arg("--once")
        .env("PATH", &no_aws)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot run the aws CLI"),
        "{}",
        stderr_of(&out)
    );
}

/// libfaketime's preload library, which lets a test move one process's wall clock.
fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists())
}

/// The windows a dry run planned, in the order it planned them.
fn planned_windows(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# dry run: window "))
        .map(|counter| counter.trim().parse().unwrap())
        .collect()
}

#[test]
fn a_clock_set_back_never_serves_an_older_window_again() {
    let Some(library) = libfaketime() else {
        can_run("needs libfaketime (the faketime package)", false);
        return;
    };
    let dir = ServerDir::new();
    let config = dir.path("server.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"web\"\nsecret_file = \"{}\"\nport = 22\nengine = \"nftables\"\n\
             firewall = \"nftables\"\nperiod = 5\n",
            dir.path("secret").display()
        ),
    )
    .unwrap();
    let offset = dir.path("clock-offset");
    std::fs::write(&offset, "+0\n").unwrap();
    let mut daemon = dir
        .server_process(&config, &[])
        .arg("--dry-run")
        .env("LD_PRELOAD", &library)
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two rotations at the real time, then the clock goes back three windows.
    let mut stdout = BufReader::new(daemon.stdout.take().unwrap());
    let mut planned = String::new();
    let started = Instant::now();
    while planned_windows(&planned).len() < 2 && started.elapsed() < Duration::from_secs(15) {
        stdout.read_line(&mut planned).unwrap();
    }
    std::fs::write(&offset, "-15s\n").unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let _ = daemon.kill();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut planned);
    let mut log = String::new();
    let _ = std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut log);
    let _ = daemon.wait();
    let windows = planned_windows(&planned);
    assert!(windows.len() >= 2, "{planned}\n{log}");
    assert!(
        windows.windows(2).all(|pair| pair[0] < pair[1]),
        "a window was served again or out of order: {windows:?}\n{log}"
    );
    assert!(
        log.contains("the clock went back to window")
            && log.contains("no older window is served again"),
        "{log}"
    );
}

/// The knockd processes that run on `conf` (from their command lines).
fn knockds_on(conf: &Path) -> Vec<u32> {
    let conf = conf.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            stat.contains("(knockd)") && !stat.contains(") Z") && args.contains(&conf)
        })
        .collect()
}

/// Issue 14: a reload command that fails while knockd lives used to start a second knockd
/// beside it, and the first kept the old doors forever. Now the old one is stopped first.
#[test]
fn a_failing_reload_restarts_knockd_instead_of_starting_a_second_one() {
    if !knockd_available() {
        return;
    }
    let dir = ServerDir::new();
    let config = dir.config("knockd_reload_command = [\"false\"]\nfirewall = \"iptables\"");
    let knockd = LoopbackKnockd::start(&dir);
    let pid = knockd.pid().unwrap();
    let out = dir.server(&config).arg("--once").output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the reload failed") && err.contains("stopped knockd"),
        "{err}"
    );
    let new_pid = knockd.pid().expect("knockd restarted");
    assert_ne!(new_pid, pid);
    assert_eq!(knockds_on(&dir.conf()), [new_pid], "{err}");
    let text = std::fs::read_to_string(dir.conf()).unwrap();
    assert_eq!(text.matches("sequence").count(), 3, "{text}");
}

/// Issue 12 item 9: when rotations keep failing (here knockd refuses every new config), knockd
/// keeps no door past its time bound: the daemon cannot give it a door-less config either, so
/// it stops knockd; once rotations work again, knockd runs with the current doors.
#[test]
fn a_daemon_whose_rotations_fail_leaves_no_door_once_their_time_is_up() {
    use std::os::unix::fs::PermissionsExt;
    if !knockd_available() {
        return;
    }
    const PERIOD: u64 = 5;
    let dir = ServerDir::new();
    let config = dir.iptables_config();
    let real = Command::new("sh")
        .args(["-c", "command -v knockd"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    let broken = dir.path("knockd-refuses-everything");
    let bin = dir.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("knockd"),
        format!(
            "#!/bin/sh\nif [ -e {} ]; then echo 'config: line 1: refused by the test' >&2; \
             exit 1; fi\nexec {real} \"$@\"\n",
            broken.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("knockd"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let knockd = LoopbackKnockd::start(&dir);
    let mut child = dir
        .server_process(&config, &[("PATH", path)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let first: u64 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no rotation: {log:#?}"));
        log.push(line.clone());
        if let Some(counter) = line
            .strip_prefix("knock-totp: window ")
            .and_then(|rest| rest.split(':').next()?.parse().ok())
        {
            break counter;
        }
    };
    assert!(knockd.pid().is_some());
    std::fs::write(&broken, "").unwrap();
    // The doors of windows first-1..=first+1 are in knockd; the one of first-1 is past its
    // time at the next boundary, so from then on knockd must have no door at all.
    let bound = Duration::from_secs((first + 1) * PERIOD);
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let deadline = Instant::now() + (bound + Duration::from_secs(3)).saturating_sub(unix_now());
    while knockd.pid().is_some() {
        log.extend(rx.try_iter());
        assert!(
            Instant::now() < deadline,
            "knockd still runs its stale doors 3 s after their time:\n{}",
            log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "the daemon gave up");
    assert!(knockds_on(&dir.conf()).is_empty());

    // Rotations work again: knockd comes back with the current doors within a window.
    std::fs::remove_file(&broken).unwrap();
    wait_for(
        "knockd back with doors",
        Duration::from_secs(PERIOD + 6),
        || {
            knockd.pid().is_some()
                && std::fs::read_to_string(dir.conf())
                    .is_ok_and(|t| t.matches("sequence").count() == 3)
        },
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    log.extend(rx.try_iter());
    assert!(status.success(), "{status}: {}", log.join("\n"));
    let text = std::fs::read_to_string(dir.conf()).unwrap();
    assert!(
        !text.contains("sequence"),
        "doors left after SIGTERM:\n{text}"
    );
}

#[test]
fn metrics_file_is_refused_with_the_knockd_engine_or_a_missing_directory() {
    let dir = ServerDir::new();
    let metrics = dir.path("knock-totp.prom");
    let config = dir.config("engine = \"knockd\"\nfirewall = \"iptables\"");
    let out = dir
        .server(&config)
        .args(["--once", "--metrics-file"])
        .arg(&metrics)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("--metrics-file") && first.contains("engine = \"knockd\""),
        "{err}"
    );
    assert!(!metrics.exists() && !dir.conf().exists(), "{err}");

    let config = dir.config("engine = \"nftables\"\nfirewall = \"nftables\"");
    let missing = dir.path("no-such-dir/knock-totp.prom");
    let out = dir
        .server(&config)
        .args(["--once", "--metrics-file"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("does not exist"), "{err}");

    let out = dir
        .server(&config)
        .args(["--status", "--metrics-file"])
        .arg(&metrics)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}
