//! End to end, as root: an administrator runs `setup`, puts its files in place in the lab's
//! server namespace (firewall script, knockd.conf), and a client enrolled with the URI read
//! back from the QR code opens the door.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::lab::{lab_available, Lab, SERVER_IF};
use crate::support::{can_run, have, stderr_of, stdout_of, Env};

const PROTECTED: u16 = 22;

fn seconds_left_in_window() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    30 - now % 30
}

#[test]
fn setup_files_and_the_scanned_uri_open_the_door() {
    if !lab_available()
        || !can_run(
            "zbarimg is not installed (apt-get install zbar-tools)",
            have("zbarimg"),
        )
    {
        return;
    }
    let mut lab = Lab::new("setup");
    let admin = Env::new();
    let png = admin.path().join("web.png");

    // setup's knockd.conf holds the current window's door only (the daemon adds the
    // neighbours), so start early in a window.
    if seconds_left_in_window() < 12 {
        std::thread::sleep(Duration::from_secs(seconds_left_in_window() + 1));
    }
    let server_ip = lab.server_ip.to_string();
    let png_arg = png.to_string_lossy().into_owned();
    let out_dir = knockd_setup(
        &lab,
        &admin,
        &["--open-seconds", "20", "--qr-png", &png_arg],
    );

    // The phone's view: the QR code decodes to the URI setup printed.
    let scan = std::process::Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&png)
        .output()
        .unwrap();
    let uri = stdout_of(&scan).trim().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/knock-totp:web?secret="),
        "{uri}"
    );
    assert_eq!(
        fs::read_to_string(out_dir.join("web.otpauth")).unwrap(),
        format!("{uri}\n")
    );

    // The administrator puts the files in place on the server.
    run_firewall_script(&lab, &out_dir);
    lab.start_echo_server(PROTECTED);
    let conf = fs::read_to_string(out_dir.join("knockd.conf")).unwrap();
    assert!(!conf.contains(" -F") && !conf.contains("flush"), "{conf}");
    lab.start_knockd(&conf);
    assert!(
        !lab.client_can_connect(PROTECTED),
        "the port is open before any knock"
    );

    // The user enrolls with the scanned URI and knocks from the client namespace.
    let user = Env::new();
    user.add_uri_host("web", &server_ip, &uri);
    let out = user
        .cmd_via(&lab.client_prefix())
        .args([
            "-v",
            "knock",
            "web",
            "--verify",
            "--timeout",
            "5",
            "--margin",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nknockd:\n{}",
        stderr_of(&out),
        lab.knockd_output()
    );
    assert!(lab.client_can_connect(PROTECTED));
    let members = ipset_members(&lab, "knock-totp-web-v4");
    assert_eq!(
        members,
        [lab.client_ip.to_string()],
        "the door opened the port for the knocker only"
    );
}

