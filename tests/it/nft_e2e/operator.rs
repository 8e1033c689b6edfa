//! The operator's side, as root in the lab: `server --status` shows bans with their level
//! and time left, warns when no door covers the current moment, and `server unban` lets a
//! banned client in again at once. The client's wrong knocks are real SYNs from the lab's
//! client namespace (the SYN script); every loop is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{counter, json_of, nft_lab_available, sources, v4, Rig, NAME, PROTECTED};
use crate::support::{can_run, have, is_root, stderr_of, stdout_of, unix_now, Env, RFC_SECRET};

impl Rig {
    /// `knock-totp ARGS...` in the server namespace, with `--config` where it belongs.
    fn server_cli(&self, args: &[&str]) -> Output {
        self.lab
            .server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `server unban --config FILE ADDRESS`.
    fn unban(&self, address: &str) -> Output {
        self.server_cli(&["server", "unban", "--config", &self.config, address])
    }

    /// `server --config FILE --status` as text.
    fn status_text(&self) -> String {
        let out = self.server_cli(&["server", "--config", &self.config, "--status"]);
        assert!(out.status.success(), "--status: {}", stderr_of(&out));
        stdout_of(&out)
    }

    /// A port of the knock range that is no door's port around now: a SYN to it is a wrong
    /// knock, never the start of a stage.
    fn wrong_port(&self) -> u16 {
        let now = self.counter_at(unix_now().as_secs_f64());
        let used: Vec<u16> = (now.saturating_sub(2)..=now + 3)
            .flat_map(|c| self.ports(c))
            .collect();
        (1000..=9999)
            .find(|p| *p != PROTECTED && !used.contains(p))
            .unwrap()
    }
}

/// The banned entry of `status` for `source`.
fn banned_entry<'a>(status: &'a Value, source: &str) -> &'a Value {
    status["banned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["source"] == source)
        .unwrap_or_else(|| panic!("{source} is not banned: {status}"))
}

fn rfc3339(value: &Value) -> jiff::Timestamp {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"))
}

