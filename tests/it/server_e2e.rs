//! End to end, as root: `knock-totp server` rotates the doors of a real knockd in the lab's
//! server namespace (period 5 s) while the client namespace knocks with `knock-totp knock
//! --verify` across several window boundaries.
//!
//! Every step is anchored on the server's own rotation lines ("window N: ..."), never on a
//! guess of when the server gets there, and every wait is bounded. Each attempt starts with
//! the protected port closed (the previous door's grant timed out), and is attributed to its
//! window by the ports the client used and the door knockd opened for them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use knock_totp::core::ports::PortPair;
use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};
use knock_totp::core::window::Window;

use crate::support::lab::{iptables_door, lab_available, Lab};
use crate::support::unix_now;
use crate::support::{can_run, have, stderr_of, unit_sandbox, write_private, Env, RFC_SECRET};

/// A short TOTP period so that the test crosses several boundaries in well under a minute.
const PERIOD: u64 = 5;
/// How long a door keeps the protected port open (its ipset element times out after this).
const OPEN_SECONDS: u64 = 3;
/// knockd's seq_timeout: a half-finished attempt lingers this long.
const SEQ_TIMEOUT: u64 = 2;
const PROTECTED: u16 = 22;
const NAME: &str = "lab";
/// How long to wait for one rotation line: two periods and a generous allowance for load.
const ROTATION_WAIT: Duration = Duration::from_secs(2 * PERIOD + 10);
/// The whole test must stay below this.
const BUDGET: Duration = Duration::from_secs(90);

/// The window counters of the server's rotation lines, in log order.
fn rotation_lines(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("knock-totp: window ")?;
            let (counter, tail) = rest.split_once(": ")?;
            tail.starts_with("doors for ")
                .then(|| counter.parse().ok())
                .flatten()
        })
        .collect()
}

/// The ports named by `knock-totp -vv knock` ("knocking IP on ports A B (...)"), one pair per
/// knock it sent.
fn knocked_ports(stderr: &str) -> Vec<PortPair> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.split_once(" on ports ")?.1;
            let mut ports = rest.split(" (").next()?.split(' ').map(str::parse::<u16>);
            Some(PortPair([ports.next()?.ok()?, ports.next()?.ok()?]))
        })
        .collect()
}

/// The knockd, the rotation daemon and the client profile, in one lab.
struct Rig {
    lab: Lab,
    env: Env,
    totp: Totp,
    server_log: PathBuf,
    pid_file: PathBuf,
    knockd_pid: u32,
}

impl Rig {
    fn start() -> Self {
        Self::start_via(&[])
    }

    /// Like `start`, with the rotation daemon run through `prefix` (argv words before it).
    fn start_via(prefix: &[&str]) -> Self {
        let mut lab = Lab::new("rotate");
        lab.protect_port(PROTECTED);
        lab.accept_ipset(NAME, PROTECTED);
        lab.start_echo_server(PROTECTED);
        // A placeholder door (ports outside the knock range) until the first rotation.
        let conf = lab.knockd_conf(&[iptables_door(
            "placeholder",
            [40001, 40002],
            PROTECTED,
            SEQ_TIMEOUT,
        )]);
        // In the foreground (its -D output tells which door opened); returns once knockd
        // printed "starting up, listening on ...", so its signal handlers exist before the
        // server's first SIGHUP. knockd writes no pid file in the foreground: write it here.
        lab.start_knockd(&conf);
        let (knockd_pid, pid_file) = lab.write_knockd_pid_file();
        let dir = lab.dir.path().to_path_buf();

        let secret_file = dir.join("lab.secret");
        write_private(&secret_file, &format!("{RFC_SECRET}\n"));
        let config = dir.join("server.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"{NAME}\"\nsecret_file = \"{}\"\nport = {PROTECTED}\n\
                 interface = \"{}\"\nknockd_conf = \"{}\"\nknockd_pid_file = \"{}\"\n\
                 firewall = \"iptables\"\nopen_seconds = {OPEN_SECONDS}\n\
                 seq_timeout = {SEQ_TIMEOUT}\nperiod = {PERIOD}\n",
                secret_file.display(),
                crate::support::lab::SERVER_IF,
                dir.join("knockd.conf").display(),
                pid_file.display(),
            ),
        )
        .unwrap();
        let server_log = lab.spawn_daemon(prefix, &config, "server.log");

