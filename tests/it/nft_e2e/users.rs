//! A server with users, as root in the lab: each user's doors open with their own secret
//! only, for one address each (single use), the server's own secret opens nothing; a user
//! removed, disabled or expired loses their doors and live grants (SIGHUP, or the expiry
//! check), but an address another user's live grant holds stays in; `--status` and the log
//! name the user and never the ports; a user added on SIGHUP gets in at once; a knockd
//! server with users refuses to start.
//! Knocks are raw SYNs from chosen source addresses (the SYN script); every wait is bounded.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};
use knock_totp::core::window::Window;
use serde_json::Value;

use super::{nft_lab_available, sources, v4, Rig, NAME, PROTECTED};
use crate::support::{stderr_of, unix_now, wait_until, Env, RFC_SECRET};

const ALICE: &str = "JBSWY3DPEHPK3PXP";
const BOB: &str = "KRSXG5CTMVRXEZLU";
/// The users share the server's period: short, so that windows go by within a test.
const PERIOD: u64 = 5;
/// Long enough that no grant ends by itself within a test.
const OPEN: u64 = 30;

/// A user of the rig: their name and their secret's codes.
struct User {
    name: &'static str,
    totp: Totp,
}

impl User {
    fn new(name: &'static str, secret: &str) -> Self {
        Self {
            name,
            totp: Totp::new(
                &SecretKey::from_base32(secret).unwrap(),
                Algorithm::Sha1,
                PERIOD,
            )
            .unwrap(),
        }
    }

    fn alice() -> Self {
        Self::new("alice", ALICE)
    }

    fn bob() -> Self {
        Self::new("bob", BOB)
    }

    fn ports(&self, counter: u64) -> [u16; 2] {
        ports_of(&self.totp, counter)
    }
}

fn ports_of(totp: &Totp, counter: u64) -> [u16; 2] {
    totp.ports_for(Window {
        counter,
        period: PERIOD,
    })
    .0
}

/// A window whose door is live now (the current one first, then the next, then the
/// previous), not in `used`, whose pair gets a door (not weak, not the protected port).
fn live_window(totp: &Totp, used: &[u64]) -> u64 {
    let now = totp.window_at(unix_now().as_secs()).counter;
    [now, now + 1, now - 1]
        .into_iter()
        .filter(|c| !used.contains(c))
        .find(|&c| {
            let [a, b] = ports_of(totp, c);
            a.abs_diff(b) > 1 && a != PROTECTED && b != PROTECTED
        })
        .unwrap_or_else(|| panic!("no live window left for this secret (used {used:?})"))
}

impl Rig {
    /// The server's users directory (`web.d` beside web.toml).
    fn users_dir(&self) -> PathBuf {
        self.files.join(format!("{NAME}.d"))
    }

    /// `setup web --user NAME --secret - --out DIR` with `extra`, the user's secret on stdin.
    fn add_user(&self, name: &str, secret: &str, extra: &[&str]) {
        let out = Env::new()
            .cmd()
            .args(["-q", "setup", NAME, "--user", name, "--secret", "-"])
            .args(extra)
            .arg("--out")
            .arg(&self.files)
            .write_stdin(secret)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup --user {name}: {}",
            stderr_of(&out)
        );
        let secret_file = self.users_dir().join(format!("{name}.secret"));
        assert_eq!(
            std::fs::metadata(&secret_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    /// Removes a user's settings and secret.
    fn remove_user(&self, name: &str) {
        for ext in ["toml", "secret"] {
            std::fs::remove_file(self.users_dir().join(format!("{name}.{ext}"))).unwrap();
        }
    }

    /// `enabled = false` in the user's settings.
    fn disable_user(&self, name: &str) {
        let path = self.users_dir().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("enabled = true"), "{text}");
        std::fs::write(&path, text.replace("enabled = true", "enabled = false")).unwrap();
    }

    /// SIGHUP to the daemon; returns once it logged one more "SIGHUP: " line (within 2 s).
    fn hangup(&self) -> Instant {
        let before = self.log_text().matches("SIGHUP: ").count();
        let pid = self.daemon_pid();
        let sent = Instant::now();
        self.signal(pid, "HUP");
        wait_until(
            Duration::from_secs(2),
            Duration::from_millis(10),
            || self.log_text().matches("SIGHUP: ").count() > before,
            || format!("no SIGHUP line within 2 s; log:\n{}", self.log_text()),
        );
        sent
    }

    /// `server --status --json` away from a window boundary (at least 0.7 s into a window,
    /// the daemon's rotation done), where every door around now is live.
    fn steady_status(&self) -> Value {
        let phase = unix_now().as_secs_f64() % PERIOD as f64;
        let wait = if phase < 0.7 {
            0.7 - phase
        } else if phase > PERIOD as f64 - 0.5 {
            PERIOD as f64 - phase + 0.7
        } else {
            0.0
        };
        std::thread::sleep(Duration::from_secs_f64(wait));
        self.status()
    }

    /// `user` knocks the pair of window `counter` from `from`.
    fn knock_as(&self, user: &User, from: Ipv4Addr, counter: u64) {
        self.send(v4(from), &user.ports(counter), 100);
    }
}

/// A server of period 5 s and grants of 30 s, with `users` (name, secret, setup options),
/// running in a lab; its first window has `doors` doors.
fn users_running(tag: &str, users: &[(&str, &str, &[&str])], doors: usize) -> Rig {
    let mut rig = Rig::setup(tag, PERIOD, OPEN);
    for (name, secret, extra) in users {
        rig.add_user(name, secret, extra);
    }
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon_expecting(doors);
    rig
}

fn both(tag: &str) -> Rig {
    users_running(tag, &[("alice", ALICE, &[]), ("bob", BOB, &[])], 6)
}

/// The entry of `status["users"]` for `name`, if listed.
fn user_entry<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {status}"))
        .iter()
        .find(|u| u["name"] == name)
}

