//! End to end, as root: what a failed (or a used-door, or a quick second) knock prints, line
//! for line, against the nftables engine in a lab (the `Rig` of nft_e2e). Each row builds
//! its own server and a client environment that keeps its knock record between its knocks;
//! the first line of stderr of the row's last knock must be exactly the expected one.
//! Every wait is bounded.

use std::net::IpAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::nft_e2e::{nft_lab_available, Rig, PROTECTED, SECRET, TABLE};
use crate::support::{can_run, stderr_of, unix_now, Env};

const WRONG_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const CLOCK_VAR: &str = "KNOCK_TOTP_TEST_CLOCK_OFFSET";

/// Sleeps until the wall clock is between `from` and `to` seconds into a window of
/// `period` (a knock then is far from both edges).
fn wait_for_offset(period: u64, from: f64, to: f64) {
    for _ in 0..(period * 20 + 20) {
        let now = unix_now().as_secs_f64();
        let into = now % period as f64;
        if into >= from && into < to {
            return;
        }
        let wait = if into < from {
            from - into
        } else {
            period as f64 - into + from
        };
        std::thread::sleep(Duration::from_secs_f64(wait.min(1.0) + 0.01));
    }
    panic!("never {from}-{to} s into a {period} s window");
}

/// `knock-totp knock --address SERVER --verify` from the client namespace with `env` (so its
/// knock record persists between calls), the secret on stdin, `extra` options and `vars`.
fn knock(rig: &Rig, env: &Env, secret: &str, extra: &[&str], vars: &[(&str, &str)]) -> Output {
    let server = rig.lab.server_ip.to_string();
    let (port, period) = (PROTECTED.to_string(), rig.period.to_string());
    let mut cmd = env.cmd_via(&rig.lab.client_prefix());
    cmd.args(["knock", "--address", &server, "--port", &port])
        .args(["--secret", "-", "--period", &period, "--verify"])
        .args(["--timeout", "1.5", "--margin", "1"])
        .args(extra)
        .write_stdin(secret)
        .timeout(Duration::from_secs(30));
    for (key, value) in vars {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn first_line(out: &Output) -> String {
    stderr_of(out).lines().next().unwrap_or_default().to_owned()
}

/// Whether the server's ban set of IPv4 /32s lists `ip` (read from the kernel).
fn banned(rig: &Rig, ip: IpAddr) -> bool {
    let out = rig
        .lab
        .server_cmd("nft")
        .args(["-j", "list", "set", "inet", TABLE, "banned_4_32"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "nft list set: {}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout).contains(&format!("\"{ip}\""))
}

/// What one row ran: its last knock's output, the line expected first, whether it must
/// succeed, and anything else it saw go wrong.
struct Ran {
    out: Output,
    expected: String,
    success: bool,
    problems: Vec<String>,
}

/// `SERVER: port 2222 on SERVER` (a knock by address is labelled with it).
fn at(rig: &Rig) -> String {
    let ip = rig.lab.server_ip;
    format!("knock-totp: {ip}: port {PROTECTED} on {ip}")
}

/// The door stays shut in two windows in a row: the clock or the secret.
fn clock_or_secret(tag: &str, secret: &str, vars: &[(&str, &str)]) -> Ran {
    let rig = Rig::running(tag, 5, 30);
    let env = Env::new();
    let mut problems = Vec::new();
    wait_for_offset(5, 1.0, 3.0);
    let first = knock(&rig, &env, secret, &[], vars);
    if first.status.success() {
        problems.push(format!("the first knock got in: {}", stderr_of(&first)));
    }
    wait_for_offset(5, 1.0, 3.0);
    let out = knock(&rig, &env, secret, &[], vars);
    Ran {
        expected: format!(
            "{} did not open in 2 windows in a row: your clock may be off, or the secret wrong",
            at(&rig)
        ),
        out,
        success: false,
        problems,
    }
}

fn clock_ahead() -> Option<Ran> {
    if !can_run(
        "the clock row needs the binary built with --features test-clock",
        cfg!(feature = "test-clock"),
    ) {
        return None;
    }
    Some(clock_or_secret("dgclock", SECRET, &[(CLOCK_VAR, "120")]))
}

fn wrong_secret() -> Option<Ran> {
    Some(clock_or_secret("dgsecret", WRONG_SECRET, &[]))
}

/// Knocks with a wrong secret until the server bans the address (a small wrong-knock budget),
/// then once with the right one.
fn banned_source() -> Option<Ran> {
    let mut rig = Rig::setup("dgban", 30, 30);
    rig.set("wrong_knock_burst", "8");
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon();
    let env = Env::new();
    let client = IpAddr::V4(rig.lab.client_ip);
    let mut problems = Vec::new();
    for attempt in 0..4 {
        let out = knock(&rig, &env, WRONG_SECRET, &[], &[]);
        if out.status.success() {
            problems.push(format!("wrong knock {attempt} got in"));
        }
    }
    if !banned(&rig, client) {
        problems.push(format!("the server did not ban {client}\n{}", rig.report()));
    }
    let out = knock(&rig, &env, SECRET, &[], &[]);
    Some(Ran {
        expected: format!(
            "{} did not open: this address may be banned after 5 failed knocks",
            at(&rig)
        ),
        out,
        success: false,
        problems,
    })
}

/// The door opens, but nothing listens on the profile's port (the service is on another).
fn wrong_port() -> Option<Ran> {
    let mut rig = Rig::setup("dgport", 30, 30);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED + 1);
    rig.start_daemon();
    let env = Env::new();
    wait_for_offset(30, 3.0, 20.0);
    let out = knock(&rig, &env, SECRET, &[], &[]);
    Some(Ran {
        expected: format!(
            "{} refused the connection: nothing listens there (wrong port in the profile?)",
            at(&rig)
        ),
        out,
        success: false,
        problems: Vec::new(),
    })
}

/// The base table closes the port, and no daemon puts doors in.
fn no_daemon() -> Option<Ran> {
    let mut rig = Rig::setup("dgnodmn", 30, 30);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    let env = Env::new();
    wait_for_offset(30, 3.0, 20.0);
    let out = knock(&rig, &env, SECRET, &[], &[]);
    Some(Ran {
        expected: format!("{} did not open after knocking: nothing answered", at(&rig)),
        out,
        success: false,
        problems: Vec::new(),
    })
}

/// Another address of the client's link knocks this window's pair first; the client gets in
/// with the next window's and says the door was used.
fn used_door() -> Option<Ran> {
    let rig = Rig::running("dgused", 30, 30);
    let other = IpAddr::V4(rig.lab.add_client_ipv4(3));
    let env = Env::new();
    wait_for_offset(30, 3.0, 15.0);
    let counter = rig.counter_at(unix_now().as_secs_f64());
    rig.send(other, &rig.ports(counter), 10);
    let out = knock(&rig, &env, SECRET, &[], &[]);
    let ip = rig.lab.server_ip;
    Some(Ran {
        expected: format!(
            "knock-totp: WARNING: {ip}: the door for this window was already used from another \
             address; the next window's let this one in"
        ),
        out,
        success: true,
        problems: Vec::new(),
    })
}

/// A knock, then a second one within open_seconds: the port is open for the first one's
/// grant, which is no reason to warn. A client without that record does warn.
fn quick_second_login() -> Option<Ran> {
    let rig = Rig::running("dgquick", 30, 30);
    let env = Env::new();
    let mut problems = Vec::new();
    let first = knock(&rig, &env, SECRET, &[], &[]);
    if !first.status.success() {
        problems.push(format!("the first knock failed: {}", stderr_of(&first)));
    }
    let out = knock(&rig, &env, SECRET, &[], &[]);
    if stderr_of(&out).lines().count() != 1 {
        problems.push(format!("more than one line: {}", stderr_of(&out)));
    }
    let fresh = knock(&rig, &Env::new(), SECRET, &[], &[]);
    let ip = rig.lab.server_ip;
    let warning =
        format!("knock-totp: port {PROTECTED} on {ip} was open before knocking: its firewall does not close it");
    if first_line(&fresh) != warning {
        problems.push(format!(
            "a client with no record did not warn: {}",
            stderr_of(&fresh)
        ));
    }
    Some(Ran {
        expected: format!("{} is open", at(&rig)),
        out,
        success: true,
        problems,
    })
}

#[test]
fn diagnosis_each_failure_says_what_happened_in_one_line() {
    if !nft_lab_available(true) {
        return;
    }
    type Row = (&'static str, fn() -> Option<Ran>);
    let rows: [Row; 7] = [
        ("clock +2 min", clock_ahead),
        ("wrong secret", wrong_secret),
        ("banned source", banned_source),
        ("wrong port", wrong_port),
        ("no daemon", no_daemon),
        ("used door", used_door),
        ("quick second login", quick_second_login),
    ];
    let mut failures = Vec::new();
    for (name, row) in rows {
        let started = std::time::Instant::now();
        let Some(ran) = row() else {
            continue;
        };
        let stderr = stderr_of(&ran.out);
        let line = first_line(&ran.out);
        eprintln!("{name}: {:.1?}: {line}", started.elapsed());
        if line != ran.expected {
            failures.push(format!(
                "{name}: first line\n  {line}\nexpected\n  {}\nstderr:\n{stderr}",
                ran.expected
            ));
        }
        if ran.out.status.success() != ran.success {
            failures.push(format!(
                "{name}: exit {:?}: {stderr}",
                ran.out.status.code()
            ));
        }
        if !ran.success && stderr.lines().count() != 2 {
            failures.push(format!("{name}: not two lines:\n{stderr}"));
        }
        failures.extend(ran.problems.iter().map(|p| format!("{name}: {p}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The address `knock-totp -vv knock` knocked last ("knocking IP on ports ...").
fn knocked_address(stderr: &str) -> Option<String> {
    stderr.lines().rev().find_map(|line| {
        let rest = line.strip_prefix("knock-totp: knocking ")?;
        Some(rest.split_once(" on ports ")?.0.to_owned())
    })
}

/// A dual-stack name: a login over one family, then the name resolves to both with the other
/// family first. The second login in the same window knocks and connects over the first one's
/// address (the other would meet a door already used by it), and gets in without the
/// next window's door.
#[test]
fn diagnosis_logins_in_a_row_keep_the_address_family_of_the_last_success() {
    if !nft_lab_available(false) {
        return;
    }
    if !can_run("needs getent (libc-bin)", crate::support::have("getent")) {
        return;
    }
    let mut rig = Rig::setup("dgdual", 30, 30);
    let (server6, _) = rig.lab.enable_ipv6();
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.lab.start_echo_server6(PROTECTED);
    rig.start_daemon();
    let server4 = rig.lab.server_ip.to_string();
    let server6 = server6.to_string();
    // Which family the resolver puts first for a name with both.
    rig.lab
        .client_hosts(&[("dual", server4.as_str()), ("dual", server6.as_str())]);
    let hosts = std::path::Path::new("/etc/netns")
        .join(&rig.lab.client_ns)
        .join("hosts");
    let both = std::fs::read_to_string(&hosts).unwrap();
    let out = rig
        .lab
        .client_cmd("getent")
        .args(["ahosts", "dual"])
        .output()
        .unwrap();
    let preferred = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        preferred == server4 || preferred == server6,
        "getent ahosts dual: {preferred:?}"
    );
    let other = if preferred == server4 {
        &server6
    } else {
        &server4
    };
    // The first login: the name resolves to the other family only.
    let only_other: String = both
        .lines()
        .filter(|l| !l.starts_with(&format!("{preferred} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&hosts, only_other).unwrap();
    let env = Env::new();
    let port = PROTECTED.to_string();
    env.add_file_host_with("dual", "dual", SECRET, &["--port", &port]);
    let login = || {
        env.cmd_via(&rig.lab.client_prefix())
            .args(["-vv", "knock", "dual", "--verify", "--timeout", "3"])
            .args(["--margin", "1"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap()
    };
    wait_for_offset(30, 3.0, 15.0);
    let first = login();
    let stderr = stderr_of(&first);
    assert!(first.status.success(), "{stderr}\n{}", rig.report());
    assert_eq!(knocked_address(&stderr).as_ref(), Some(other), "{stderr}");
    // Now both, the preferred family first: the second login keeps the first one's address.
    std::fs::write(&hosts, &both).unwrap();
    let second = login();
    let stderr = stderr_of(&second);
    assert!(second.status.success(), "{stderr}\n{}", rig.report());
    assert_eq!(knocked_address(&stderr).as_ref(), Some(other), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert!(
        stderr.contains("is open") && stderr.contains(other.as_str()),
        "{stderr}"
    );
}