        let env = Env::new();
        let period = PERIOD.to_string();
        env.add_file_host_with(
            NAME,
            &lab.server_ip.to_string(),
            RFC_SECRET,
            &["--period", &period],
        );
        let totp = Totp::new(
            &SecretKey::from_base32(RFC_SECRET).unwrap(),
            Algorithm::Sha1,
            PERIOD,
        )
        .unwrap();
        Self {
            lab,
            env,
            totp,
            server_log,
            pid_file,
            knockd_pid,
        }
    }

    fn window(&self, counter: u64) -> Window {
        Window {
            counter,
            period: PERIOD,
        }
    }

    fn ports(&self, counter: u64) -> PortPair {
        self.totp.ports_for(self.window(counter))
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// Everything both daemons said, for failure messages.
    fn logs(&self) -> String {
        format!(
            "server log:\n{}\nknockd output:\n{}\nfirewall:\n{}",
            self.server_log(),
            self.lab.knockd_output(),
            self.lab.server_rules()
        )
    }

    /// The latest window the server has rotated to (None before its first rotation).
    fn server_window(&self) -> Option<u64> {
        rotation_lines(&self.server_log()).into_iter().max()
    }

    /// Waits until the server logged its rotation to window `counter` (or a later one), and
    /// the window has begun: the knockd engine rotates ahead of the boundary, in the quiet
    /// zone where clients do not knock.
    fn wait_rotation(&self, counter: u64) {
        let deadline = Instant::now() + ROTATION_WAIT;
        while self.server_window().is_none_or(|w| w < counter) {
            assert!(
                Instant::now() < deadline,
                "the server never rotated to window {counter}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let start = Duration::from_secs(self.window(counter).start());
        std::thread::sleep(start.saturating_sub(unix_now()));
    }

    /// Waits until the protected port refuses the client again (the door's grant timed out).
    fn wait_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(OPEN_SECONDS + 10);
        while self.lab.client_can_connect(PROTECTED) {
            assert!(
                Instant::now() < deadline,
                "the protected port never closed again\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the port opens for the client within `limit`.
    fn opens_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.lab.client_can_connect(PROTECTED) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether knockd's output after byte `offset` says that door `counter` opened for the
    /// client; polls briefly, as the line may land just after the port opened.
    fn door_opened_since(&self, offset: usize, counter: u64, wait: Duration) -> bool {
        let needle = format!("knock-totp-{counter}: OPEN SESAME");
        let client = self.lab.client_ip.to_string();
        let deadline = Instant::now() + wait;
        loop {
            let out = self.lab.knockd_output();
            let opened = out
                .get(offset..)
                .unwrap_or("")
                .lines()
                .any(|l| l.contains(&needle) && l.starts_with(&client));
            if opened || Instant::now() >= deadline {
                return opened;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether knockd's output after byte `offset` says any door opened for the client.
    fn any_door_opened_since(&self, offset: usize) -> Option<String> {
        self.lab
            .knockd_output()
            .get(offset..)
            .unwrap_or("")
            .lines()
            .find(|l| l.contains("OPEN SESAME"))
            .map(str::to_owned)
    }

    /// `knock-totp -v knock NAME --verify` from the client namespace; returns the window whose
    /// ports it knocked, after checking it knocked exactly once and that knockd opened that
    /// window's door for it.
    fn knock_and_verify(&self, extra: &[&str]) -> u64 {
        assert!(
            !self.lab.client_can_connect(PROTECTED),
            "the port is open before the knock\n{}",
            self.logs()
        );
        let offset = self.lab.knockd_output().len();
        let out = self
            .env
            .cmd_via(&self.lab.client_prefix())
            .args(["-vv", "knock", NAME, "--verify", "--timeout", "10"])
            .args(extra)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert!(
            out.status.success(),
            "knock {extra:?} failed: {stderr}\n{}",
            self.logs()
        );
        let pairs = knocked_ports(&stderr);
        assert_eq!(
            pairs.len(),
            1,
            "expected a single knock (none repeated after a window change): {stderr}"
        );
        // Which window were those ports for? The server is around that window now.
        let around = self.server_window().expect("the server has rotated");
        let window = (around.saturating_sub(2)..=around + 2)
            .find(|&w| self.ports(w) == pairs[0])
            .unwrap_or_else(|| {
                panic!(
                    "the client knocked {} which is no window near {around}: {stderr}",
                    pairs[0]
                )
            });
        assert!(
            self.door_opened_since(offset, window, Duration::from_secs(2)),
            "knockd did not open door knock-totp-{window} for this knock: {stderr}\n{}",
            self.logs()
        );
        window
    }

    /// Sends the two SYNs of `ports` with knockd's own `knock` client from the client namespace.
    fn raw_knock(&self, ports: PortPair) {
        let status = self
            .lab
            .client_cmd("knock")
            .args(["-d", "100"])
            .arg(self.lab.server_ip.to_string())
            .arg(ports.first().to_string())
            .arg(ports.second().to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knock {ports} failed");
    }
}

/// Whether `pid` is a live process named knockd.
fn knockd_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')').is_some_and(|(head, tail)| {
            head.ends_with("(knockd")
                && !matches!(tail.split_whitespace().next(), Some("Z" | "X") | None)
        })
    })
}

/// The knockd engine's daemon under what its generated unit grants (no capability at all):
/// it still validates and installs knockd.conf, signals knockd (root, every capability) and
/// the knock opens the door.
#[test]
fn knockd_daemon_works_with_only_what_its_unit_grants() {
    if !lab_available()
        || !can_run(
            "needs knockd's knock client, setpriv and unshare",
            have("knock") && have("setpriv") && have("unshare"),
        )
    {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = Env::new()
        .cmd()
        .args(["setup", "web", "--engine", "knockd", "--out"])
        .arg(out_dir.path().join("setup"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let unit =
        std::fs::read_to_string(out_dir.path().join("setup/knock-totp-web.service")).unwrap();
    let sandbox = unit_sandbox(&unit);
    let prefix: Vec<&str> = sandbox.iter().map(String::as_str).collect();
    let rig = Rig::start_via(&prefix);
    rig.wait_rotation(0);
    let pid = rig.lab.server_pids("knock-totp")[0];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l == "CapBnd:\t0000000000000000"),
        "the daemon runs with capabilities:\n{status}"
    );
    let first = rig.server_window().unwrap();
    rig.wait_rotation(first + 1);
    rig.wait_closed();
    rig.knock_and_verify(&["--margin", "1"]);
    assert!(knockd_alive(rig.knockd_pid), "{}", rig.logs());
}

#[test]
fn rotating_doors_open_in_each_window_and_stale_ones_do_not() {
    if !lab_available()
        || !can_run(
            "needs knockd's knock client (apt-get install knockd)",
            have("knock"),
        )
    {
        return;
    }
    let started = Instant::now();
    let rig = Rig::start();
    // The start-up rotation (to whichever window it is now); knocks begin at the next one,
    // when the server is surely in its loop. Completed sequences leave no half-finished
    // attempt behind, and every rotation's SIGHUP drops any stray one, so the scenarios need
    // no seq_timeout pauses between them.
    rig.wait_rotation(0);
    let first = rig.server_window().unwrap();

    // 1. Three knocks, each in a later window than the one before (consecutive unless the
    //    machine stalls for seconds), each from a closed port, each opening its own door.
    let mut knocked = Vec::new();
    let mut next = first + 1;
    while knocked.len() < 3 {
        rig.wait_rotation(next);
        rig.wait_closed();
        let window = rig.knock_and_verify(&["--margin", "1"]);
        assert!(window >= next, "knocked window {window}, expected {next}+");
        knocked.push(window);
        next = window + 1;
    }

    // 2. A knock sent in the last second of a window (--margin 0: no waiting for the next
    //    code). Its door must survive the rotation at the boundary that follows.
    let mut tries = 0;
    let (last_second, knocked_at) = loop {
        tries += 1;
        assert!(
            tries <= 3,
            "never managed a last-second knock\n{}",
            rig.logs()
        );
        rig.wait_rotation(next);
        rig.wait_closed();
        let target = Duration::from_secs(rig.window(next).end()) - Duration::from_millis(700);
        let now = unix_now();
        if now + Duration::from_millis(100) > target {
            next += 1; // the machine is slow: try in the next window
            continue;
        }
        std::thread::sleep(target - now);
        let knocked_at = Instant::now();
        // No pause between the two SYNs, so the pair never straddles the boundary's SIGHUP
        // (which would drop the half-finished attempt).
        let window = rig.knock_and_verify(&["--margin", "0", "--delay-ms", "0"]);
        if window == next {
            break (window, knocked_at);
        }
        // The client started so late that it knocked the next window's code: not the case
        // under test, though it opened its door. Try again one window later.
        next = window + 1;
    };
    knocked.push(last_second);
    rig.wait_rotation(last_second + 1);
    let after_rotation = knocked_at.elapsed();
    if after_rotation + Duration::from_millis(500) < Duration::from_secs(OPEN_SECONDS) {
        assert!(
            rig.lab.client_can_connect(PROTECTED),
            "the rotation closed the door opened in the last second ({after_rotation:?} after \
             the knock)\n{}",
            rig.logs()
        );
    } else {
        eprintln!(
            "note: the rotation came {after_rotation:?} after the last-second knock; not \
             checking that its door stayed open"
        );
    }

    // 3. After the boundary, the previous window's ports (those the last-second knock used)
    //    still open the port: the previous-window door covers a late knock.
    let mut window = last_second + 1;
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(
            tries <= 3,
            "no quiet moment for the previous-door knock\n{}",
            rig.logs()
        );
        rig.wait_rotation(window);
        rig.wait_closed();
        let at = rig.server_window().unwrap();
        if at != window {
            window = at; // the server moved on while the port closed
            continue;
        }
        let offset = rig.lab.knockd_output().len();
        rig.raw_knock(rig.ports(window - 1));
        if rig.opens_within(Duration::from_secs(3)) {
            assert!(
                rig.door_opened_since(offset, window - 1, Duration::from_secs(2)),
                "the port opened, but not through door knock-totp-{}\n{}",
                window - 1,
                rig.logs()
            );
            break;
        }
        let now = rig.server_window().unwrap();
        assert!(
            now > window,
            "window {}'s ports did not open the port while the server was at window {window}\n{}",
            window - 1,
            rig.logs()
        );
        window = now; // the boundary passed before knockd saw the knock: inconclusive
    }

    // 4. A stale pair from two windows ago does not open it.
    let stale_at = window + 1;
    rig.wait_rotation(stale_at);
    rig.wait_closed();
    let stale = rig.ports(stale_at - 2);
    for w in stale_at - 1..=stale_at + 2 {
        assert_ne!(
            rig.ports(w),
            stale,
            "window {w} has the stale pair: no test"
        );
    }
    let offset = rig.lab.knockd_output().len();
    rig.raw_knock(stale);
    assert!(
        !rig.opens_within(Duration::from_millis(1500)),
        "the pair of window {} opened the port at window {stale_at}+\n{}",
        stale_at - 2,
        rig.logs()
    );
    if let Some(line) = rig.any_door_opened_since(offset) {
        panic!("a stale knock opened a door: {line}\n{}", rig.logs());
    }

    // 5. knockd was reloaded in place throughout: same pid, still alive, pid file untouched.
    assert!(
        knockd_alive(rig.knockd_pid),
        "knockd {} is gone\n{}",
        rig.knockd_pid,
        rig.logs()
    );
    assert!(rig.lab.server_pids("knockd").contains(&rig.knockd_pid));
    // knockd reopens its log at every reload: the rendered options must give it one.
    assert!(
        !rig.lab.knockd_output().contains("cannot open logfile"),
        "{}",
        rig.logs()
    );
    assert_eq!(
        std::fs::read_to_string(&rig.pid_file).unwrap().trim(),
        rig.knockd_pid.to_string()
    );

    // 6. The server stops on SIGTERM and leaves knockd running.
    let servers = rig.lab.server_pids("knock-totp");
    assert_eq!(servers.len(), 1, "server processes: {servers:?}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &servers[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rig
        .server_log()
        .contains("SIGTERM: removing the doors and stopping")
    {
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(knockd_alive(rig.knockd_pid), "{}", rig.logs());
    // ...with no door left in knockd (fail closed: no captured knock opens anything later).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conf =
            std::fs::read_to_string(rig.lab.dir.path().join("knockd.conf")).unwrap_or_default();
        if !conf.contains("sequence") && conf.contains("[options]") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "knockd.conf still has doors after SIGTERM:\n{conf}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A knock with the current window's ports (captured now, or the client's own) opens
    // nothing: knockd has no door left.
    rig.wait_closed();
    let now = rig.totp.window_at(unix_now().as_secs());
    let offset = rig.lab.knockd_output().len();
    rig.raw_knock(rig.ports(now.counter));
    assert!(
        !rig.opens_within(Duration::from_millis(1500)),
        "a knock opened the port after SIGTERM\n{}",
        rig.logs()
    );
    if let Some(line) = rig.any_door_opened_since(offset) {
        panic!("a door opened after SIGTERM: {line}\n{}", rig.logs());
    }

    // 7. The server logged exactly one line per rotation, for consecutive windows, and never
    //    the secret or a code.
    let log = rig.server_log();
    let rotations = rotation_lines(&log);
    let last = *rotations.last().unwrap();
    assert_eq!(
        rotations,
        (first..=last).collect::<Vec<_>>(),
        "one rotation line per window expected\n{log}"
    );
    assert!(last > first + 5, "too few rotations: {rotations:?}");
    assert_eq!(
        log.lines().count(),
        rotations.len() + 1,
        "lines other than rotations and the stop (warnings, restarts?)\n{log}"
    );
    assert!(!log.contains(RFC_SECRET), "the secret leaked:\n{log}");
    let tokens: Vec<&str> = log.split(|c: char| !c.is_ascii_digit()).collect();
    for counter in first.saturating_sub(1)..=last + 1 {
        let code = rig.totp.code_for(rig.window(counter)).to_string();
        assert!(
            !tokens.contains(&code.as_str()),
            "the code {code} of window {counter} is in the log:\n{log}"
        );
    }
    eprintln!(
        "knocked in windows {knocked:?} (last second: {last_second}), previous door at {window}, \
         stale pair at {stale_at}, rotations {first}..={last}, {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}
