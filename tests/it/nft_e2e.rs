//! End to end, as root: the nftables engine under attack. `setup` writes the files, the
//! lab's server namespace loads `firewall-setup.sh` and runs `knock-totp server`, and the
//! client namespace knocks, sweeps, replays and guesses.
//!
//! Raw SYNs (a sweeper, a replayer, a guesser, a knock straddling a rotation) come from a
//! small Python script run in the client namespace: a non-blocking `connect` sends exactly
//! one SYN, `close` drops the socket before any answer. Every wait and loop is bounded.

mod attack;
mod docker;
mod many_users;
mod metrics;
mod operator;
mod state;
mod users;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};
use knock_totp::core::window::Window;
use serde_json::Value;

use crate::support::lab::{lab_available, Lab};
use crate::support::{
    can_run, have, stderr_of, stdout_of, unit_sandbox, wait_until, Env, RFC_SECRET,
};
use crate::support::{nft_wrapper, python3, unix_now};

pub(crate) const SECRET: &str = RFC_SECRET;
/// Inside the knock range on purpose: the protected port must never count as a knock.
pub(crate) const PROTECTED: u16 = 2222;
const NAME: &str = "web";
pub(crate) const TABLE: &str = "knock_totp_web";

/// One SYN per port: `seq SRC DST DELAY_MS PORT...`, `sweep SRC DST` (1000..=9999 up, then
/// down), `guess SRC DST SECONDS` (random pairs), `paced SRC DST SECONDS PER_SECOND` (random
/// ports at a steady pace), `straddle SRC DST A_AT A B LOG NEEDLE`
/// (A at unix time A_AT, B once LOG contains NEEDLE). Prints what it did.
const SYN_PY: &str = r#"
import os, random, socket, sys, time
def syn(src, dst, port):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    s.connect_ex((dst, port))
    s.close()
mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
sent = 0
if mode == "seq":
    delay = float(sys.argv[4]) / 1000
    for i, p in enumerate(sys.argv[5:]):
        if i:
            time.sleep(delay)
        syn(src, dst, int(p)); sent += 1
    print(sent)
elif mode == "sweep":
    for p in list(range(1000, 10000)) + list(range(9999, 999, -1)):
        syn(src, dst, p); sent += 1
    print(sent)
elif mode == "guess":
    end = time.monotonic() + float(sys.argv[4])
    while time.monotonic() < end:
        for p in (random.randint(1000, 9999), random.randint(1000, 9999)):
            syn(src, dst, p); sent += 1
    print(sent)
elif mode == "paced":
    seconds, per_second = float(sys.argv[4]), float(sys.argv[5])
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        syn(src, dst, random.randint(1000, 9999)); sent += 1
        time.sleep(max(0.0, start + sent / per_second - time.monotonic()))
    print(sent)
elif mode == "straddle":
    a_at, a, b, log, needle = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
    while time.time() < a_at:
        time.sleep(min(0.005, max(0.0, a_at - time.time())))
    rotated_before_a = needle in open(log).read()
    syn(src, dst, a); t_a = time.time()
    end = time.monotonic() + 5
    while needle not in open(log).read() and time.monotonic() < end:
        time.sleep(0.002)
    syn(src, dst, b); t_b = time.time()
    print(t_a, t_b, int(rotated_before_a))
"#;

/// Root, the lab's programs, nft, and (when `python` is set) Python for the raw SYNs.
pub(crate) fn nft_lab_available(python: bool) -> bool {
    lab_available()
        && can_run("needs nft (apt-get install nftables)", have("nft"))
        && (!python || can_run("needs python3 for the raw SYNs", have(python3())))
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout_of(out)))
}

