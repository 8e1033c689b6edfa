//! systemd's notify protocol against a stand-in for systemd's socket: a unix datagram socket
//! in a temp dir, named by `NOTIFY_SOCKET`, with `WATCHDOG_USEC` of 2 s. READY=1 comes once
//! the doors are in place, WATCHDOG=1 at least every second, none while `nft` fails or once
//! it hangs.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::nft_e2e::{nft_lab_available, Rig, TABLE};
use crate::support::{nft_wrapper, write_private, Env, SHORT_SECRET};

/// What systemd's watchdog interval is for these daemons.
const WATCHDOG: Duration = Duration::from_secs(2);
const WATCHDOG_USEC: &str = "WATCHDOG_USEC=2000000";

/// The stand-in: a datagram socket bound at `dir/notify`.
fn stand_in(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    (socket, path)
}

/// The next datagram within `wait`, and when it came.
fn next(socket: &UnixDatagram, wait: Duration) -> Option<(Instant, String)> {
    socket
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => Some((
            Instant::now(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("the stand-in notify socket: {e}"),
    }
}

/// Every datagram for `span`.
fn during(socket: &UnixDatagram, span: Duration) -> Vec<(Instant, String)> {
    let end = Instant::now() + span;
    let mut got = Vec::new();
    while let Some(message) = next(socket, end.saturating_duration_since(Instant::now())) {
        got.push(message);
        if Instant::now() >= end {
            break;
        }
    }
    got
}

fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

/// When the WATCHDOG=1 pings among `messages` came.
fn pings(messages: &[(Instant, String)]) -> Vec<Instant> {
    messages
        .iter()
        .filter(|(_, m)| has(m, "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect()
}

/// The longest time between `from` and the first ping, or between two pings.
fn longest_gap(from: Instant, pings: &[Instant]) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &t in pings {
        longest = longest.max(t.duration_since(last));
        last = t;
    }
    longest
}

/// The numbers in `text` (a STATUS line must hold no port).
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// A real daemon (nftables engine, in the lab) with the stand-in as its notify socket and an
/// `nft` first on its PATH that fails while one flag file exists and sleeps for an hour once
/// another does.
#[test]
fn notify_ready_after_the_doors_then_pings_only_while_nft_works() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("notify", 30, 30);
    // No firewall-setup.sh: the daemon loads the table itself, so READY can be held
    // against it.
    assert!(!rig.table_exists(), "a table before the daemon ran");
    let dir = rig.lab.dir.path().to_owned();
    let (socket, notify) = stand_in(&dir);
    let flag = dir.join("hang");
    let failing = dir.join("fail");
    let path = nft_wrapper(
        &dir,
        &format!(
            "[ -e '{}' ] && exec sleep 3600\n[ -e '{}' ] && exit 1\nexec \"$NFT\" \"$@\"\n",
            flag.display(),
            failing.display()
        ),
    );
    let socket_var = format!("NOTIFY_SOCKET={}", notify.display());
    rig.spawn_daemon_via(&["env", &path, &socket_var, WATCHDOG_USEC]);

    let (ready_at, ready) = next(&socket, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no notification within 15 s; log:\n{}", rig.log_text()));
    assert!(has(&ready, "READY=1"), "the first notification: {ready:?}");
    // When READY=1 came, the doors were in place: logged, and in the kernel.
    let log = rig.log_text();
    assert!(
        log.contains(&format!("doors in table inet {TABLE}")),
        "READY=1 before the doors were logged:\n{log}"
    );
    assert!(rig.table_exists(), "READY=1 without the table");
    let status = rig.status();
    let doors = status["doors"].as_array().map_or(0, Vec::len);
    assert!(doors > 0, "READY=1 without doors: {status}");
    let line = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS with READY=1: {ready:?}"));
    let now = rig.counter_at(crate::support::unix_now().as_secs_f64());
    let ports: Vec<u64> = (now - 2..=now + 2)
        .flat_map(|w| rig.ports(w))
        .map(u64::from)
        .collect();
    assert!(
        numbers(line).iter().all(|n| !ports.contains(n)),
        "STATUS names a port: {line:?} (ports {ports:?})"
    );

    // Pings, at least every half of the watchdog's interval.
    let running = during(&socket, Duration::from_secs(4));
    let alive = pings(&running);
    assert!(
        alive.len() >= 4,
        "{} pings in 4 s: {running:?}\n{}",
        alive.len(),
        rig.log_text()
    );
    let gap = longest_gap(ready_at, &alive);
    assert!(
        gap <= WATCHDOG / 2,
        "{gap:?} without a ping (watchdog {WATCHDOG:?})"
    );
    assert!(
        running.iter().all(|(_, m)| !has(m, "READY=1")),
        "READY=1 twice: {running:?}"
    );

    // nft fails: no rotation or repair succeeds, and no ping comes; then it works again.
    std::fs::write(&failing, "").unwrap();
    let failed_at = Instant::now();
    let broken = during(&socket, Duration::from_secs(3));
    let late: Vec<Duration> = pings(&broken)
        .iter()
        .map(|t| t.duration_since(failed_at))
        .collect();
    assert!(
        late.iter().all(|d| *d < WATCHDOG / 2),
        "pings while nft failed (at {late:?} after)\n{}",
        rig.log_text()
    );
    std::fs::remove_file(&failing).unwrap();
    let fixed_at = Instant::now();
    let back = pings(&during(&socket, Duration::from_secs(2)));
    assert!(
        !back.is_empty() && back[0].duration_since(fixed_at) <= WATCHDOG / 2,
        "no ping within {:?} once nft works again\n{}",
        WATCHDOG / 2,
        rig.log_text()
    );

    // nft hangs from now on: the pings stop within the watchdog's interval.
    std::fs::write(&flag, "").unwrap();
    let hung_at = Instant::now();
    let after = during(&socket, Duration::from_secs(5));
    let late: Vec<Duration> = pings(&after)
        .iter()
        .map(|t| t.duration_since(hung_at))
        .collect();
    assert!(
        late.iter().all(|d| *d < WATCHDOG),
        "pings went on after nft hung (at {late:?} after)\n{}",
        rig.log_text()
    );
    assert!(
        !rig.lab.server_pids("sleep").is_empty(),
        "the daemon never called the hanging nft; log:\n{}",
        rig.log_text()
    );
}

/// Without root or a firewall: a dry-run daemon under the stand-in is READY at once, pings,
/// and says STOPPING=1 on SIGTERM.
#[test]
fn notify_a_dry_run_daemon_is_ready_pings_and_says_it_stops() {
    let env = Env::new();
    let dir = env.path();
    let secret = dir.join("secret");
    write_private(&secret, &format!("{SHORT_SECRET}\n"));
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"web\"\nsecret_file = \"{}\"\nport = 22\nengine = \"nftables\"\n\
             firewall = \"nftables\"\nperiod = 30\n",
            secret.display()
        ),
    )
    .unwrap();
    let (socket, notify) = stand_in(dir);
    let mut daemon = env
        .std_cmd_via(&["env"])
        .args(["server", "--dry-run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "2000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = next(&socket, Duration::from_secs(15));
    let running = during(&socket, Duration::from_millis(2_500));
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    // Pings sent before the signal may come first.
    let stopping = std::iter::from_fn(|| next(&socket, Duration::from_secs(10)))
        .find(|(_, m)| has(m, "STOPPING=1"));
    let status = daemon.wait().unwrap();
    let mut log = String::new();
    let _ = std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut log);
    let (ready_at, ready) = ready.unwrap_or_else(|| panic!("no notification; log:\n{log}"));
    assert!(has(&ready, "READY=1"), "{ready:?}\n{log}");
    assert!(
        ready.contains("STATUS=window "),
        "no STATUS with READY=1: {ready:?}"
    );
    let alive = pings(&running);
    assert!(alive.len() >= 3, "pings: {running:?}\n{log}");
    assert!(longest_gap(ready_at, &alive) <= WATCHDOG / 2, "{running:?}");
    let (_, stopping) = stopping.unwrap_or_else(|| panic!("no STOPPING=1; log:\n{log}"));
    assert!(has(&stopping, "STOPPING=1"), "{stopping:?}\n{log}");
    assert!(status.success(), "{status}\n{log}");
}