/// How many doors of `status` are `name`'s (`None`: doors of no user).
fn doors_of(status: &Value, name: Option<&str>) -> usize {
    status["doors"]
        .as_array()
        .unwrap_or_else(|| panic!("no doors in {status}"))
        .iter()
        .filter(|d| d["user"].as_str() == name)
        .count()
}

fn grants_of(status: &Value, name: &str) -> Vec<String> {
    let user = user_entry(status, name).unwrap_or_else(|| panic!("no user {name} in {status}"));
    sources(user, "grants")
}

#[test]
fn nft_users_each_get_in_with_their_own_pair_only() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let rig = both("nftusers");
    let (alice, bob) = (User::alice(), User::bob());
    let (alice_at, bob_at, stranger) = (
        rig.lab.add_client_ipv4(3),
        rig.lab.add_client_ipv4(4),
        rig.lab.add_client_ipv4(5),
    );
    let status = rig.steady_status();
    assert_eq!(doors_of(&status, Some("alice")), 3, "{status}");
    assert_eq!(doors_of(&status, Some("bob")), 3, "{status}");
    assert_eq!(
        doors_of(&status, None),
        0,
        "the server's secret has doors: {status}"
    );
    for from in [alice_at, bob_at, stranger] {
        assert!(!rig.can_connect(from), "{from} connects before any knock");
    }

    // The server's own secret: every pair of the windows around now, from a stranger.
    let now = rig.counter_at(unix_now().as_secs_f64());
    for counter in [now - 1, now, now + 1] {
        rig.send(v4(stranger), &rig.ports(counter), 100);
    }
    assert!(
        !rig.can_connect(stranger),
        "the server's own secret opened the port\n{}",
        rig.report()
    );

    // Alice with her own pair, from her address: in, and only her.
    let w = live_window(&alice.totp, &[]);
    rig.knock_as(&alice, alice_at, w);
    assert!(
        rig.can_connect(alice_at),
        "alice's pair of window {w} did not let her in\n{}",
        rig.report()
    );
    assert!(
        !rig.can_connect(bob_at),
        "alice's knock let bob's address in"
    );
    assert!(
        !rig.can_connect(stranger),
        "alice's knock let a stranger in"
    );

    // Bob replays alice's pair from his address: that door is alice's, used already.
    rig.knock_as(&alice, bob_at, w);
    assert!(
        !rig.can_connect(bob_at),
        "bob got in with alice's used pair of window {w}\n{}",
        rig.report()
    );
    // Bob with his own pair: in.
    let v = live_window(&bob.totp, &[]);
    rig.knock_as(&bob, bob_at, v);
    assert!(
        rig.can_connect(bob_at),
        "bob's pair of window {v} did not let him in\n{}",
        rig.report()
    );
    assert!(rig.can_connect(alice_at), "alice lost her grant");
    assert!(!rig.can_connect(stranger), "a stranger can connect");

    let status = rig.status();
    assert_eq!(
        grants_of(&status, "alice"),
        vec![alice_at.to_string()],
        "{status}"
    );
    assert_eq!(
        grants_of(&status, "bob"),
        vec![bob_at.to_string()],
        "{status}"
    );
    let mut allowed = sources(&status, "allowed");
    allowed.sort();
    let mut expected = vec![alice_at.to_string(), bob_at.to_string()];
    expected.sort();
    assert_eq!(allowed, expected, "{status}");
    eprintln!(
        "users: each their own pair, ok in {:.1?}",
        started.elapsed()
    );
}