/// The addresses in ipset `set` of the lab's server namespace.
fn ipset_members(lab: &Lab, set: &str) -> Vec<String> {
    let out = lab.server_exec(&["ipset", "list", set]);
    stdout_of(&out)
        .split_once("Members:\n")
        .map(|(_, members)| members)
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Waits until at least `needed` seconds are left in the current 30 s window (setup's
/// knockd.conf holds the current window's door only; the daemon adds the neighbours).
fn wait_for_window_with(needed: u64) {
    if seconds_left_in_window() < needed {
        std::thread::sleep(Duration::from_secs(seconds_left_in_window() + 1));
    }
}

/// Runs `setup web --engine knockd` with `extra` options for the lab's server (interface vS);
/// returns the directory of its files.
fn knockd_setup(lab: &Lab, admin: &Env, extra: &[&str]) -> std::path::PathBuf {
    let out_dir = admin.path().join("web-setup");
    let server_ip = lab.server_ip.to_string();
    let out = admin
        .cmd()
        .args([
            "setup",
            "web",
            "--engine",
            "knockd",
            "--address",
            &server_ip,
        ])
        .args(["--interface", SERVER_IF, "--out"])
        .arg(&out_dir)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    out_dir
}

/// Runs setup's firewall-setup.sh in the server namespace; returns its stdout.
fn run_firewall_script(lab: &Lab, out_dir: &std::path::Path) -> String {
    let out = lab
        .server_cmd("sh")
        .arg(out_dir.join("firewall-setup.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "firewall-setup.sh failed: {}",
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// `knock-totp knock web --verify` from the client namespace, enrolled with the secret setup
/// wrote to `out_dir`.
fn knock_verify(lab: &Lab, out_dir: &std::path::Path) -> std::process::Output {
    let secret = std::fs::read_to_string(out_dir.join("web.secret")).unwrap();
    let user = Env::new();
    user.add_file_host("web", &lab.server_ip.to_string(), secret.trim());
    user.cmd_via(&lab.client_prefix())
        .args([
            "knock",
            "web",
            "--verify",
            "--timeout",
            "5",
            "--margin",
            "0",
        ])
        .output()
        .unwrap()
}

/// SIGKILLs every knockd in the server namespace: the daemon and its children (the sleeping
/// ones that would run a door's stop command), as `KillMode=mixed` does on a restart.
fn kill_knockd_and_children(lab: &Lab) {
    let pids = lab.server_pids("knockd");
    assert!(!pids.is_empty(), "no knockd to kill");
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    crate::support::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || lab.server_pids("knockd").is_empty(),
        || "knockd survived SIGKILL".into(),
    );
}

const OPEN_SECONDS: u64 = 4;

/// Issue 13 item 1 and issue 12 item 9, iptables: an ACCEPT for the port that was there before
/// (`ufw allow OpenSSH`) does not keep it open, rerunning the script changes nothing, a knock
/// opens the port, and the grant times out by itself after knockd and its children are killed
/// (it used to be an iptables rule that only a stop command deleted: a killed child left it
/// open forever).
#[test]
fn iptables_script_closes_a_port_an_earlier_rule_accepts_and_grants_expire_without_knockd() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("iptset");
    lab.server_exec(&[
        "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
    ]);
    lab.start_echo_server(PROTECTED);
    assert!(
        lab.client_can_connect(PROTECTED),
        "the lab's ACCEPT is not in effect"
    );
    let admin = Env::new();
    wait_for_window_with(15);
    let open = OPEN_SECONDS.to_string();
    let out_dir = knockd_setup(
        &lab,
        &admin,
        &["--firewall", "iptables", "--open-seconds", &open],
    );
    run_firewall_script(&lab, &out_dir);
    let rules = |lab: &Lab| {
        format!(
            "{}{}{}",
            lab.server_rules(),
            stdout_of(&lab.server_exec(&["ip6tables", "-w", "-S"])),
            stdout_of(&lab.server_exec(&["ipset", "list", "-n"]))
        )
    };
    let first = rules(&lab);
    run_firewall_script(&lab, &out_dir);
    assert_eq!(rules(&lab), first, "rerunning the script changed the rules");
    assert!(
        !lab.client_can_connect(PROTECTED),
        "the earlier ACCEPT still opens the port to a client that did not knock:\n{first}"
    );

    lab.start_knockd(&std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap());
    let out = knock_verify(&lab, &out_dir);
    assert!(
        out.status.success(),
        "{}\nknockd:\n{}",
        stderr_of(&out),
        lab.knockd_output()
    );
    let opened = std::time::Instant::now();
    assert_eq!(
        ipset_members(&lab, "knock-totp-web-v4"),
        [lab.client_ip.to_string()]
    );
    kill_knockd_and_children(&lab);
    assert!(
        lab.client_can_connect(PROTECTED),
        "the grant ended with knockd"
    );
    // The element's timeout runs in the kernel: the port closes on time without knockd.
    crate::support::wait_until(
        Duration::from_secs(OPEN_SECONDS + 3),
        Duration::from_millis(200),
        || !lab.client_can_connect(PROTECTED),
        || format!("the grant outlived knockd:\n{}", rules(&lab)),
    );
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_secs(OPEN_SECONDS - 1),
        "closed after {closed:?}, before open_seconds"
    );

    // A reboot empties iptables and the ipsets, and the distro's ACCEPT comes back: the port
    // is open to everyone until the base unit runs the script again, before sshd.
    for bin in ["iptables", "ip6tables"] {
        lab.server_exec(&[bin, "-w", "-F"]);
        lab.server_exec(&[bin, "-w", "-X"]);
    }
    lab.server_exec(&["ipset", "destroy"]);
    lab.server_exec(&[
        "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
    ]);
    assert!(
        lab.client_can_connect(PROTECTED),
        "the reboot left rules behind"
    );
    let unit = std::fs::read_to_string(out_dir.join("knock-totp-web-base.service")).unwrap();
    let command = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the base unit's ExecStart")
        .replace(
            "/etc/knock-totp/web-firewall.sh",
            out_dir.join("firewall-setup.sh").to_str().unwrap(),
        );
    let argv: Vec<&str> = command.split_whitespace().collect();
    let out = lab.server_exec(&argv);
    assert!(out.status.success(), "{command}: {}", stderr_of(&out));
    assert!(
        !lab.client_can_connect(PROTECTED),
        "after the base unit ran at boot, a client that did not knock still connects"
    );
}

/// Issue 12 item 9, nftables firewall: the same for a grant in knock-totp's nft set.
#[test]
fn nftables_grants_expire_without_knockd() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("nftset");
    lab.start_echo_server(PROTECTED);
    let admin = Env::new();
    wait_for_window_with(15);
    let open = OPEN_SECONDS.to_string();
    let out_dir = knockd_setup(
        &lab,
        &admin,
        &["--firewall", "nftables", "--open-seconds", &open],
    );
    run_firewall_script(&lab, &out_dir);
    assert!(!lab.client_can_connect(PROTECTED), "open before any knock");
    lab.start_knockd(&std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap());
    let out = knock_verify(&lab, &out_dir);
    assert!(
        out.status.success(),
        "{}\nknockd:\n{}",
        stderr_of(&out),
        lab.knockd_output()
    );
    kill_knockd_and_children(&lab);
    assert!(
        lab.client_can_connect(PROTECTED),
        "the grant ended with knockd"
    );
    crate::support::wait_until(
        Duration::from_secs(OPEN_SECONDS + 3),
        Duration::from_millis(200),
        || !lab.client_can_connect(PROTECTED),
        || "the grant outlived knockd".into(),
    );
}