#[test]
fn nft_a_banned_client_is_unbanned_and_gets_in_at_once() {
    if !nft_lab_available(true) {
        return;
    }
    let rig = Rig::running("nftunban", 30, 30);
    let server = v4(rig.lab.server_ip);
    let client = rig.lab.client_ip.to_string();
    let wrong = rig.wrong_port();

    // The client knocks wrong 60 times: over the burst of 40, it is banned.
    rig.send(v4(rig.lab.client_ip), &[wrong; 60], 0);
    let status = rig.status();
    assert_eq!(sources(&status, "banned"), vec![client.clone()], "{status}");
    let ban = banned_entry(&status, &client);
    assert_eq!(ban["level"], "address", "{ban}");
    assert_eq!(ban["prefix_len"], 32, "{ban}");
    let left = ban["seconds_left"].as_u64().unwrap();
    assert!((500..=600).contains(&left), "{ban}");
    let checked = rfc3339(&status["checked_at"]);
    let expires = rfc3339(&ban["expires"]);
    let ahead = expires.as_second() - checked.as_second();
    assert!((ahead - left as i64).abs() <= 1, "{ban} at {checked}");
    let door = &status["doors"][0];
    assert_eq!(
        rfc3339(&door["valid_until_time"]).as_second(),
        door["valid_until"].as_i64().unwrap(),
        "{door}"
    );
    assert_eq!(status["current_door"], true, "{status}");
    let text = rig.status_text();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{client}:")))
        .unwrap_or_else(|| panic!("no ban line for {client}:\n{text}"));
    assert!(
        line.contains("the address itself") && line.contains(" s left, until "),
        "{line}"
    );
    assert!(!text.contains("WARNING"), "{text}");
    // Shut out: even the right code does not get the banned client in.
    let refused = rig.knock(server, &["--margin", "1"]);
    assert!(!refused.status.success(), "a banned client got in");

    let out = rig.unban(&client);
    assert!(out.status.success(), "unban: {}", stderr_of(&out));
    let printed = stdout_of(&out);
    assert!(
        printed.contains(&format!(
            "unbanned {client} (the address itself was banned, "
        )) && printed.contains(" left)"),
        "{printed}"
    );
    assert!(
        printed.contains("forgot the knocks counted against"),
        "{printed}"
    );
    assert!(sources(&rig.status(), "banned").is_empty());
    // Its debts went with the ban: a few more wrong knocks do not ban it again at once.
    rig.send(v4(rig.lab.client_ip), &[wrong; 5], 0);
    let status = rig.status();
    assert!(sources(&status, "banned").is_empty(), "{status}");
    rig.knock_ok(server, "the unbanned client did not get in");

    // Not banned: it says so, and succeeds.
    let again = rig.unban(&client);
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert!(
        stdout_of(&again).contains(&format!("{client} is not banned")),
        "{}",
        stdout_of(&again)
    );

    // A network ban: three neighbours spend the /24's budget of 80 wrong knocks, and a fourth
    // address of that /24, which never knocked wrong, is banned with them.
    let [a, b, c, _] = rig.lab.client_ip.octets();
    let network = format!("{}/24", Ipv4Addr::new(a, b, c, 0));
    for host in [3, 4, 5] {
        let neighbour = rig.lab.add_client_ipv4(host);
        rig.send(v4(neighbour), &[wrong; 40], 0);
    }
    let fourth = rig.lab.add_client_ipv4(6);
    let status = rig.status();
    let ban = banned_entry(&status, &network);
    assert_eq!(ban["level"], "network", "{ban}");
    assert_eq!(ban["prefix_len"], 24, "{ban}");
    assert!(ban["reason"].as_str().unwrap().contains("/24"), "{ban}");
    let text = rig.status_text();
    assert!(
        text.contains(&format!("  {network}: its whole /24 network, ")),
        "{text}"
    );
    // Doors are single use: the fourth knocks one nobody used yet (the client used one).
    let unused = status["doors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["owner"].is_null())
        .filter_map(|d| d["window"].as_u64())
        .max()
        .unwrap_or_else(|| panic!("every door is used: {status}"));
    rig.send(v4(fourth), &rig.ports(unused), 100);
    assert!(
        !rig.can_connect(fourth),
        "an address of a banned /24 got in"
    );
    let out = rig.unban(&fourth.to_string());
    assert!(out.status.success(), "unban: {}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!(
            "unbanned {fourth} (its /24 {network} was banned, "
        )),
        "{}",
        stdout_of(&out)
    );
    rig.send(v4(fourth), &rig.ports(unused), 100);
    assert!(
        rig.can_connect(fourth),
        "the unbanned /24's address did not get in\n{}",
        rig.report()
    );
}

#[test]
fn nft_unban_refuses_bad_addresses_in_one_line() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("nftunbad", 30, 30);
    rig.install_base();
    rig.start_daemon();
    for (bad, says) in [
        ("10.213.0.300", "is not an IPv4 or IPv6 address"),
        ("web.example.com", "is not an IPv4 or IPv6 address"),
        ("10.213.0.0/24", "is a network"),
    ] {
        let out = rig.unban(bad);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{bad}: {err}");
        assert!(lines[0].contains(says), "{bad}: {err}");
        assert!(lines[1].starts_with("hint: "), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // `--config` before `unban` works too; `--status` with it does not.
    let before = rig.server_cli(&["server", "--config", &rig.config, "unban", "10.213.0.9"]);
    assert!(before.status.success(), "{}", stderr_of(&before));
    assert!(stdout_of(&before).contains("10.213.0.9 is not banned"));
    let mixed = rig.server_cli(&[
        "server",
        "--config",
        &rig.config,
        "--status",
        "unban",
        "10.213.0.9",
    ]);
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr_of(&mixed));
}