/// Alice and bob in, then `change` (to `gone`'s files) and SIGHUP: within a second `gone`'s
/// grant is gone and the other's stays; `gone`'s next knock opens nothing; the log says so.
fn revoked_on_sighup(tag: &str, gone: &str, change: fn(&Rig, &str)) {
    let started = Instant::now();
    let rig = both(tag);
    let (alice, bob) = (User::alice(), User::bob());
    let (alice_at, bob_at) = (rig.lab.add_client_ipv4(3), rig.lab.add_client_ipv4(4));
    let wa = live_window(&alice.totp, &[]);
    rig.knock_as(&alice, alice_at, wa);
    let wb = live_window(&bob.totp, &[]);
    rig.knock_as(&bob, bob_at, wb);
    assert!(
        rig.can_connect(alice_at),
        "alice did not get in\n{}",
        rig.report()
    );
    assert!(
        rig.can_connect(bob_at),
        "bob did not get in\n{}",
        rig.report()
    );
    let (gone_user, gone_at, gone_used, kept, kept_at) = if gone == "alice" {
        (&alice, alice_at, wa, "bob", bob_at)
    } else {
        (&bob, bob_at, wb, "alice", alice_at)
    };

    change(&rig, gone);
    let sent = rig.hangup();
    wait_until(
        Duration::from_secs(1),
        Duration::from_millis(20),
        || !sources(&rig.status(), "allowed").contains(&gone_at.to_string()),
        || {
            format!(
                "{gone}'s address {gone_at} is still allowed 1 s after SIGHUP\n{}",
                rig.report()
            )
        },
    );
    let revoked_in = sent.elapsed();
    assert!(
        !rig.can_connect(gone_at),
        "{gone} can still connect after SIGHUP\n{}",
        rig.report()
    );
    assert!(
        rig.can_connect(kept_at),
        "{kept} lost the grant when {gone} went\n{}",
        rig.report()
    );
    let status = rig.steady_status();
    assert!(user_entry(&status, gone).is_none(), "{status}");
    assert_eq!(doors_of(&status, Some(gone)), 0, "{status}");
    assert_eq!(doors_of(&status, Some(kept)), 3, "{status}");
    assert_eq!(
        grants_of(&status, kept),
        vec![kept_at.to_string()],
        "{status}"
    );
    assert_eq!(
        sources(&status, "allowed"),
        vec![kept_at.to_string()],
        "{status}"
    );

    // The gone user knocks again, with a pair of theirs nobody used: nothing opens.
    let again = live_window(&gone_user.totp, &[gone_used]);
    rig.knock_as(gone_user, gone_at, again);
    assert!(
        !rig.can_connect(gone_at),
        "{gone}'s pair of window {again} opened the port after SIGHUP\n{}",
        rig.report()
    );
    let log = rig.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("revoked {gone}: doors and live grants removed"))),
        "{log}"
    );
    assert!(
        log.contains("SIGHUP: 1 enabled users in") && log.contains(&format!("({kept})")),
        "{log}"
    );
    eprintln!(
        "users: {gone} revoked {revoked_in:.1?} after SIGHUP; {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_users_a_removed_user_is_revoked_on_sighup() {
    if !nft_lab_available(false) {
        return;
    }
    revoked_on_sighup("nftusrm", "alice", |rig, name| rig.remove_user(name));
}

#[test]
fn nft_users_a_disabled_user_is_revoked_on_sighup() {
    if !nft_lab_available(false) {
        return;
    }
    revoked_on_sighup("nftusoff", "bob", |rig, name| rig.disable_user(name));
}

