//! The attacker with many addresses, as root in the lab: spoofed SYNs (raw frames from
//! `support/spoof.py`, sources only in 10.213.0.0/16 and fd13:213::/32) that fill the
//! meters' sets, guess from thousands of sources, try to ban the owner, and cancel knocks
//! through a public port. Every loop is bounded in SYNs and seconds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{counter, nft_lab_available, sources, v4, Rig, TABLE};
use crate::support::lab::{CLIENT_IF, SERVER_IF};
use crate::support::{nft_wrapper, python3, stderr_of, stdout_of, unix_now, wait_until};

const SPOOF_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/spoof.py");

impl Rig {
    /// Adds `key = value` to the config's `[nftables]` table.
    fn add_nft_setting(&self, key: &str, value: &str) {
        self.edit(
            "web.toml",
            "[nftables]\n",
            &format!("[nftables]\n{key} = {value}\n"),
        );
    }

    /// Lets spoofed sources in: the server's reverse-path filter would drop them before
    /// nftables sees them.
    fn accept_spoofed_sources(&self) {
        for key in ["all", "default", SERVER_IF] {
            self.lab
                .server_exec(&["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")]);
        }
    }

    fn server_mac(&self) -> String {
        let out = self
            .lab
            .server_exec(&["ip", "-j", "link", "show", SERVER_IF]);
        let links: Value = serde_json::from_slice(&out.stdout).unwrap();
        links[0]["address"].as_str().unwrap().to_owned()
    }

    fn spoof_command(&self, to: IpAddr, args: &[String]) -> std::process::Command {
        let mut cmd = self.lab.client_cmd(python3());
        cmd.arg(SPOOF_PY)
            .args([CLIENT_IF.to_owned(), self.server_mac(), to.to_string()])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the spoofer to the end; returns its summary line.
    fn spoof(&self, to: IpAddr, args: &[&str]) -> Value {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = self.spoof_command(to, &args).output().unwrap();
        assert!(
            out.status.success(),
            "spoof.py {args:?}: {}",
            stderr_of(&out)
        );
        serde_json::from_str(stdout_of(&out).trim()).unwrap()
    }

    /// Starts the spoofer in the background.
    fn spoof_in_background(&self, to: IpAddr, args: &[&str]) -> Child {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.spoof_command(to, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until the daemon put its doors back (after the test deleted the table).
    fn wait_doors(&self) {
        wait_until(
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                self.table_exists()
                    && self.status()["doors"]
                        .as_array()
                        .is_some_and(|d| d.len() == 3)
            },
            || format!("the daemon never restored its doors\n{}", self.log_text()),
        );
    }
}

/// A rig whose meters track sources one by one (the `/32` and `/64` levels only: the
/// broader levels would ban the lab's whole /16 or /48 long before the sets fill, which is
/// the stronger default), with `extra` settings, started.
fn per_source_rig(tag: &str, extra: &[(&str, &str)]) -> Rig {
    let mut rig = Rig::setup(tag, 30, 30);
    rig.edit(
        "web.toml",
        "ipv4_prefixes = [\n    32,\n    24,\n    16,\n]",
        "ipv4_prefixes = [32]",
    );
    rig.edit(
        "web.toml",
        "ipv6_prefixes = [\n    64,\n    48,\n    32,\n]",
        "ipv6_prefixes = [64]",
    );
    for (key, value) in extra {
        rig.set(key, value);
    }
    rig.install_base();
    rig.lab.start_echo_server(super::PROTECTED);
    rig.accept_spoofed_sources();
    rig.start_daemon();
    rig
}

#[test]
fn nft_full_sets_fail_closed_and_a_trusted_client_still_gets_in() {
    if !nft_lab_available(true) {
        return;
    }
    let started = Instant::now();
    // 16,384 sources per set: 65,000 spoofed IPv4 sources (all the lab's /16 holds) and
    // 70,000 IPv6 /64s overflow them four times over. The global budget is lifted out of
    // reach: the full sets alone must hold.
    let rig = per_source_rig(
        "nftfill",
        &[
            ("tracked_sources", "16384"),
            ("global_wrong_knocks_per_hour", "10000000"),
            ("global_wrong_knock_burst", "10000000"),
        ],
    );
    let (server6, _) = rig.lab.enable_ipv6();
    let server = v4(rig.lab.server_ip);
    let client = rig.lab.client_ip;
    // The owner knocked before the attack: trusted.
    rig.knock_ok(server, "the first knock failed");
    let before = rig.status();
    assert_eq!(
        sources(&before, "trusted"),
        vec![client.to_string()],
        "{before}"
    );
    assert_eq!(before["under_attack"], false, "{before}");

    let fill6 = rig.spoof(
        IpAddr::V6(server6),
        &["fill", "fd13:213:4000::/34", "64", "70000"],
    );
    let fill4 = rig.spoof(server, &["fill", "10.213.0.0/16", "0", "65000"]);
    let filled = rig.status();
    assert_eq!(filled["under_attack"], true, "{filled}");
    assert!(counter(&filled, "untracked") > 0, "{filled}");
    let opened_before = counter(&filled, "opened");

    // A fresh source brute-forces every code for 60 s, then a fresh /64 for 10 s.
    let fresh4 = rig.lab.add_client_ipv4(77);
    let brute4 = rig.spoof(
        server,
        &["guess", &fresh4.to_string(), "50000000", "--seconds", "60"],
    );
    let fresh6 = Ipv6Addr::new(0xfd13, 0x213, 0x7777, 0, 0, 0, 0, 1);
    let brute6 = rig.spoof(
        IpAddr::V6(server6),
        &["guess", &fresh6.to_string(), "50000000", "--seconds", "10"],
    );
    let after = rig.status();
    let opened = counter(&after, "opened") - opened_before;
    eprintln!(
        "fill: {fill6} /64s, {fill4} IPv4 sources, then brute force {brute4} (IPv4) and \
         {brute6} (IPv6): {opened} doors opened; counters {}; {:.1?}",
        after["counters"],
        started.elapsed()
    );
    assert_eq!(opened, 0, "a door opened for the brute force: {after}");
    assert!(sources(&after, "allowed")
        .iter()
        .all(|s| *s == client.to_string()));
    assert_eq!(after["under_attack"], true, "{after}");
    assert!(brute4["sent"].as_u64().unwrap() > 100_000, "{brute4}");
    // The trusted owner still gets in, and the attack is in the log.
    rig.knock_ok(server, "the trusted client was shut out");
    assert!(
        rig.log_text().contains("UNDER ATTACK"),
        "{}",
        rig.log_text()
    );
    let text = stdout_of(
        &rig.lab
            .server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
            .args(["server", "--config", &rig.config, "--status"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("UNDER ATTACK"), "{text}");
}

/// One trial of the distributed guess: `count` sources (IPv6 /64s) try `per` pairs each,
/// the real pair of the current window at a random position among them. Returns (doors
/// opened, the SYN index of the real pair, the SYNs that reached the doors before the global
/// budget tripped).
fn distributed_trial(rig: &Rig, server6: Ipv6Addr, count: u64, per: u64) -> (u64, u64, u64) {
    // A fresh table, counters and budget: the daemon restores it within seconds.
    rig.lab
        .server_exec(&["nft", "delete", "table", "inet", TABLE]);
    rig.wait_doors();
    let window = rig.counter_at(unix_now().as_secs_f64());
    let [a, b] = rig.ports(window);
    let position = rand_below(count * per);
    let out = rig.spoof(
        IpAddr::V6(server6),
        &[
            "pairs",
            "fd13:213:8000::/33",
            "64",
            &count.to_string(),
            &per.to_string(),
            &a.to_string(),
            &b.to_string(),
            &position.to_string(),
            "--seconds",
            "60",
        ],
    );
    assert_eq!(out["sent"].as_u64(), Some(2 * count * per), "{out}");
    let status = rig.status();
    let dropped = ["attacked", "banned", "untracked"]
        .iter()
        .map(|c| counter(&status, c))
        .sum::<u64>();
    let reached = counter(&status, "knocks") - dropped;
    let real_at = out["real_at"].as_u64().unwrap();
    (counter(&status, "opened"), real_at, reached)
}

/// A random number below `n` (no dependency for one draw).
fn rand_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed =
        u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    mixed % n
}

#[test]
fn nft_a_distributed_guess_trips_the_global_budget() {
    if !nft_lab_available(true) {
        return;
    }
    const TRIALS: usize = 20;
    let started = Instant::now();
    let rig = per_source_rig("nftdist", &[]);
    let (server6, _) = rig.lab.enable_ipv6();
    // 4,096 sources try 20 pairs each (40 SYNs: each stays within its own burst); 65,536
    // sources try 2 pairs each.
    for (count, per) in [(4_096u64, 20u64), (65_536, 2)] {
        let mut opens = 0;
        let mut reached_all = Vec::new();
        for trial in 0..TRIALS {
            let (opened, real_at, reached) = distributed_trial(&rig, server6, count, per);
            reached_all.push(reached);
            // The budget is 480 wrong knocks: a little more reaches the doors (SYNs that
            // started a stage are not wrong ones).
            assert!(
                (480..=560).contains(&reached),
                "{count} sources, trial {trial}: {reached} SYNs reached the doors"
            );
            // A real pair sent before the budget tripped opens (the trial can see an open);
            // after it, nothing opens.
            if real_at + 1 < reached.saturating_sub(40) {
                assert_eq!(
                    opened, 1,
                    "trial {trial}: the real pair at SYN {real_at} did not open"
                );
            } else if real_at > reached {
                assert_eq!(opened, 0, "trial {trial}: the real pair at SYN {real_at} opened after the budget tripped at {reached}");
            }
            opens += opened;
        }
        reached_all.sort_unstable();
        eprintln!(
            "distributed guess, {count} sources x {per} pairs, {TRIALS} trials: {opens} opens; \
             the global budget tripped after {}..{} SYNs (median {}) of {} each; {:.1?}",
            reached_all[0],
            reached_all[TRIALS - 1],
            reached_all[TRIALS / 2],
            2 * count * per,
            started.elapsed()
        );
        assert!(opens <= 2, "{opens} opens in {TRIALS} trials");
    }
}

#[test]
fn nft_spoofed_syns_from_a_trusted_address_never_ban_it() {
    if !nft_lab_available(true) {
        return;
    }
    let mut rig = Rig::setup("nftspban", 30, 30);
    let client = rig.lab.client_ip;
    let [a, b, c, _] = client.octets();
    let listed = Ipv4Addr::new(a, b, c, 9);
    rig.add_nft_setting("never_ban", &format!("[\"{listed}/32\"]"));
    rig.install_base();
    rig.lab.start_echo_server(super::PROTECTED);
    rig.accept_spoofed_sources();
    rig.start_daemon();
    let server = v4(rig.lab.server_ip);
    rig.knock_ok(server, "the first knock failed");
    let sent = rig.spoof(server, &["from", &client.to_string(), "0", "1000"]);
    let status = rig.status();
    eprintln!("spoofed ban: {sent}; counters {}", status["counters"]);
    assert!(sources(&status, "banned").is_empty(), "{status}");
    assert_eq!(counter(&status, "bans"), 0, "{status}");
    // Trusted sources are rate limited, never banned: the bucket refills in seconds.
    std::thread::sleep(Duration::from_secs(3));
    rig.knock_ok(server, "the trusted client was locked out");
    // An untrusted owner who is on the never_ban list is never banned either.
    rig.spoof(server, &["from", &listed.to_string(), "0", "1000"]);
    let status = rig.status();
    assert!(sources(&status, "banned").is_empty(), "{status}");
}

#[test]
fn nft_a_spoofed_flood_to_a_public_port_cancels_no_knock() {
    if !nft_lab_available(true) {
        return;
    }
    const KNOCKS: usize = 6;
    let mut rig = Rig::setup("nftpubfl", 30, 1);
    rig.add_nft_setting("public_ports", "[8080]");
    rig.install_base();
    rig.lab.start_echo_server(super::PROTECTED);
    rig.accept_spoofed_sources();
    rig.start_daemon();
    let server = v4(rig.lab.server_ip);
    let client = rig.lab.client_ip.to_string();
    let mut flood = rig.spoof_in_background(
        server,
        &[
            "from",
            &client,
            "8080",
            "6000",
            "--rate",
            "100",
            "--seconds",
            "60",
        ],
    );
    let mut got_in = 0;
    for _ in 0..KNOCKS {
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || !sources(&rig.status(), "allowed").contains(&client),
            || "the grant never expired".to_owned(),
        );
        if rig.knock(server, &["--margin", "1"]).status.success() {
            got_in += 1;
        }
    }
    let _ = flood.kill();
    let _ = flood.wait();
    let status = rig.status();
    eprintln!(
        "public port flood: client in {got_in} of {KNOCKS}; counters {}",
        status["counters"]
    );
    assert_eq!(got_in, KNOCKS, "{}", rig.report());
    assert_eq!(counter(&status, "cancelled"), 0, "{status}");
}

/// What an attacker can grow (the meter sets) must cost the daemon nothing: with rate4 and
/// wrong_4_32 full, every `nft` the daemon runs over a few rotations and repair checks is a
/// load or a read of its small `state`/`attack` sets, never the table or a meter set.
#[test]
fn nft_the_daemon_never_reads_the_meter_sets() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("nftreads", 5, 30);
    rig.install_base();
    let calls = rig.lab.dir.path().join("nft-calls.log");
    let path = nft_wrapper(
        rig.lab.dir.path(),
        &format!(
            "echo \"$*\" >> '{}'\nexec \"$NFT\" \"$@\"\n",
            calls.display()
        ),
    );
    // The metrics read the named counters at every repair check: cheap whatever the sets hold.
    let metrics = rig.lab.dir.path().join("knock-totp.prom");
    rig.with_daemon_args(&["--metrics-file", &metrics.to_string_lossy()]);
    rig.start_daemon_via(&["env", &path], 3);

    let full = 65_536;
    let mut fill = String::new();
    for set in ["rate4", "wrong_4_32"] {
        for chunk in (0..full).collect::<Vec<u32>>().chunks(8192) {
            let elements: Vec<String> = chunk
                .iter()
                .map(|i| format!("{} timeout 1h", Ipv4Addr::from(0x0ad5_0000 + i)))
                .collect();
            fill.push_str(&format!(
                "add element inet {TABLE} {set} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
    let script = rig.lab.dir.path().join("fill.nft");
    std::fs::write(&script, fill).unwrap();
    rig.lab
        .server_exec(&["nft", "-f", &script.to_string_lossy()]);
    let before = std::fs::read_to_string(&calls).unwrap().lines().count();
    let first = rig.rotations().into_iter().max().unwrap();
    rig.wait_rotation(first + 2, Duration::from_secs(20));

    let listed = rig
        .lab
        .server_exec(&["nft", "-j", "list", "set", "inet", TABLE, "rate4"]);
    let elements = serde_json::from_slice::<Value>(&listed.stdout).unwrap()["nftables"][1]["set"]
        ["elem"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(elements, full as usize, "rate4 is not full");
    let log = std::fs::read_to_string(&calls).unwrap();
    let after: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        after.iter().filter(|c| c.starts_with("-f")).count() >= 2,
        "no rotation went through nft: {after:?}"
    );
    assert!(
        after.iter().any(|c| c.contains(" list set ")),
        "no repair check read the state set: {after:?}"
    );
    let counters = format!("-j list counters table inet {TABLE}");
    assert!(
        after.iter().any(|c| *c == counters),
        "no repair check read the counters for the metrics: {after:?}"
    );
    assert!(metrics.is_file(), "no metrics file");
    let cheap = |call: &&str| {
        *call == "-f -"
            || *call == counters
            || ["state", "attack"]
                .iter()
                .any(|set| *call == format!("-j list set inet {TABLE} {set}"))
    };
    let costly: Vec<&&str> = after.iter().filter(|c| !cheap(c)).collect();
    assert!(
        costly.is_empty(),
        "the daemon read more than it needs: {costly:?}"
    );
}
