//! Shared test plumbing: isolated environments for the binary, root checks.

#![allow(dead_code)]

pub mod lab;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use tempfile::TempDir;

pub const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// An 80-bit secret (the shortest accepted), as the original knocker generates.
pub const SHORT_SECRET: &str = "LPI3UVRWMUTRNDBD";

/// A private HOME and hosts.toml for one test.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config").join("hosts.toml")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where a server run with this environment keeps its state file (`NAME.window`), as
    /// systemd's StateDirectory= would pass it: never the host's /var/lib/knock-totp.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `knock-totp` with this environment; no session bus unless the caller adds one.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("knock-totp").expect("binary built");
        std::fs::create_dir_all(self.home()).ok();
        cmd.env("KNOCK_TOTP_CONFIG", self.config())
            .env("HOME", self.home())
            .env("STATE_DIRECTORY", self.state_dir())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("KNOCK_TOTP_SSH");
        cmd
    }

    /// `knock-totp` with this environment, run through `prefix` (e.g. `ip netns exec NS`, or
    /// `unshare -rn` for a process without network).
    pub fn cmd_via<S: AsRef<std::ffi::OsStr>>(&self, prefix: &[S]) -> Command {
        Command::from_std(self.std_cmd_via(prefix))
    }

    /// Like `cmd_via`, as a `std::process::Command` (to spawn and watch it).
    pub fn std_cmd_via<S: AsRef<std::ffi::OsStr>>(&self, prefix: &[S]) -> std::process::Command {
        let (program, rest) = prefix.split_first().expect("a prefix program");
        let mut cmd = std::process::Command::new(program);
        cmd.args(rest).arg(env!("CARGO_BIN_EXE_knock-totp"));
        std::fs::create_dir_all(self.home()).ok();
        cmd.env("KNOCK_TOTP_CONFIG", self.config())
            .env("HOME", self.home())
            .env("STATE_DIRECTORY", self.state_dir())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("KNOCK_TOTP_SSH");
        cmd
    }

    /// Adds `name` with the file store and the given secret.
    pub fn add_file_host(&self, name: &str, address: &str, secret: &str) {
        self.add_file_host_with(name, address, secret, &[]);
    }

    /// Adds `name` with the file store, the given secret and more `add` options.
    pub fn add_file_host_with(&self, name: &str, address: &str, secret: &str, extra: &[&str]) {
        self.cmd()
            .args([
                "add",
                name,
                "--address",
                address,
                "--store",
                "file",
                "--secret",
                "-",
            ])
            .args(extra)
            .write_stdin(secret)
            .assert()
            .success();
    }

    /// Adds `name` with the file store from an otpauth URI (as a scanned QR code gives it).
    pub fn add_uri_host(&self, name: &str, address: &str, uri: &str) {
        self.cmd()
            .args([
                "add",
                name,
                "--address",
                address,
                "--store",
                "file",
                "--uri",
                "-",
            ])
            .write_stdin(uri)
            .assert()
            .success();
    }
}

/// A stand-in for ssh (Python 3.9+): records its pid and argv in the file named by
/// `KT_ARGV_FILE`, runs the `ProxyCommand=` it was given as OpenSSH does with
/// `ProxyUseFdpass yes` (a socket pair as its stdin and stdout, `%%` unescaped), receives the
/// connection over SCM_RIGHTS, sends `KT_SEND` through it and prints what comes back until EOF.
pub const FDPASS_SSH_PY: &str = r#"#!/usr/bin/env python3
import os, socket, subprocess, sys
args = sys.argv[1:]
with open(os.environ["KT_ARGV_FILE"], "w") as f:
    f.write("\n".join([str(os.getpid())] + args) + "\n")
proxy = next(a.split("=", 1)[1] for a in args if a.startswith("ProxyCommand="))
ours, theirs = socket.socketpair()
child = subprocess.Popen(["/bin/sh", "-c", "exec " + proxy.replace("%%", "%")], stdin=theirs, stdout=theirs)
theirs.close()
msg, fds, _, _ = socket.recv_fds(ours, 1, 1)
child.wait()
if not fds:
    sys.exit("proxy dialer did not pass back a connection")
conn = socket.socket(fileno=fds[0])
conn.sendall(os.environ.get("KT_SEND", "").encode())
conn.shutdown(socket.SHUT_WR)
while True:
    data = conn.recv(65536)
    if not data:
        break
    sys.stdout.buffer.write(data)
"#;

/// Writes [`FDPASS_SSH_PY`] as an executable `ssh` in `dir`; returns its path.
pub fn fdpass_ssh(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("ssh");
    std::fs::write(&path, FDPASS_SSH_PY).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Writes `text` to `path`, readable by its owner only (a secret file the daemon accepts).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Now, as time since the Unix epoch.
pub fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Debian's python3 (the one scripts/test-deps.sh installs), else the first on PATH.
pub fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Returns false (after printing why) when a test cannot run here. Under CI
/// (`KNOCK_TOTP_CI=1`) a skip is a failure instead: CI must run every test.
pub fn can_run(reason_if_not: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("KNOCK_TOTP_CI").is_some() {
        panic!("KNOCK_TOTP_CI is set but this test cannot run: {reason_if_not}");
    }
    eprintln!("skipped: {reason_if_not}");
    false
}

pub fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Puts a stand-in `nft` in `dir/bin`, a shell script that runs `body` with `$NFT` the real
/// nft, and returns the `PATH=...` setting under which a daemon (started through `env`)
/// runs it.
pub fn nft_wrapper(dir: &std::path::Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let real_nft = stdout_of(
        &std::process::Command::new("sh")
            .args(["-c", "command -v nft"])
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned();
    assert!(!real_nft.is_empty(), "no nft on PATH");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrapper = bin.join("nft");
    std::fs::write(&wrapper, format!("#!/bin/sh\nNFT='{real_nft}'\n{body}")).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("PATH={}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display())
}

/// Polls `ready` every `every` until it holds; fails with `what()` once `wait` has passed.
pub fn wait_until(
    wait: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + wait;
    while !ready() {
        assert!(Instant::now() < deadline, "{}", what());
        std::thread::sleep(every);
    }
}

/// A command prefix (argv words) that runs a program with what a systemd unit's text grants,
/// as far as tools can impose it without systemd: the unit's CapabilityBoundingSet (setpriv,
/// no new privileges) and /proc mounted as its ProtectProc and ProcSubset say, in a mount
/// namespace of its own. The system-call filter needs systemd itself.
pub fn unit_sandbox(unit: &str) -> Vec<String> {
    let setting = |key: &str| {
        unit.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    let bounding: String = setting("CapabilityBoundingSet")
        .unwrap_or_else(|| panic!("the unit sets no CapabilityBoundingSet:\n{unit}"))
        .split_whitespace()
        .map(|cap| format!(",+{}", cap.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let mut proc_options = Vec::new();
    if let Some(hidepid) = setting("ProtectProc").filter(|v| *v != "default") {
        proc_options.push(format!("hidepid={hidepid}"));
    }
    if let Some(subset) = setting("ProcSubset").filter(|v| *v != "all") {
        proc_options.push(format!("subset={subset}"));
    }
    let mount = if proc_options.is_empty() {
        String::new()
    } else {
        format!("mount -t proc -o {} proc /proc && ", proc_options.join(","))
    };
    let script = format!(
        "{mount}exec setpriv --bounding-set=-all{bounding} --inh-caps=-all --no-new-privs -- \"$@\""
    );
    ["unshare", "--mount", "sh", "-c", &script, "sh"]
        .map(str::to_owned)
        .to_vec()
}