#[test]
fn nft_users_expired_users_open_nothing_and_lose_their_grant() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let (alice, bob) = (User::alice(), User::bob());
    let mut rig = Rig::setup("nftusexp", PERIOD, OPEN);
    let past = (unix_now().as_secs() - 60).to_string();
    rig.add_user("alice", ALICE, &["--expires", &past]);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    // Bob expires about 3 s after the daemon starts.
    let expires = unix_now().as_secs() + 5;
    rig.add_user("bob", BOB, &["--expires", &expires.to_string()]);
    rig.start_daemon_expecting(3);
    let (alice_at, bob_at, bob_later) = (
        rig.lab.add_client_ipv4(3),
        rig.lab.add_client_ipv4(4),
        rig.lab.add_client_ipv4(5),
    );
    // Bob, before he expires: in.
    let wb = live_window(&bob.totp, &[]);
    rig.knock_as(&bob, bob_at, wb);
    let knocked = unix_now().as_secs_f64();
    assert!(
        knocked < expires as f64 - 0.5,
        "too slow: bob knocked {:.1} s before his expiry",
        expires as f64 - knocked
    );
    assert!(
        rig.can_connect(bob_at),
        "bob did not get in before he expired\n{}",
        rig.report()
    );
    // Alice, expired before the start: her pairs open nothing.
    let now = alice.totp.window_at(unix_now().as_secs()).counter;
    for counter in [now - 1, now, now + 1] {
        rig.knock_as(&alice, alice_at, counter);
    }
    assert!(
        !rig.can_connect(alice_at),
        "an expired user got in\n{}",
        rig.report()
    );
    let status = rig.status();
    assert_eq!(doors_of(&status, Some("alice")), 0, "{status}");
    assert!(user_entry(&status, "alice").is_none(), "{status}");
    if unix_now().as_secs() < expires {
        assert!(doors_of(&status, Some("bob")) >= 1, "{status}");
    }

    // Bob's grant (30 s) ends within ~6 s after his expiry.
    let wait = (expires as f64 + 6.0 - unix_now().as_secs_f64()).max(0.0);
    wait_until(
        Duration::from_secs_f64(wait),
        Duration::from_millis(100),
        || !sources(&rig.status(), "allowed").contains(&bob_at.to_string()),
        || {
            format!(
                "bob is still allowed 6 s after his expiry\n{}",
                rig.report()
            )
        },
    );
    let lost = unix_now().as_secs_f64() - expires as f64;
    assert!(
        lost > -1.0,
        "bob lost his grant {:.1} s before his expiry",
        -lost
    );
    assert!(!rig.can_connect(bob_at), "bob connects after his expiry");
    // And a pair of his nobody used opens nothing now.
    let later = live_window(&bob.totp, &[wb]);
    rig.knock_as(&bob, bob_later, later);
    assert!(
        !rig.can_connect(bob_later),
        "bob's pair of window {later} opened the port after his expiry\n{}",
        rig.report()
    );
    let log = rig.log_text();
    assert!(
        log.contains("revoked bob: doors and live grants removed"),
        "{log}"
    );
    assert!(!log.contains("revoked alice"), "{log}");
    eprintln!(
        "users: bob's grant lost {lost:+.1} s after his expiry; {:.1?}",
        started.elapsed()
    );
}

/// The words of `log` (split at what is neither alphanumeric nor `.` or `-`, so that
/// addresses and dates stay whole; a word's trailing dots dropped), except numbers followed
/// by "ms" (durations).
fn log_words(log: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for line in log.lines() {
        let parts: Vec<&str> = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .map(|w| w.trim_end_matches('.'))
            .filter(|w| !w.is_empty())
            .collect();
        for (i, word) in parts.iter().enumerate() {
            if parts.get(i + 1) != Some(&"ms") {
                words.insert((*word).to_owned());
            }
        }
    }
    words
}