fn sources(status: &Value, list: &str) -> Vec<String> {
    status[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {status}"))
        .iter()
        .map(|s| s["source"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {status}"))
}

/// The ports `knock-totp -vv knock` knocked last ("knocking IP on ports A B (...)").
fn last_knocked_ports(stderr: &str) -> Option<[u16; 2]> {
    stderr.lines().rev().find_map(|line| {
        let rest = line.split_once(" on ports ")?.1;
        let mut ports = rest.split(" (").next()?.split(' ').map(str::parse::<u16>);
        Some([ports.next()?.ok()?, ports.next()?.ok()?])
    })
}

/// A server enrolled with `setup` in a lab: its files, and (once started) the daemon.
pub(crate) struct Rig {
    pub(crate) lab: Lab,
    /// setup's output directory.
    files: PathBuf,
    config: String,
    pub(crate) period: u64,
    totp: Totp,
    /// The current daemon's stderr (the lab's log file).
    log: Option<PathBuf>,
    logs: usize,
    /// Options the daemon gets after `--config FILE`.
    daemon_args: Vec<String>,
}

impl Rig {
    /// Runs `setup` (secret on stdin) and points its files at the lab directory; starts
    /// nothing.
    pub(crate) fn setup(tag: &str, period: u64, open_seconds: u64) -> Self {
        let lab = Lab::new(tag);
        let files = lab.dir.path().join("setup");
        let period_arg = period.to_string();
        let open_arg = open_seconds.to_string();
        let port_arg = PROTECTED.to_string();
        let out = Env::new()
            .cmd()
            .args(["-q", "setup", NAME, "--secret", "-", "--port", &port_arg])
            .args([
                "--period",
                &period_arg,
                "--open-seconds",
                &open_arg,
                "--out",
            ])
            .arg(&files)
            .write_stdin(SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "setup failed: {}", stderr_of(&out));
        let rig = Self {
            config: files.join("web.toml").to_string_lossy().into_owned(),
            files,
            lab,
            period,
            totp: Totp::new(
                &SecretKey::from_base32(SECRET).unwrap(),
                Algorithm::Sha1,
                period,
            )
            .unwrap(),
            log: None,
            logs: 0,
            daemon_args: Vec::new(),
        };
        let secret = rig.files.join("web.secret");
        assert_eq!(
            std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        rig.edit(
            "web.toml",
            "/etc/knock-totp/web.secret",
            &secret.to_string_lossy(),
        );
        let base = rig.files.join("web.nft");
        rig.edit(
            "firewall-setup.sh",
            "/etc/knock-totp/web.nft",
            &base.to_string_lossy(),
        );
        rig.set("engine", "\"nftables\"");
        rig
    }

    /// setup's files, firewall-setup.sh run, echo server on the protected port, daemon
    /// running.
    pub(crate) fn running(tag: &str, period: u64, open_seconds: u64) -> Self {
        let mut rig = Self::setup(tag, period, open_seconds);
        rig.install_base();
        rig.lab.start_echo_server(PROTECTED);
        rig.start_daemon();
        rig
    }

    /// Replaces `from` by `to` in one of setup's files (which must contain it).
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.files.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} lacks {from:?}:\n{text}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// Sets `key = value` in web.toml (the key's line must exist).
    pub(crate) fn set(&self, key: &str, value: &str) {
        let path = self.files.join("web.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let prefix = format!("{key} = ");
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "web.toml has no {key}:\n{text}"
        );
        let new: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&prefix) {
                    format!("{key} = {value}")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        std::fs::write(&path, new.join("\n") + "\n").unwrap();
    }

    /// What the administrator runs once: setup's firewall-setup.sh (loads web.nft).
    pub(crate) fn install_base(&self) {
        let out = self
            .lab
            .server_cmd("sh")
            .arg(self.files.join("firewall-setup.sh"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "firewall-setup.sh failed: {}",
            stderr_of(&out)
        );
        assert!(self.table_exists(), "firewall-setup.sh loaded no table");
    }

    /// Starts `knock-totp server --config` in the server namespace; returns once it logged
    /// its first window.
    pub(crate) fn start_daemon(&mut self) {
        self.start_daemon_via(&[], 3);
    }

    /// Like `start_daemon`, for a first window of `doors` doors (3 per user with users).
    pub(crate) fn start_daemon_expecting(&mut self, doors: usize) {
        self.start_daemon_via(&[], doors);
    }

    /// Like `start_daemon`, with the daemon run through `prefix` (argv words before it), its
    /// first window with `doors` doors.
    fn start_daemon_via(&mut self, prefix: &[&str], doors: usize) {
        self.spawn_daemon_via(prefix);
        let first = self.wait_rotation(0, Duration::from_secs(10));
        let log = self.log_text();
        assert!(
            log.contains(&format!(
                "window {first}: {doors} doors in table inet {TABLE}"
            )),
            "{log}"
        );
    }

    /// Options every later start of the daemon gets after `--config FILE`.
    pub(crate) fn with_daemon_args(&mut self, args: &[&str]) {
        self.daemon_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts the daemon through `prefix` (e.g. `env NAME=VALUE...`), with the options of
    /// `with_daemon_args`, and returns at once.
    pub(crate) fn spawn_daemon_via(&mut self, prefix: &[&str]) {
        self.logs += 1;
        let mut argv = prefix.to_vec();
        argv.extend([env!("CARGO_BIN_EXE_knock-totp"), "server", "--config"]);
        argv.push(&self.config);
        argv.extend(self.daemon_args.iter().map(String::as_str));
        let log = self
            .lab
            .server_spawn(&argv, &format!("server-{}.log", self.logs));
        self.log = Some(log);
    }

    /// The daemon's state file: the newest window whose door it put in the kernel.
    fn state_file(&self) -> PathBuf {
        self.lab.state_dir().join(format!("{NAME}.window"))
    }

    pub(crate) fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Window counters of the daemon's rotation lines ("knock-totp: window N: ...").
    fn rotations(&self) -> Vec<u64> {
        self.log_text()
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("knock-totp: window ")?;
                rest.split_once(": ")?.0.parse().ok()
            })
            .collect()
    }

    /// Waits until the daemon logged a window >= `counter`; returns the latest.
    fn wait_rotation(&self, counter: u64, wait: Duration) -> u64 {
        let latest = || self.rotations().into_iter().max();
        wait_until(
            wait,
            Duration::from_millis(10),
            || latest().is_some_and(|last| last >= counter),
            || {
                format!(
                    "no rotation to window {counter} within {wait:?}; log:\n{}",
                    self.log_text()
                )
            },
        );
        latest().expect("a rotation was logged")
    }

    /// Waits until the daemon's log contains `needle`.
    fn wait_log(&self, needle: &str, wait: Duration) {
        wait_until(
            wait,
            Duration::from_millis(10),
            || self.log_text().contains(needle),
            || {
                format!(
                    "the daemon never logged {needle:?} within {wait:?}; log:\n{}",
                    self.log_text()
                )
            },
        );
    }

    /// The daemon's process id (the one knock-totp process in the server namespace).
    fn daemon_pid(&self) -> u32 {
        let pids = self.lab.server_pids("knock-totp");
        assert_eq!(pids.len(), 1, "knock-totp processes: {pids:?}");
        pids[0]
    }

    /// Sends `signal` to the daemon (our own child, by its id).
    fn signal(&self, pid: u32, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn wait_exit(&self, pid: u32, wait: Duration) {
        wait_until(
            wait,
            Duration::from_millis(10),
            || !Lab::process_alive(pid),
            || {
                format!(
                    "the daemon ({pid}) still runs after {wait:?}; log:\n{}",
                    self.log_text()
                )
            },
        );
    }

    /// `server --status --json` (kernel state of the table).
    pub(crate) fn status(&self) -> Value {
        let out = self
            .lab
            .server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
            .args(["server", "--config", &self.config, "--status", "--json"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "--status: {}", stderr_of(&out));
        json_of(&out)
    }

    pub(crate) fn table_exists(&self) -> bool {
        self.lab
            .server_cmd("nft")
            .args(["list", "table", "inet", TABLE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The pair of window `counter`.
    pub(crate) fn ports(&self, counter: u64) -> [u16; 2] {
        self.totp
            .ports_for(Window {
                counter,
                period: self.period,
            })
            .0
    }

    /// The window counter at unix time `t`.
    pub(crate) fn counter_at(&self, t: f64) -> u64 {
        self.totp.window_at(t as u64).counter
    }

    /// `knock-totp -v knock --address ADDR --verify` from the client namespace (its default
    /// source address), with `extra` options.
    fn knock(&self, address: IpAddr, extra: &[&str]) -> Output {
        let (address, port, period) = (
            address.to_string(),
            PROTECTED.to_string(),
            self.period.to_string(),
        );
        Env::new()
            .cmd_via(&self.lab.client_prefix())
            .args(["-vv", "knock", "--address", &address, "--port", &port])
            .args(["--secret", "-", "--period", &period, "--verify"])
            .args(["--timeout", "3"])
            .args(extra)
            .write_stdin(SECRET)
            .output()
            .unwrap()
    }

    /// A legitimate `knock --verify` (margin 1 s) that must open the port; returns its output.
    fn knock_ok(&self, address: IpAddr, what: &str) -> Output {
        let out = self.knock(address, &["--margin", "1"]);
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            stderr_of(&out),
            self.report()
        );
        out
    }

    /// Runs the SYN script in the client namespace; returns its stdout.
    fn syn(&self, args: &[String]) -> String {
        let script = self.lab.dir.path().join("syn.py");
        if !script.exists() {
            std::fs::write(&script, SYN_PY).unwrap();
        }
        let out = self
            .lab
            .client_cmd(python3())
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "syn.py {args:?}: {}", stderr_of(&out));
        stdout_of(&out)
    }

    /// One SYN per port from `src`, `delay_ms` apart (a knock by hand).
    pub(crate) fn send(&self, src: IpAddr, ports: &[u16], delay_ms: u64) {
        let mut args = vec![
            "seq".to_owned(),
            src.to_string(),
            self.lab.server_ip.to_string(),
            delay_ms.to_string(),
        ];
        args.extend(ports.iter().map(u16::to_string));
        self.syn(&args);
    }

    fn can_connect(&self, from: impl Into<IpAddr>) -> bool {
        self.lab
            .client_can_connect_from(from.into(), IpAddr::V4(self.lab.server_ip), PROTECTED)
    }

    /// Everything for a failure message.
    pub(crate) fn report(&self) -> String {
        format!(
            "daemon log:\n{}\nstatus: {}",
            self.log_text(),
            self.status()
        )
    }
}

fn v4(ip: Ipv4Addr) -> IpAddr {
    IpAddr::V4(ip)
}

/// The daemon under what its generated unit grants, as far as tools without systemd can
/// impose it: only the unit's capability bounding set (setpriv, no new privileges) and /proc
/// as ProtectProc/ProcSubset mount it. (The system-call filter needs systemd itself.)
#[test]
fn nft_daemon_works_with_only_what_its_unit_grants() {
    if !nft_lab_available(false) {
        return;
    }
    if !can_run(
        "needs setpriv and unshare (util-linux)",
        have("setpriv") && have("unshare"),
    ) {
        return;
    }
    let mut rig = Rig::setup("nftcap", 30, 30);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    let unit = std::fs::read_to_string(rig.files.join("knock-totp-web.service")).unwrap();
    let sandbox = unit_sandbox(&unit);
    let prefix: Vec<&str> = sandbox.iter().map(String::as_str).collect();
    rig.start_daemon_via(&prefix, 3);
    let pid = rig.daemon_pid();
    let caps = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        caps.lines().any(|l| l == "CapBnd:\t0000000000001000"),
        "the daemon runs with more than CAP_NET_ADMIN:\n{caps}"
    );
    assert!(
        !rig.can_connect(rig.lab.client_ip),
        "the port is open before a knock"
    );
    rig.knock_ok(v4(rig.lab.server_ip), "knock --verify failed");
    assert!(
        rig.can_connect(rig.lab.client_ip),
        "the knocker cannot connect"
    );
}

#[test]
fn nft_legit_knock_opens_the_port_for_the_knocker_only() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let rig = Rig::running("nftok", 30, 30);
    let client = rig.lab.client_ip;
    let other = rig.lab.add_client_ipv4(3);
    assert!(!rig.can_connect(client), "the port is open before a knock");
    assert!(!rig.can_connect(other), "the port is open before a knock");

    rig.knock_ok(v4(rig.lab.server_ip), "knock --verify failed");
    assert!(rig.can_connect(client), "the knocker cannot connect");
    assert!(
        !rig.can_connect(other),
        "an address that did not knock can connect\n{}",
        rig.report()
    );
    let status = rig.status();
    assert_eq!(
        sources(&status, "allowed"),
        vec![client.to_string()],
        "{status}"
    );
    assert_eq!(counter(&status, "opened"), 1, "{status}");
    let owners: Vec<&str> = status["doors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["owner"].as_str())
        .collect();
    assert_eq!(owners, vec![client.to_string()], "{status}");
    eprintln!("legit: ok in {:.1?}", started.elapsed());
}

#[test]
fn nft_sweeps_never_open_a_door() {
    if !nft_lab_available(true) {
        return;
    }
    const TRIALS: u64 = 20;
    const SWEEP: u64 = 18_000;
    let started = Instant::now();
    let mut rig = Rig::setup("nftsweep", 5, 30);
    // This test is about the stages: the config lifts every meter and the global budget so
    // far that no 18000-SYN sweep is banned or trips the attack state.
    for (key, value) in [
        ("rate_per_minute", "1000000"),
        ("burst", "1000000"),
        ("wrong_knocks_per_hour", "1000000"),
        ("wrong_knock_burst", "1000000"),
        ("global_wrong_knocks_per_hour", "10000000"),
        ("global_wrong_knock_burst", "10000000"),
    ] {
        rig.set(key, value);
    }
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon();
    let client = rig.lab.client_ip;
    let target = rig.lab.server_ip.to_string();

    let mut opened_in = Vec::new();
    let mut windows = std::collections::BTreeSet::new();
    let mut opened_so_far = 0;
    for trial in 0..TRIALS {
        windows.insert(rig.counter_at(unix_now().as_secs_f64()));
        let sent: u64 = rig
            .syn(&["sweep".into(), client.to_string(), target.clone()])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(sent, SWEEP);
        // A sweep that opened a door raised the counter (the grant outlives the trial).
        let opened = counter(&rig.status(), "opened");
        if opened > opened_so_far {
            opened_in.push(trial);
        }
        opened_so_far = opened;
    }
    let status = rig.status();
    let knocks = counter(&status, "knocks");
    eprintln!(
        "sweep: {} of {TRIALS} sweeps opened a door (windows {windows:?}); counters {}; {:.1?}",
        opened_in.len(),
        status["counters"],
        started.elapsed()
    );
    assert!(
        opened_in.is_empty(),
        "sweeps opened a door in {} of {TRIALS} trials (trials {opened_in:?})\n{}",
        opened_in.len(),
        rig.report()
    );
    // Every SYN but the two to the protected port reached the knock chain: nothing was
    // banned or lost, so the stages (cancelled by the next port) are what held.
    assert_eq!(counter(&status, "bans"), 0, "{status}");
    assert_eq!(knocks, TRIALS * (SWEEP - 2), "{status}");
    assert_eq!(counter(&status, "denied"), TRIALS * 2, "{status}");
    assert!(counter(&status, "cancelled") >= TRIALS, "{status}");
    assert!(!rig.can_connect(client), "the sweeper can connect");
    // The same address still gets in with the code.
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
}

#[test]
fn nft_replayed_knocks_are_refused() {
    if !nft_lab_available(true) {
        return;
    }
    const TRIALS: u64 = 10;
    let started = Instant::now();
    // open_seconds 1: the knocker is shut out again before each trial.
    let rig = Rig::running("nftreplay", 30, 1);
    let client = rig.lab.client_ip;
    let replayer = rig.lab.add_client_ipv4(3);
    let server = v4(rig.lab.server_ip);
    let mut replays_in = 0;
    for trial in 0..TRIALS {
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || !sources(&rig.status(), "allowed").contains(&client.to_string()),
            || "the grant never expired".to_owned(),
        );
        let out = rig.knock_ok(server, &format!("trial {trial}: the legit knock failed"));
        let ports = last_knocked_ports(&stderr_of(&out))
            .unwrap_or_else(|| panic!("no ports in {}", stderr_of(&out)));
        rig.send(v4(replayer), &ports, 100);
        let status = rig.status();
        if sources(&status, "allowed").contains(&replayer.to_string()) {
            replays_in += 1;
        }
        assert!(
            !rig.can_connect(replayer),
            "trial {trial}: the replay of {ports:?} let the replayer in\n{}",
            rig.report()
        );
    }
    let status = rig.status();
    eprintln!(
        "replay: legit in {TRIALS} of {TRIALS}, replayer in {replays_in} of {TRIALS}; \
         counters {}; {:.1?}",
        status["counters"],
        started.elapsed()
    );
    assert_eq!(replays_in, 0);
    assert_eq!(counter(&status, "refused"), TRIALS, "{status}");
}

/// A guesser at a second address runs `attack` (the SYN script's mode, then what follows
/// its addresses) against a running server: it is banned, alone, after a count of SYNs in
/// `banned_after`, opens nothing, and the legitimate client still gets in.
fn guesser_is_banned(tag: &str, attack: &[&str], banned_after: RangeInclusive<u64>) {
    let started = Instant::now();
    let rig = Rig::running(tag, 30, 30);
    let guesser = rig.lab.add_client_ipv4(3);
    let mut args = vec![
        attack[0].to_owned(),
        guesser.to_string(),
        rig.lab.server_ip.to_string(),
    ];
    args.extend(attack[1..].iter().map(|a| a.to_string()));
    let sent: u64 = rig.syn(&args).trim().parse().unwrap();
    let status = rig.status();
    // The knocks counter counts every SYN, the banned one those dropped after the ban.
    let before_ban = counter(&status, "knocks") - counter(&status, "banned");
    eprintln!(
        "{tag}: {sent} SYNs ({attack:?}), banned after {before_ban} (counters {}), banned {:?}",
        status["counters"],
        sources(&status, "banned")
    );
    assert_eq!(
        counter(&status, "opened"),
        0,
        "the guesser opened a door: {status}"
    );
    assert!(sources(&status, "allowed").is_empty(), "{status}");
    assert_eq!(
        sources(&status, "banned"),
        vec![guesser.to_string()],
        "{status}"
    );
    assert_eq!(counter(&status, "bans"), 1, "{status}");
    assert!(
        banned_after.contains(&before_ban),
        "banned after {before_ban} SYNs, not {banned_after:?}: {status}"
    );
    assert!(sent > before_ban, "the guesser sent only {sent} SYNs");
    assert!(!rig.can_connect(guesser), "the guesser can connect");
    // The ban is per source: the legit client still gets in.
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    eprintln!("{tag}: {:.1?}", started.elapsed());
}

#[test]
fn nft_blind_guesser_is_banned_and_never_gets_in() {
    if !nft_lab_available(true) {
        return;
    }
    // Random pairs as fast as it can for 60 s: the rate meter's burst is 40.
    guesser_is_banned("nftguess", &["guess", "60"], 0..=41);
}

#[test]
fn nft_slow_guesser_under_the_rate_is_banned_for_its_wrong_knocks() {
    if !nft_lab_available(true) {
        return;
    }
    // 2 SYNs a second for 25 s: the rate meter (burst 40, then 1 a second) would ban only
    // after 40 s. 40 wrong knocks in a burst; a random port may have started a stage instead.
    guesser_is_banned("nftslow", &["paced", "25", "2"], 41..=43);
}

#[test]
fn nft_clients_of_a_public_port_in_the_knock_range_are_not_knockers() {
    if !nft_lab_available(true) {
        return;
    }
    const PUBLIC: u16 = 8080;
    let started = Instant::now();
    let mut rig = Rig::setup("nftpublic", 30, 30);
    rig.edit(
        "web.toml",
        "drop_knock_range = false",
        &format!("drop_knock_range = true\npublic_ports = [{PUBLIC}]"),
    );
    // firewall-setup.sh loads setup's base (no public port, no drop): the daemon must load
    // the config's in its place.
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.lab.start_echo_server(PUBLIC);
    rig.lab.start_echo_server(PUBLIC + 1);
    rig.start_daemon();
    rig.wait_log("was made with other settings", Duration::from_secs(1));
    let visitor = rig.lab.add_client_ipv4(3);
    let server = IpAddr::V4(rig.lab.server_ip);
    // Twice the knock burst, at once.
    rig.send(v4(visitor), &[PUBLIC; 80], 0);
    let status = rig.status();
    assert!(sources(&status, "banned").is_empty(), "{status}");
    assert_eq!(counter(&status, "bans"), 0, "{status}");
    assert_eq!(counter(&status, "knocks"), 0, "{status}");
    assert!(
        rig.lab.client_can_connect_from(v4(visitor), server, PUBLIC),
        "the public port is closed to its visitor\n{}",
        rig.report()
    );
    assert!(
        !rig.lab
            .client_can_connect_from(v4(visitor), server, PUBLIC + 1),
        "a port of the knock range that is not public is open"
    );
    assert!(
        !rig.can_connect(visitor),
        "the visitor can connect to the protected port"
    );
    rig.knock_ok(server, "the legit knock failed");
    eprintln!("public port: {:.1?}", started.elapsed());
}

#[test]
fn nft_changed_limits_take_effect_when_the_daemon_restarts() {
    if !nft_lab_available(true) {
        return;
    }
    let started = Instant::now();
    let mut rig = Rig::running("nftlimits", 30, 30);
    let pid = rig.daemon_pid();
    rig.signal(pid, "TERM");
    rig.wait_exit(pid, Duration::from_secs(10));
    rig.set("burst", "7");
    // The clock is right: as the README says, removing the state file lets the restarted
    // daemon serve the current window at once (otherwise it waits up to two windows).
    std::fs::remove_file(rig.state_file()).unwrap();
    rig.start_daemon();
    rig.wait_log("was made with other settings", Duration::from_secs(1));
    let listing = stdout_of(
        &rig.lab
            .server_exec(&["nft", "list", "table", "inet", TABLE]),
    );
    assert!(
        listing.contains("limit rate over 60/minute burst 7 packets"),
        "{listing}"
    );
    let fast = rig.lab.add_client_ipv4(3);
    rig.send(v4(fast), &[1001; 20], 0);
    let status = rig.status();
    assert_eq!(
        sources(&status, "banned"),
        vec![fast.to_string()],
        "{status}"
    );
    assert!(
        counter(&status, "knocks") - counter(&status, "banned") <= 8,
        "{status}"
    );
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    eprintln!("changed limits: {:.1?}", started.elapsed());
}

#[test]
fn nft_an_iptables_accept_does_not_open_the_port() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let mut rig = Rig::setup("nftipt", 30, 30);
    let port = PROTECTED.to_string();
    let accept = [
        "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
    ];
    rig.lab.server_exec(&accept);
    rig.lab.start_echo_server(PROTECTED);
    let client = rig.lab.client_ip;
    let other = rig.lab.add_client_ipv4(3);
    assert!(
        rig.can_connect(other),
        "control: iptables alone lets everyone in"
    );
    rig.install_base();
    rig.start_daemon();
    // One more ACCEPT, first in INPUT, added while the daemon runs.
    let insert = [
        "iptables", "-w", "-I", "INPUT", "1", "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
    ];
    rig.lab.server_exec(&insert);
    let rules = rig.lab.server_rules();
    assert_eq!(
        rules
            .matches(&format!("--dport {PROTECTED} -j ACCEPT"))
            .count(),
        2,
        "{rules}"
    );
    assert!(
        !rig.can_connect(other),
        "an iptables ACCEPT opened the port to a non-knocker\n{}",
        rig.report()
    );
    assert!(!rig.can_connect(client));
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    assert!(rig.can_connect(client));
    assert!(!rig.can_connect(other), "the knock opened the port to all");
    eprintln!("iptables accept: ok in {:.1?}", started.elapsed());
}

#[test]
fn nft_flushed_ruleset_is_restored_at_the_next_window() {
    if !nft_lab_available(false) {
        return;
    }
    const PERIOD: u64 = 5;
    let started = Instant::now();
    let rig = Rig::running("nftflush", PERIOD, 30);
    let other = rig.lab.add_client_ipv4(3);
    assert!(!rig.can_connect(other));
    let last = rig.wait_rotation(0, Duration::from_secs(1));
    rig.lab.server_exec(&["nft", "flush", "ruleset"]);
    let flushed = Instant::now();
    assert!(!rig.table_exists());
    // The port is open to all until the daemon notices (measured, not a requirement).
    let open_meanwhile = rig.can_connect(other);
    rig.wait_rotation(last + 1, Duration::from_secs(PERIOD + 3));
    rig.wait_log("WAS GONE", Duration::from_secs(2));
    let repaired = flushed.elapsed();
    assert!(
        repaired <= Duration::from_secs(PERIOD) + Duration::from_millis(1500),
        "repaired only after {repaired:?}"
    );
    assert!(rig.table_exists(), "the table was not restored");
    let status = rig.status();
    assert_eq!(status["protected"], Value::Bool(true), "{status}");
    assert_eq!(status["doors"].as_array().unwrap().len(), 3, "{status}");
    assert!(
        !rig.can_connect(other),
        "the port is open to a non-knocker after the repair\n{}",
        rig.report()
    );
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    eprintln!(
        "flush: repaired {repaired:.1?} after the flush (port open to all meanwhile: \
         {open_meanwhile}); {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_killed_or_stopped_daemon_leaves_no_door_open() {
    if !nft_lab_available(true) {
        return;
    }
    const PERIOD: u64 = 5;
    let started = Instant::now();
    let mut rig = Rig::running("nftkill", PERIOD, 30);
    let (early, later, late, stale) = (
        rig.lab.add_client_ipv4(3),
        rig.lab.add_client_ipv4(4),
        rig.lab.add_client_ipv4(5),
        rig.lab.add_client_ipv4(6),
    );

    // SIGKILL: no clean-up at all. Doors of windows c-1, c, c+1 stay in the kernel.
    let pid = rig.daemon_pid();
    let c = rig.wait_rotation(0, Duration::from_secs(1));
    rig.signal(pid, "KILL");
    rig.wait_exit(pid, Duration::from_secs(5));
    // Control: a door that was in place still works within its bounds.
    rig.send(v4(early), &rig.ports(c + 1), 100);
    assert!(
        rig.can_connect(early),
        "control: the installed door of window {} did not open\n{}",
        c + 1,
        rig.report()
    );
    // Two windows later: nobody installs that door.
    let later_counter = rig.counter_at(unix_now().as_secs_f64() + 2.0 * PERIOD as f64);
    assert!(later_counter >= c + 2);
    rig.send(v4(later), &rig.ports(later_counter), 100);
    assert!(
        !rig.can_connect(later),
        "the pair of window {later_counter} opened the port after SIGKILL\n{}",
        rig.report()
    );
    // And the newest installed door expires by itself: (c+1)'s door ends at (c+3)*period.
    let expiry = ((c + 3) * PERIOD) as f64 + 0.3;
    let wait = (expiry - unix_now().as_secs_f64()).max(0.0);
    assert!(wait < (3 * PERIOD) as f64 + 1.0, "{wait}");
    std::thread::sleep(Duration::from_secs_f64(wait));
    rig.send(v4(stale), &rig.ports(c + 1), 100);
    assert!(
        !rig.can_connect(stale),
        "window {}'s door outlived its bound with the daemon dead\n{}",
        c + 1,
        rig.report()
    );

    // SIGTERM: a restarted daemon, a control knock, then a clean stop.
    rig.start_daemon();
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    let pid = rig.daemon_pid();
    rig.signal(pid, "TERM");
    rig.wait_exit(pid, Duration::from_secs(5));
    let log = rig.log_text();
    assert!(log.contains("removed 3 doors"), "{log}");
    let now = rig.counter_at(unix_now().as_secs_f64());
    rig.send(v4(late), &rig.ports(now), 100);
    assert!(
        !rig.can_connect(late),
        "the current pair opened the port after SIGTERM\n{}",
        rig.report()
    );
    let status = rig.status();
    assert!(status["doors"].as_array().unwrap().is_empty(), "{status}");
    assert_eq!(status["protected"], Value::Bool(true), "{status}");
    assert!(
        !rig.can_connect(stale),
        "the port is open to a non-knocker after SIGTERM"
    );
    eprintln!("kill/term: ok in {:.1?}", started.elapsed());
}

#[test]
fn nft_sighup_does_not_stop_the_daemon() {
    if !nft_lab_available(false) {
        return;
    }
    const PERIOD: u64 = 5;
    let started = Instant::now();
    let rig = Rig::running("nfthup", PERIOD, 30);
    let pid = rig.daemon_pid();
    let last = rig.wait_rotation(0, Duration::from_secs(1));
    rig.signal(pid, "HUP");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        Lab::process_alive(pid),
        "SIGHUP stopped the daemon: {}",
        rig.log_text()
    );
    let next = rig.wait_rotation(last + 1, Duration::from_secs(PERIOD + 3));
    assert!(Lab::process_alive(pid), "{}", rig.log_text());
    assert!(rig.log_text().contains("SIGHUP"), "{}", rig.log_text());
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    eprintln!(
        "sighup: alive, rotated {last} -> {next}; {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_knock_straddling_a_rotation_succeeds() {
    if !nft_lab_available(true) {
        return;
    }
    const PERIOD: u64 = 5;
    let started = Instant::now();
    let rig = Rig::running("nftstrad", PERIOD, 30);
    let log = rig.log.clone().unwrap();
    for (attempt, host) in [3u8, 4, 5].into_iter().enumerate() {
        let src = rig.lab.add_client_ipv4(host);
        // The window whose end is at least a second away.
        let w = rig.counter_at(unix_now().as_secs_f64() + 1.0);
        rig.wait_rotation(w, Duration::from_secs(2 * PERIOD + 2));
        let boundary = ((w + 1) * PERIOD) as f64;
        let [a, b] = rig.ports(w);
        let out = rig.syn(&[
            "straddle".into(),
            src.to_string(),
            rig.lab.server_ip.to_string(),
            format!("{:.3}", boundary - 0.1),
            a.to_string(),
            b.to_string(),
            log.to_string_lossy().into_owned(),
            format!("window {}: ", w + 1),
        ]);
        let fields: Vec<f64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
        let (t_a, t_b, rotated_before_a) = (fields[0], fields[1], fields[2] != 0.0);
        let straddled = t_a < boundary && !rotated_before_a && t_b >= boundary;
        eprintln!(
            "straddle attempt {attempt}: A at boundary{:+.3} s, B at boundary{:+.3} s, \
             straddled {straddled}",
            t_a - boundary,
            t_b - boundary
        );
        if !straddled {
            continue;
        }
        assert!(
            rig.can_connect(src),
            "the knock straddling the rotation to window {} failed\n{}",
            w + 1,
            rig.report()
        );
        let status = rig.status();
        let owner = status["doors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["window"].as_u64() == Some(w))
            .map(|d| d["owner"].clone());
        assert_eq!(owner, Some(Value::from(src.to_string())), "{status}");
        eprintln!("straddle: ok in {:.1?}", started.elapsed());
        return;
    }
    panic!("could not send a knock across a rotation in 3 attempts");
}

/// At a boundary the daemon adds the next window's door and deletes nothing (no flush, no
/// delete: such a transaction does not wait for the kernel's RCU grace period); the door that
/// ended leaves by its elements' timeouts, at its end: its pair, never knocked before, opens
/// nothing 0.3 s later, while the door still live opens.
#[test]
fn nft_a_boundary_adds_the_next_door_and_the_ended_one_shuts_at_its_end() {
    if !nft_lab_available(true) {
        return;
    }
    const PERIOD: u64 = 5;
    let mut rig = Rig::setup("nftadd", PERIOD, 30);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    let loads = rig.lab.dir.path().join("loads");
    std::fs::create_dir(&loads).unwrap();
    // Each `nft -f -` is kept in a file named by the nanosecond it started.
    let path = nft_wrapper(
        rig.lab.dir.path(),
        &format!(
            "if [ \"$*\" = \"-f -\" ]; then\n  tee \"{}/$(date +%s%N)\" | \"$NFT\" -f -\nelse\n  exec \"$NFT\" \"$@\"\nfi\n",
            loads.display()
        ),
    );
    rig.start_daemon_via(&["env", &path], 3);
    let first = rig.rotations().into_iter().max().unwrap();
    let mut last = rig.wait_rotation(first + 2, Duration::from_secs(3 * PERIOD + 2));

    // Every `nft -f -` so far: (when it started, its text).
    let loaded = || -> Vec<(f64, String)> {
        let mut all: Vec<(f64, String)> = std::fs::read_dir(&loads)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let ns: f64 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
                (ns / 1e9, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all
    };
    let reasserts = format!("flush chain inet {TABLE} input\n");
    // What replaces an element in place (see added_doors_transaction): a start or a pair.
    let replaces = [
        format!("delete element inet {TABLE} starts "),
        format!("delete element inet {TABLE} pairs "),
    ];
    let boundary_loads: Vec<String> = loaded()
        .into_iter()
        .map(|(_, text)| text)
        .filter(|text| !text.contains(&reasserts))
        .collect();
    assert!(
        !boundary_loads.is_empty(),
        "every load re-asserted the chains: no boundary load\n{}",
        rig.report()
    );
    for text in &boundary_loads {
        assert!(
            text.contains(&format!("add element inet {TABLE} pairs")),
            "a boundary load without the next door:\n{text}"
        );
        for line in text.lines() {
            assert!(
                !line.starts_with("flush")
                    && (!line.starts_with("delete")
                        || replaces.iter().any(|r| line.starts_with(r))),
                "a boundary load deletes a door: {line}\n{text}"
            );
        }
    }

    // Window `last - 1`'s door ends at (last + 1) * PERIOD, a boundary. A load that flushes
    // the doors between that end and the knock would remove it too and hide a door that
    // outlives its end: then a later window's door is tried (repairs skip a boundary when
    // the last one is recent, so one of two boundaries has none). The control knocks the
    // door of the window after; no door is knocked twice (a used door opens nothing).
    let mut client = 3;
    let mut knocked_doors = BTreeSet::new();
    for attempt in 1..=3 {
        while knocked_doors.contains(&(last - 1)) || knocked_doors.contains(&(last + 1)) {
            last += 1;
        }
        knocked_doors.extend([last - 1, last + 1]);
        let end = ((last + 1) * PERIOD) as f64;
        let wait = end + 0.3 - unix_now().as_secs_f64();
        assert!(
            wait > 0.5,
            "too late for window {}'s end: {wait:.1} s",
            last - 1
        );
        std::thread::sleep(Duration::from_secs_f64(wait));
        let (late, live) = (
            rig.lab.add_client_ipv4(client),
            rig.lab.add_client_ipv4(client + 1),
        );
        client += 2;
        rig.send(v4(late), &rig.ports(last - 1), 100);
        rig.send(v4(live), &rig.ports(last + 1), 100);
        let knocked = unix_now().as_secs_f64();
        assert!(
            rig.can_connect(live),
            "control: window {}'s door did not open\n{}",
            last + 1,
            rig.report()
        );
        let late_opened = rig.can_connect(late);
        let flushed_after_the_end = loaded()
            .iter()
            .any(|(at, text)| (end..knocked).contains(at) && text.contains("flush map"));
        if flushed_after_the_end {
            eprintln!(
                "attempt {attempt}: a flush after window {}'s end; next window",
                last - 1
            );
            last += 1;
            continue;
        }
        assert!(
            !late_opened,
            "window {}'s door opened after its end: its elements outlived it\n{}",
            last - 1,
            rig.report()
        );
        return;
    }
    panic!(
        "every boundary tried had a flush after the end\n{}",
        rig.report()
    );
}

#[test]
fn nft_ipv6_knock_opens_the_port_for_that_address() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let mut rig = Rig::setup("nftv6", 30, 30);
    let (server6, client6) = rig.lab.enable_ipv6();
    let other6 = rig.lab.add_client_ipv6(3);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.lab.start_echo_server6(PROTECTED);
    rig.start_daemon();
    let can = |from: IpAddr| {
        rig.lab
            .client_can_connect_from(from, IpAddr::V6(server6), PROTECTED)
    };
    assert!(!can(client6.into()), "the IPv6 port is open before a knock");
    rig.knock_ok(server6.into(), "IPv6 knock failed");
    assert!(can(client6.into()), "the IPv6 knocker cannot connect");
    assert!(
        !can(other6.into()),
        "another address of the /64 can connect\n{}",
        rig.report()
    );
    assert!(
        !rig.can_connect(rig.lab.client_ip),
        "the IPv6 knock opened IPv4 as well"
    );
    let status = rig.status();
    assert_eq!(
        sources(&status, "allowed"),
        vec![client6.to_string()],
        "{status}"
    );
    eprintln!("ipv6: ok in {:.1?}", started.elapsed());
}

#[test]
fn nft_an_interrupted_dry_run_changes_nothing() {
    if !nft_lab_available(false) {
        return;
    }
    let rig = Rig::running("nftdry", 30, 30);
    let before = rig.status()["doors"].as_array().unwrap().len();
    assert_eq!(before, 3, "{}", rig.report());
    // A second, dry-run daemon beside the real one, stopped the way a user stops it.
    let dry = rig
        .lab
        .server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
        .args(["server", "--config", &rig.config, "--dry-run"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    rig.signal(dry.id(), "INT");
    let out = dry.wait_with_output().unwrap();
    assert!(
        stdout_of(&out).contains("# dry run: window"),
        "{}",
        stderr_of(&out)
    );
    let after = rig.status();
    assert_eq!(
        after["doors"].as_array().unwrap().len(),
        before,
        "the dry run removed doors from the kernel: {after}\n{}",
        stderr_of(&out)
    );
    rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
}