#[test]
fn nft_status_warns_when_no_door_covers_the_current_window() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("nftbare", 30, 30);
    rig.install_base();
    // Only firewall-setup.sh's base table, no daemon.
    let text = rig.status_text();
    let warning = text
        .lines()
        .find(|l| l.starts_with("WARNING: no door for the current window"))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(warning.contains("bare base table"), "{warning}");
    assert!(warning.contains("not running"), "{warning}");
    let out = rig.server_cli(&["server", "--config", &rig.config, "--status", "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let status = json_of(&out);
    assert_eq!(status["current_door"], false, "{status}");
    assert!(
        status["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("bare base table")),
        "{status}"
    );
    assert!(stderr_of(&out).contains("WARNING"), "{}", stderr_of(&out));

    // The daemon running: no warning.
    rig.start_daemon();
    let text = rig.status_text();
    assert!(!text.contains("WARNING"), "{text}");
    assert_eq!(rig.status()["current_door"], true);

    // Stopped: its doors are gone, the warning is back.
    let pid = rig.daemon_pid();
    rig.signal(pid, "TERM");
    rig.wait_exit(pid, Duration::from_secs(10));
    let text = rig.status_text();
    assert!(
        text.contains("WARNING: no door for the current window"),
        "{text}"
    );
}

/// A sweep of the knock range from one client (the global budget lifted, the per-source
/// limits as shipped): the knocks counter counts every SYN of the range but the protected
/// port's, the ban comes at the burst, and every SYN after it is counted as dropped banned.
#[test]
fn nft_a_sweep_is_counted_and_banned_per_source() {
    if !nft_lab_available(true) {
        return;
    }
    let mut rig = Rig::setup("nftswcnt", 30, 30);
    rig.set("global_wrong_knocks_per_hour", "10000000");
    rig.set("global_wrong_knock_burst", "10000000");
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon();
    let client = rig.lab.client_ip;
    let ports: Vec<u16> = (1000..=9999).collect();
    rig.send(v4(client), &ports, 0);
    let status = rig.status();
    let knocks = counter(&status, "knocks");
    let banned = counter(&status, "banned");
    eprintln!("sweep of 9,000: counters {}", status["counters"]);
    // 9,000 SYNs, one of them to the protected port (dropped there, not a knock).
    assert_eq!(knocks, 8_999, "{status}");
    assert_eq!(counter(&status, "denied"), 1, "{status}");
    assert_eq!(counter(&status, "bans"), 1, "{status}");
    assert_eq!(status["under_attack"], false, "{status}");
    let before_ban = knocks - banned;
    assert!(
        (40..=45).contains(&before_ban),
        "banned after {before_ban} SYNs: {status}"
    );
    assert_eq!(sources(&status, "banned"), vec![client.to_string()]);
    assert_eq!(counter(&status, "opened"), 0, "{status}");
    // And the operator lets it in again.
    let out = rig.unban(&client.to_string());
    assert!(
        stdout_of(&out).contains("the address itself was banned"),
        "{}",
        stdout_of(&out)
    );
    rig.knock_ok(
        IpAddr::V4(rig.lab.server_ip),
        "the unbanned sweeper did not get in",
    );
}

/// Runs the built knock-totp as the user nobody.
fn as_nobody(args: &[&str]) -> Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_knock-totp"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The server, its status and unban, run as another user than root, say to run as root
/// (the secret is root's alone, the firewall root's to read), never to run setup.
#[test]
fn server_as_another_user_says_to_run_as_root() {
    if !can_run(
        "needs root, setpriv and nft to run the server as the user nobody",
        is_root() && have("setpriv") && have("nft"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let files = dir.path().join("setup");
    let out = Env::new()
        .cmd()
        .args(["-q", "setup", NAME, "--secret", "-", "--out"])
        .arg(&files)
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = files.join("web.toml");
    let secret = files.join("web.secret");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("/etc/knock-totp/web.secret", &secret.to_string_lossy()),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    for args in [
        vec!["server", "--config", &config],
        vec!["server", "--config", &config, "--status"],
        vec!["server", "unban", "--config", &config, "10.213.0.5"],
    ] {
        let out = as_nobody(&args);
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{args:?} succeeded as nobody: {err}");
        assert!(
            err.contains("run") && err.contains("as root"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("setup NAME"), "{args:?}: {err}");
        assert!(
            err.lines().count() <= 2 && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// knockd bans nobody: unban on a knockd server says so in one line.
#[test]
fn unban_on_a_knockd_server_says_there_is_no_ban() {
    let env = Env::new();
    let files = env.path().join("setup");
    let out = env
        .cmd()
        .args([
            "-q", "setup", NAME, "--engine", "knockd", "--secret", "-", "--out",
        ])
        .arg(&files)
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    let config = files.join("web.toml");
    let out = env
        .cmd()
        .args(["server", "unban", "--config"])
        .arg(&config)
        .arg("10.213.0.5")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("knockd bans nobody: there is no ban to lift"),
        "{err}"
    );
}
