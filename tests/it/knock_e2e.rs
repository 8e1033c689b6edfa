//! End to end, as root: knock-totp against knockd in a two-namespace lab. The client namespace
//! runs the real binary; the server namespace runs knockd, the firewall and an echo server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};

use crate::support::lab::{iptables_door, lab_available, Lab};
use crate::support::{can_run, fdpass_ssh, have, stderr_of, stdout_of, Env, RFC_SECRET};

/// knockd's seq_timeout: a half-finished attempt lingers this long and eats the next knock.
const SEQ_TIMEOUT: u64 = 2;
/// The protected port in the lab (outside the knock range 1000..=9999).
const PROTECTED: u16 = 22;
/// A valid secret that is not the server's.
const WRONG_SECRET: &str = "LPI3UVRWMUTRNDBD";

/// Doors for the current and the next window of `secret`, so a test that crosses a window
/// boundary (or whose client waits out the window's last seconds) still finds its sequence.
fn doors(secret: &str) -> Vec<String> {
    let totp = Totp::new(
        &SecretKey::from_base32(secret).unwrap(),
        Algorithm::Sha1,
        30,
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let current = totp.window_at(now);
    vec![
        iptables_door("current", totp.ports_for(current).0, PROTECTED, SEQ_TIMEOUT),
        iptables_door(
            "next",
            totp.ports_for(current.next()).0,
            PROTECTED,
            SEQ_TIMEOUT,
        ),
    ]
}

/// A lab whose server protects port 22 (an echo server behind it) with knockd doors for
/// `RFC_SECRET`.
fn guarded_lab(tag: &str) -> Lab {
    let mut lab = Lab::new(tag);
    lab.protect_port(PROTECTED);
    lab.start_echo_server(PROTECTED);
    let conf = lab.knockd_conf(&doors(RFC_SECRET));
    lab.start_knockd(&conf);
    lab
}

#[test]
fn knock_verify_opens_the_port_and_a_wrong_secret_does_not() {
    if !lab_available() {
        return;
    }
    let lab = guarded_lab("knock");
    let env = Env::new();
    let server = lab.server_ip.to_string();
    env.add_file_host("lab", &server, RFC_SECRET);
    env.add_file_host("impostor", &server, WRONG_SECRET);

    assert!(
        !lab.client_can_connect(PROTECTED),
        "the port is open before any knock"
    );

    let out = env
        .cmd_via(&lab.client_prefix())
        .args(["knock", "impostor", "--verify", "--timeout", "1"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One line of what happened, one of what to do. This firewall rejects the closed port
    // (a reset), so the client cannot tell it from a port where nothing listens.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(
        lines[0],
        format!(
            "knock-totp: impostor: port 22 on {server} refused every connection, before and \
             after knocking: nothing listens, or a firewall rejects and no door opened"
        ),
        "{stderr}"
    );
    assert!(lines[1].starts_with("hint: "), "{stderr}");
    assert!(
        !lab.client_can_connect(PROTECTED),
        "a wrong secret opened the port\n{}",
        lab.knockd_output()
    );

    // A half-finished attempt from the wrong knocks would swallow the next first knock.
    std::thread::sleep(Duration::from_secs(SEQ_TIMEOUT + 1));

    let out = env
        .cmd_via(&lab.client_prefix())
        .args(["-vv", "knock", "lab", "--verify"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(
        out.status.success(),
        "{stderr}\nknockd:\n{}",
        lab.knockd_output()
    );
    assert!(
        stderr.contains(&format!("knocking {server} on ports")),
        "{stderr}"
    );
    // The door opened the port, not a firewall that never closed it.
    assert!(!stderr.contains("open before knocking"), "{stderr}");
    assert!(!stderr.contains(RFC_SECRET), "the secret leaked: {stderr}");
    assert!(lab.client_can_connect(PROTECTED));
    // The door opened the port for the knocking address only.
    let rules = lab.server_rules();
    assert!(
        rules.contains(&format!(
            "-A INPUT -s {}/32 -p tcp -m tcp --dport {PROTECTED} -j ACCEPT",
            lab.client_ip
        )),
        "{rules}"
    );
}

#[test]
fn proxy_relays_both_ways_through_the_opened_port() {
    if !lab_available() {
        return;
    }
    let lab = guarded_lab("proxy");
    let env = Env::new();
    env.add_file_host("lab", &lab.server_ip.to_string(), RFC_SECRET);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let server = lab.server_ip.to_string();
    let out = env
        .cmd_via(&lab.client_prefix())
        .args(["proxy", "lab", &server, "22"])
        .write_stdin(payload.clone())
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nknockd:\n{}",
        stderr_of(&out),
        lab.knockd_output()
    );
    assert_eq!(out.stdout.len(), payload.len(), "{}", stderr_of(&out));
    assert!(out.stdout == payload, "the echoed bytes differ");
}

#[test]
fn ssh_execs_ssh_whose_proxy_command_knocks_and_passes_the_connection() {
    if !lab_available() || !can_run("needs python3 for the stand-in ssh", have("python3")) {
        return;
    }
    let mut lab = guarded_lab("ssh");
    let server = lab.server_ip.to_string();
    // The profile holds a name; the ProxyCommand resolves it and knocks that IP.
    lab.client_hosts(&[("server.lab.test", &server)]);
    let env = Env::new();
    env.add_file_host_with("lab", "server.lab.test", RFC_SECRET, &["--user", "alice"]);
    let argv_file = lab.dir.path().join("ssh-argv");
    let stand_in = fdpass_ssh(lab.dir.path());

    let mut cmd = env.std_cmd_via(&lab.client_prefix());
    let child = cmd
        .args(["ssh", "lab", "--ssh-bin"])
        .arg(&stand_in)
        .args(["--", "-A", "uptime"])
        .env("KT_ARGV_FILE", &argv_file)
        .env("KT_SEND", "echoed by the server\n")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert!(
        out.status.success(),
        "{}\n{stderr}\nknockd:\n{}",
        stdout_of(&out),
        lab.knockd_output()
    );
    // The knock opened the door and the echo server answered over the passed connection.
    assert_eq!(stdout_of(&out), "echoed by the server\n", "{stderr}");
    assert!(!stderr.contains("open before knocking"), "{stderr}");
    let recorded = std::fs::read_to_string(&argv_file).unwrap();
    let lines: Vec<&str> = recorded.lines().collect();
    // `ip netns exec` and knock-totp both exec: the stand-in runs as the very process spawned.
    assert_eq!(lines[0], pid.to_string(), "ssh did not replace knock-totp");
    assert_eq!(lines[1..3], ["-o", "HostKeyAlias=lab"]);
    assert!(
        lines[4].starts_with("ProxyCommand=") && lines[4].ends_with(" -- lab"),
        "{lines:?}"
    );
    assert_eq!(
        &lines[5..],
        [
            "-o",
            "ProxyUseFdpass=yes",
            "-p",
            "22",
            "-l",
            "alice",
            "server.lab.test",
            "-A",
            "uptime"
        ]
    );
    assert!(lab.client_can_connect(PROTECTED));
}

#[test]
fn each_knock_is_a_single_syn() {
    if !lab_available() {
        return;
    }
    let lab = guarded_lab("syn");
    let env = Env::new();
    let server = lab.server_ip.to_string();
    env.add_file_host("lab", &server, RFC_SECRET);
    let out = env
        .cmd_via(&lab.client_prefix())
        .args(["-vv", "knock", "lab"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    let ports: Vec<u16> = stderr
        .split("on ports ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .map(|pair| pair.split(' ').map(|p| p.parse().unwrap()).collect())
        .unwrap_or_else(|| panic!("no ports in: {stderr}"));
    assert_eq!(ports.len(), 2, "{stderr}");
    // The kernel would retransmit an unanswered SYN after about one second (the knock ports
    // are DROPped, so nothing answers); knockd -D prints every packet its filter passes.
    std::thread::sleep(Duration::from_millis(1500));
    let log = lab.knockd_output();
    for port in &ports {
        let seen = log
            .lines()
            .filter(|l| l.contains(&format!("-> {server}:{port} ")))
            .count();
        let expected = ports.iter().filter(|p| *p == port).count();
        assert_eq!(seen, expected, "port {port}:\n{log}");
    }
    assert!(lab.client_can_connect(PROTECTED), "{log}");
}

/// SYNs to the lab server's protected port so far (an accounting rule in front of INPUT).
fn protected_syns(lab: &Lab) -> u64 {
    let out = lab.server_exec(&["iptables", "-w", "-L", "KT_COUNT", "-v", "-x", "-n"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!("dpt:{PROTECTED}")))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn verify_polls_gently_and_names_why_nothing_opened() {
    if !lab_available() {
        return;
    }
    let lab = guarded_lab("gentle");
    lab.server_exec(&["iptables", "-w", "-N", "KT_COUNT"]);
    let port = PROTECTED.to_string();
    lab.server_exec(&[
        "iptables", "-w", "-A", "KT_COUNT", "-p", "tcp", "--syn", "--dport", &port,
    ]);
    lab.server_exec(&["iptables", "-w", "-I", "INPUT", "-j", "KT_COUNT"]);
    let env = Env::new();
    env.add_file_host("impostor", &lab.server_ip.to_string(), WRONG_SECRET);
    let out = env
        .cmd_via(&lab.client_prefix())
        .args([
            "knock",
            "impostor",
            "--verify",
            "--timeout",
            "3",
            "--margin",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused every connection, before and after knocking"),
        "{stderr}"
    );
    // A handful of SYNs a second (a refusal comes back at once; hundreds were sent before).
    let syns = protected_syns(&lab);
    assert!((2..=16).contains(&syns), "{syns} SYNs in 3 s: {stderr}");

    // An address on the link that nobody has: the neighbour lookup fails; say so, and not
    // that the clock or the secret may be wrong.
    let nobody = std::net::Ipv4Addr::new(
        lab.server_ip.octets()[0],
        lab.server_ip.octets()[1],
        lab.server_ip.octets()[2],
        77,
    );
    env.add_file_host("gone", &nobody.to_string(), RFC_SECRET);
    let out = env
        .cmd_via(&lab.client_prefix())
        .args([
            "knock",
            "gone",
            "--verify",
            "--timeout",
            "5",
            "--margin",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no route to host"), "{stderr}");
    assert!(!stderr.contains("clock"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