#[test]
fn nft_users_status_and_log_name_the_user_not_the_ports() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    // `both`, with the metrics file.
    let mut rig = Rig::setup("nftusname", PERIOD, OPEN);
    rig.add_user("alice", ALICE, &[]);
    rig.add_user("bob", BOB, &[]);
    let metrics = rig.lab.dir.path().join("knock-totp.prom");
    rig.with_daemon_args(&["--metrics-file", &metrics.to_string_lossy()]);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon_expecting(6);
    let (alice, bob) = (User::alice(), User::bob());
    let alice_at = rig.lab.add_client_ipv4(3);
    let w = live_window(&alice.totp, &[]);
    rig.knock_as(&alice, alice_at, w);
    assert!(
        rig.can_connect(alice_at),
        "alice did not get in\n{}",
        rig.report()
    );

    let status = rig.status();
    let entry = user_entry(&status, "alice").unwrap_or_else(|| panic!("{status}"));
    assert_eq!(
        grants_of(&status, "alice"),
        vec![alice_at.to_string()],
        "{status}"
    );
    assert!(entry["opened"].as_u64().unwrap_or(0) >= 1, "{entry}");
    assert_eq!(entry["open_seconds"], Value::from(OPEN), "{entry}");
    let bob_entry = user_entry(&status, "bob").unwrap_or_else(|| panic!("{status}"));
    assert!(grants_of(&status, "bob").is_empty(), "{status}");
    assert_eq!(bob_entry["opened"], Value::from(0), "{bob_entry}");
    let owned: Vec<&Value> = status["doors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["owner"].is_null())
        .collect();
    assert_eq!(owned.len(), 1, "{status}");
    assert_eq!(owned[0]["user"], "alice", "{status}");
    assert_eq!(owned[0]["window"], Value::from(w), "{status}");
    assert_eq!(
        owned[0]["owner"],
        Value::from(alice_at.to_string()),
        "{status}"
    );

    let line = format!("door opened: user alice from {alice_at}");
    rig.wait_log(&line, Duration::from_secs(7));
    // One rotation more: the doors of two windows served at least.
    let last = rig.rotations().into_iter().max().unwrap_or_default();
    rig.wait_rotation(last + 1, Duration::from_secs(PERIOD + 3));
    let log = rig.log_text();
    assert!(!log.contains("door opened: user bob"), "{log}");
    // The metrics name the users too, with the doors each opened.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let opened = |user: &str| -> u64 {
        let series =
            format!("knock_totp_user_doors_opened_total{{server=\"web\",user=\"{user}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(opened("alice") >= 1, "{text}");
    assert_eq!(opened("bob"), 0, "{text}");

    // No port of a door served appears in the log (nor anywhere in a line of it).
    let served: BTreeSet<u64> = rig.rotations().into_iter().collect();
    assert!(!served.is_empty(), "{log}");
    let words = log_words(&(log.clone() + &text));
    let mut checked = 0;
    for counter in &served {
        for user in [&alice, &bob] {
            for door in [counter - 1, *counter, counter + 1] {
                for port in user.ports(door) {
                    if port == PROTECTED {
                        continue;
                    }
                    checked += 1;
                    assert!(
                        !words.contains(&port.to_string()),
                        "the log shows port {port} of {}'s door of window {door}:\n{log}",
                        user.name
                    );
                }
            }
        }
    }
    assert!(checked >= 24, "{checked}");
    // Control: the words hold the numbers the log shows (its windows).
    let first = served.iter().next().unwrap();
    assert!(words.contains(&first.to_string()), "{log}");
    eprintln!(
        "users: status and log name alice, {checked} ports checked over windows {served:?}; \
         {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_users_a_shared_address_stays_in_while_another_user_holds_it() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let rig = both("nftusnat");
    let (alice, bob) = (User::alice(), User::bob());
    let (shared, alice_only) = (rig.lab.add_client_ipv4(3), rig.lab.add_client_ipv4(4));
    // Both behind one NAT address; alice from a second address as well.
    let w1 = live_window(&alice.totp, &[]);
    rig.knock_as(&alice, shared, w1);
    let wb = live_window(&bob.totp, &[]);
    rig.knock_as(&bob, shared, wb);
    let w2 = live_window(&alice.totp, &[w1]);
    rig.knock_as(&alice, alice_only, w2);
    assert!(
        rig.can_connect(shared),
        "the shared address is not in\n{}",
        rig.report()
    );
    assert!(
        rig.can_connect(alice_only),
        "alice's own address is not in\n{}",
        rig.report()
    );
    let status = rig.status();
    let mut alice_grants = grants_of(&status, "alice");
    alice_grants.sort();
    let mut expected = vec![shared.to_string(), alice_only.to_string()];
    expected.sort();
    assert_eq!(alice_grants, expected, "{status}");
    assert_eq!(
        grants_of(&status, "bob"),
        vec![shared.to_string()],
        "{status}"
    );

    rig.remove_user("alice");
    rig.hangup();
    wait_until(
        Duration::from_secs(1),
        Duration::from_millis(20),
        || !sources(&rig.status(), "allowed").contains(&alice_only.to_string()),
        || {
            format!(
                "alice's address still allowed after SIGHUP\n{}",
                rig.report()
            )
        },
    );
    assert!(
        !rig.can_connect(alice_only),
        "alice's own address connects after she was removed\n{}",
        rig.report()
    );
    assert!(
        rig.can_connect(shared),
        "the shared address lost bob's grant when alice went\n{}",
        rig.report()
    );
    let status = rig.status();
    assert!(user_entry(&status, "alice").is_none(), "{status}");
    assert_eq!(
        grants_of(&status, "bob"),
        vec![shared.to_string()],
        "{status}"
    );
    assert_eq!(
        sources(&status, "allowed"),
        vec![shared.to_string()],
        "{status}"
    );
    assert!(
        rig.log_text()
            .contains("revoked alice: doors and live grants removed"),
        "{}",
        rig.log_text()
    );
    eprintln!(
        "users: shared address kept, ok in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_users_a_user_added_on_sighup_gets_in_at_once_and_grants_stay() {
    if !nft_lab_available(false) {
        return;
    }
    let started = Instant::now();
    let rig = users_running("nftusadd", &[("alice", ALICE, &[])], 3);
    let (alice, bob) = (User::alice(), User::bob());
    let (alice_at, bob_at) = (rig.lab.add_client_ipv4(3), rig.lab.add_client_ipv4(4));
    let wa = live_window(&alice.totp, &[]);
    rig.knock_as(&alice, alice_at, wa);
    assert!(
        rig.can_connect(alice_at),
        "alice did not get in\n{}",
        rig.report()
    );
    // Bob is not a user yet: his pair opens nothing.
    let early = live_window(&bob.totp, &[]);
    rig.knock_as(&bob, bob_at, early);
    assert!(
        !rig.can_connect(bob_at),
        "bob got in before he was a user\n{}",
        rig.report()
    );

    rig.add_user("bob", BOB, &[]);
    let sent = rig.hangup();
    wait_until(
        Duration::from_secs(1),
        Duration::from_millis(20),
        || doors_of(&rig.status(), Some("bob")) >= 2,
        || {
            format!(
                "bob's doors are not in place 1 s after SIGHUP\n{}",
                rig.report()
            )
        },
    );
    let in_place = sent.elapsed();
    // A pair of bob's not knocked before (a used stage could linger).
    let wb = live_window(&bob.totp, &[early]);
    rig.knock_as(&bob, bob_at, wb);
    assert!(
        rig.can_connect(bob_at),
        "bob's pair of window {wb} did not let him in after SIGHUP\n{}",
        rig.report()
    );
    assert!(
        rig.can_connect(alice_at),
        "alice lost her grant when bob was added\n{}",
        rig.report()
    );
    let status = rig.steady_status();
    assert_eq!(doors_of(&status, Some("alice")), 3, "{status}");
    assert_eq!(doors_of(&status, Some("bob")), 3, "{status}");
    assert_eq!(
        grants_of(&status, "alice"),
        vec![alice_at.to_string()],
        "{status}"
    );
    assert_eq!(
        grants_of(&status, "bob"),
        vec![bob_at.to_string()],
        "{status}"
    );
    let log = rig.log_text();
    assert!(
        log.contains("SIGHUP: 2 enabled users in") && log.contains("(alice, bob)"),
        "{log}"
    );
    assert!(!log.contains("revoked"), "{log}");
    eprintln!(
        "users: bob's doors in place {in_place:.1?} after SIGHUP; {:.1?}",
        started.elapsed()
    );
}

#[test]
fn nft_users_a_knockd_server_with_users_refuses_to_start() {
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
    let config = files.join(format!("{NAME}.toml"));
    let secret = files.join(format!("{NAME}.secret"));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("/etc/knock-totp/web.secret"), "{text}");
    std::fs::write(
        &config,
        text.replace("/etc/knock-totp/web.secret", &secret.to_string_lossy()),
    )
    .unwrap();
    // setup refuses a user on a knockd server: the files are put there by hand.
    let refused = env
        .cmd()
        .args([
            "-q", "setup", NAME, "--user", "alice", "--secret", "-", "--out",
        ])
        .arg(&files)
        .write_stdin(ALICE)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "setup --user on knockd succeeded"
    );
    let users = files.join(format!("{NAME}.d"));
    std::fs::create_dir(&users).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(users.join("alice.toml"), "enabled = true\n").unwrap();
    let user_secret = users.join("alice.secret");
    std::fs::write(&user_secret, format!("{ALICE}\n")).unwrap();
    std::fs::set_permissions(&user_secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = env
        .cmd()
        .args(["server", "--config"])
        .arg(&config)
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "the knockd server with users did not exit with an error ({:?}): {err}",
        out.status
    );
    let lines: Vec<&str> = err.lines().collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| !l.starts_with("hint: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("nftables engine"), "{err}");
    assert!(lines.len() <= 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
