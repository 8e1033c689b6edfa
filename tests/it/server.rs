//! `knock-totp server`: refusals, dry runs, reloads of a real knockd on loopback, and the AWS
//! knock-port rules against a local moto server.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{can_run, have, is_root, stderr_of, stdout_of, Env};

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
            .args(["-v", "server", "--config"])
            .arg(config);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    let out = dir.server(&config).args(["-v", "--once"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(dir.conf()).unwrap();
    assert_eq!(text.matches("sequence").count(), 3, "{text}");
    assert_eq!(knockd.pid(), Some(pid), "reloaded, not restarted");
    let err = stderr_of(&out);
    assert_eq!(err.matches("window ").count(), 1, "{err}");
    assert!(!err.contains(SECRET), "{err}");
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

/// A moto server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self { child, port };
        wait_for("moto_server", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }

    fn aws(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new("aws")
            .args(args)
            .args(["--output", "json"])
            .envs(self.envs())
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", stderr_of(&out));
        let text = stdout_of(&out);
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    fn create_group(&self) -> String {
        let out = self.aws(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "knock-totp-test",
            "--description",
            "test",
        ]);
        out["GroupId"].as_str().unwrap().to_owned()
    }

    fn authorize(&self, group: &str, port: u16, description: &str) {
        let permissions = format!(
            "[{{\"IpProtocol\":\"tcp\",\"FromPort\":{port},\"ToPort\":{port},\
             \"IpRanges\":[{{\"CidrIp\":\"0.0.0.0/0\",\"Description\":\"{description}\"}}]}}]"
        );
        self.aws(&[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            group,
            "--ip-permissions",
            &permissions,
        ]);
    }

    /// Ports of the group's rules described `description`.
    fn ports(&self, group: &str, description: &str) -> BTreeSet<u16> {
        let out = self.aws(&["ec2", "describe-security-groups", "--group-ids", group]);
        let mut ports = BTreeSet::new();
        for permission in out["SecurityGroups"][0]["IpPermissions"]
            .as_array()
            .unwrap()
        {
            let tagged = permission["IpRanges"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["Description"] == description);
            if tagged {
                ports.insert(permission["FromPort"].as_u64().unwrap() as u16);
            }
        }
        ports
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The knock ports of the doors a rotation put in place, from its `-v` line.
fn logged_ports(line: &str) -> Option<BTreeSet<u16>> {
    let rest = line.split("knock ports now ").nth(1)?;
    let list = rest.split(" (added").next()?;
    Some(list.split(' ').filter_map(|p| p.parse().ok()).collect())
}

/// Ports none of the next `windows` windows' doors use, so a planted rule cannot collide.
fn port_unused_for(windows: u64) -> u16 {
    use knock_totp::core::{secret::SecretKey, totp::Algorithm, totp::Totp, window::Window};
    let totp = Totp::new(
        &SecretKey::from_base32(SECRET).unwrap(),
        Algorithm::Sha1,
        PERIOD,
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = Window::at(now, PERIOD);
    let used: BTreeSet<u16> = (0..windows + 2)
        .flat_map(|i| {
            let mut w = start.previous();
            for _ in 0..i {
                w = w.next();
            }
            totp.ports_for(w).0
        })
        .collect();
    (1000..=9999).find(|p| !used.contains(p)).unwrap()
}

const PERIOD: u64 = 10;

#[test]
fn aws_knock_port_rules_follow_the_doors() {
    if !can_run(
        "needs root, knockd, moto_server and the aws CLI (pip install 'moto[server]' awscli)",
        is_root() && have("knockd") && have("moto_server") && have("aws"),
    ) {
        return;
    }
    let moto = Moto::start();
    let group = moto.create_group();
    let dir = ServerDir::new();
    // Each aws call takes 0.5-1.5 s and a rotation makes two or three: with a 10 s period
    // the group can be read between rotations without racing the next one.
    let config = dir.config_with_period(
        PERIOD,
        &format!("firewall = \"aws\"\n[aws]\nsecurity_group = \"{group}\"\nregion = \"us-east-1\""),
    );
    let _knockd = LoopbackKnockd::start(&dir);
    let ours = "knock-totp:web";
    let other = "knock-totp:db";
    let other_port = port_unused_for(40);
    let stale_port = port_unused_for(40) + 1;
    moto.authorize(&group, other_port, other);
    moto.authorize(&group, stale_port, ours);

    // --once reconciles: the stale rule goes, the doors' ports come, db's rule stays.
    let out = dir
        .server_process(&config, &moto.envs())
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doors = stderr_of(&out).lines().find_map(logged_ports).unwrap();
    assert!((2..=6).contains(&doors.len()), "{doors:?}");
    assert_eq!(moto.ports(&group, ours), doors);
    assert_eq!(moto.ports(&group, other), BTreeSet::from([other_port]));

    // The daemon: after each rotation the rules are exactly the doors' ports.
    let mut child = dir
        .server_process(&config, &moto.envs())
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
    let mut checked = 0;
    let mut rotations = 0;
    let mut log = Vec::new();
    while checked < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no rotation: {log:#?}"));
        log.push(line.clone());
        if let Some(doors) = logged_ports(&line) {
            rotations += 1;
            assert!(
                rotations <= 6,
                "never read the group between rotations: {log:#?}"
            );
            let present = moto.ports(&group, ours);
            if present == doors {
                checked += 1;
                continue;
            }
            // On a loaded machine the slow aws calls can run into the next boundary: then
            // the next rotation has already begun authorizing. Anything else is a bug.
            let mut next_began = false;
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
                next_began |= line.contains("authorizing");
                log.push(line);
            }
            assert!(
                next_began && present.is_superset(&doors),
                "after a rotation the group holds {present:?}, the doors {doors:?}: {log:#?}"
            );
        }
    }
    assert!(!log.iter().any(|l| l.contains(SECRET)));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(moto.ports(&group, ours).is_empty());
    assert_eq!(moto.ports(&group, other), BTreeSet::from([other_port]));

    // SIGKILL leaves rules behind; the next start removes the ones no door needs.
    let mut child = dir
        .server_process(&config, &moto.envs())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let first = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| logged_ports(&l))
        .expect("a first rotation");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(moto.ports(&group, ours), first);
    std::thread::sleep(Duration::from_secs(PERIOD));
    moto.authorize(&group, stale_port, ours);
    let out = dir
        .server_process(&config, &moto.envs())
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doors = stderr_of(&out).lines().find_map(logged_ports).unwrap();
    assert_ne!(doors, first, "the window moved on");
    assert_eq!(moto.ports(&group, ours), doors);
    assert_eq!(moto.ports(&group, other), BTreeSet::from([other_port]));
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
