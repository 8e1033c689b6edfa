//! The newest window served survives a restart (issue 19), as root in the lab with the
//! nftables engine: a daemon restarted with its clock set back (the `test-clock` feature's
//! offset) or finding a state file ahead of its clock puts no door in the kernel for a window
//! it served before and keeps the port dropped; a damaged state file stops it with one line.
//! Every wait is bounded in time.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::{nft_lab_available, v4, Rig, TABLE};
use crate::support::{can_run, stderr_of, stdout_of, unix_now, write_private};

/// Short windows, so that the clock reaches a window after the recorded one within seconds.
const PERIOD: u64 = 5;
const OFFSET_VAR: &str = "KNOCK_TOTP_TEST_CLOCK_OFFSET";
/// What the daemon's alarm says when it starts behind the windows it served.
const ALARM: &str = "no older window is served again";

impl Rig {
    /// Starts the daemon with its wall clock moved by `offset` seconds (the test-clock
    /// feature); returns once its log contains `ready`.
    fn start_daemon_at(&mut self, offset: i64, ready: &str) {
        self.logs += 1;
        let config = PathBuf::from(&self.config);
        let var = format!("{OFFSET_VAR}={offset}");
        let log = self.lab.spawn_daemon(
            &["env", &var],
            &config,
            &format!("server-{}.log", self.logs),
        );
        self.log = Some(log);
        self.wait_log(ready, Duration::from_secs(10));
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    fn stop_daemon(&self) {
        let pid = self.daemon_pid();
        self.signal(pid, "TERM");
        self.wait_exit(pid, Duration::from_secs(10));
    }

    /// The window counter the state file records (`window=N`).
    fn recorded_window(&self) -> u64 {
        let text = std::fs::read_to_string(self.state_file()).unwrap_or_else(|e| {
            panic!("{}: {e}\n{}", self.state_file().display(), self.log_text())
        });
        text.strip_prefix("window=")
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a window=N line: {text:?}"))
    }

    /// The windows whose doors are in the kernel's table (elements of `door_grant`).
    fn door_sets(&self) -> Vec<u64> {
        let listing =
            stdout_of(
                &self
                    .lab
                    .server_exec(&["nft", "list", "map", "inet", TABLE, "door_grant"]),
            );
        // Each door is an element whose comment is "knock-totp door c=WINDOW ...".
        let mut windows: Vec<u64> = listing
            .split("knock-totp door c=")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        windows.sort_unstable();
        windows
    }

    /// Whether the table has no door at all and still drops the protected port.
    fn assert_no_door_and_closed(&self, what: &str) {
        assert_eq!(
            self.door_sets(),
            Vec::<u64>::new(),
            "{what}\n{}",
            self.report()
        );
        let status = self.status();
        assert!(
            status["doors"].as_array().unwrap().is_empty(),
            "{what}: {status}"
        );
        assert_eq!(status["protected"], Value::Bool(true), "{what}: {status}");
    }

    /// Fails unless the binary under test moves its clock by `offset` (a dry run prints the
    /// window it plans): a binary built without the feature, e.g. replaced by a `cargo build`
    /// in the same checkout while the tests run, would make the test prove nothing.
    fn assert_binary_moves_its_clock(&self, offset: i64) {
        let out = self
            .lab
            .server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
            .env(OFFSET_VAR, offset.to_string())
            .args(["server", "--config", &self.config, "--dry-run", "--once"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "dry run: {}", stderr_of(&out));
        let planned: u64 = stdout_of(&out)
            .lines()
            .find_map(|l| l.strip_prefix("# dry run: window ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no planned window: {}", stdout_of(&out)));
        let expected = self.counter_at(unix_now().as_secs_f64() + offset as f64);
        assert!(
            planned.abs_diff(expected) <= 1,
            "{} planned window {planned}, not {expected}: it ignores {OFFSET_VAR}, so it was \
             built without --features test-clock (another cargo build in this checkout?)",
            env!("CARGO_BIN_EXE_knock-totp")
        );
    }

    /// The current window by the real clock.
    fn real_window(&self) -> u64 {
        self.counter_at(unix_now().as_secs_f64())
    }
}

fn test_clock_available() -> bool {
    can_run(
        "needs the binary built with --features test-clock (scripts/test.sh builds it so)",
        cfg!(feature = "test-clock"),
    )
}

/// Served at the real time, stopped, restarted with the clock 300 s back: no door for any
/// window up to the one recorded goes in (the newest recorded pair, still inside its time
/// bound, is refused), the port stays dropped; restarted with the clock right, only windows
/// after the recorded one get doors and a legitimate knock gets in.
#[test]
fn a_restart_behind_the_clock_never_serves_an_older_window_again() {
    if !nft_lab_available(true) || !test_clock_available() {
        return;
    }
    let mut rig = Rig::setup("stback", PERIOD, 30);
    rig.install_base();
    rig.lab.start_echo_server(super::PROTECTED);
    rig.start_daemon();
    let first = rig.wait_rotation(0, Duration::from_secs(1));
    let served = rig.wait_rotation(first + 1, Duration::from_secs(PERIOD + 2));
    rig.stop_daemon();
    let recorded = rig.recorded_window();
    // The newest door in the kernel was the next window's.
    assert_eq!(recorded, served + 1, "{}", rig.log_text());
    assert_eq!(
        std::fs::metadata(rig.state_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // The clock 300 s (60 windows) back: the daemon would serve windows long gone.
    rig.assert_binary_moves_its_clock(-300);
    rig.start_daemon_at(-300, ALARM);
    let log = rig.log_text();
    let alarm = log.lines().find(|l| l.contains(ALARM)).unwrap().to_owned();
    assert!(
        alarm.contains("WARNING") && alarm.contains("behind window"),
        "{log}"
    );
    assert!(
        alarm.contains(&rig.state_file().display().to_string()),
        "{log}"
    );
    let words: Vec<&str> = alarm.split(|c: char| !c.is_ascii_digit()).collect();
    for counter in served - 1..=recorded {
        for port in rig.ports(counter) {
            assert!(
                !words.contains(&port.to_string().as_str()),
                "the alarm names door port {port}: {alarm}"
            );
        }
    }
    assert!(!log.contains(super::SECRET), "{log}");
    rig.assert_no_door_and_closed("restarted 300 s behind");
    // The newest pair recorded is inside its time bound (its door would end at
    // (recorded + 2) * PERIOD) and opens nothing.
    assert!(rig.real_window() <= recorded + 1, "the test ran too slowly");
    let replayer = rig.lab.add_client_ipv4(3);
    rig.send(v4(replayer), &rig.ports(recorded), 100);
    assert!(
        !rig.can_connect(replayer),
        "the pair of window {recorded}, served before the restart, opened the port\n{}",
        rig.report()
    );
    // It stays so for more than a window: nothing older is ever served.
    std::thread::sleep(Duration::from_secs(PERIOD + 1));
    rig.assert_no_door_and_closed("a window later, still 300 s behind");
    assert_eq!(rig.recorded_window(), recorded, "the state file went back");
    rig.stop_daemon();

    // The clock right again: windows after the recorded one only.
    rig.start_daemon_at(0, ": window ");
    // From window recorded + 1 on, the clients' pair of the current window opens.
    let newest = rig.wait_rotation(recorded + 1, Duration::from_secs(3 * PERIOD));
    let doors = rig.door_sets();
    assert!(!doors.is_empty(), "{}", rig.report());
    assert!(
        doors.iter().all(|&c| c > recorded),
        "doors {doors:?} at window {newest}: one is for a window up to {recorded}\n{}",
        rig.report()
    );
    let late = rig.lab.add_client_ipv4(4);
    rig.send(v4(late), &rig.ports(recorded), 100);
    assert!(
        !rig.can_connect(late),
        "window {recorded}'s pair opened the port"
    );
    rig.knock_ok(
        v4(rig.lab.server_ip),
        "the knock of a window after the recorded one",
    );
    assert!(rig.can_connect(rig.lab.client_ip));
    assert!(rig.recorded_window() > recorded);
}

/// A state file 1000 windows ahead of the clock: the daemon starts fail-closed with no door,
/// says so once, and a legitimate knock stays out.
#[test]
fn a_state_file_ahead_of_the_clock_holds_back_every_door() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("stahead", PERIOD, 30);
    rig.install_base();
    rig.lab.start_echo_server(super::PROTECTED);
    let ahead = rig.real_window() + 1000;
    std::fs::create_dir_all(rig.lab.state_dir()).unwrap();
    write_private(&rig.state_file(), &format!("window={ahead}\n"));
    rig.start_daemon_at(0, ALARM);
    rig.assert_no_door_and_closed("state file ahead");
    let out = rig.knock(v4(rig.lab.server_ip), &["--margin", "1"]);
    assert!(
        !out.status.success(),
        "a knock got in: {}\n{}",
        stderr_of(&out),
        rig.report()
    );
    assert!(!rig.can_connect(rig.lab.client_ip));
    std::thread::sleep(Duration::from_secs(PERIOD + 1));
    rig.assert_no_door_and_closed("a window later");
    let log = rig.log_text();
    assert_eq!(log.matches(ALARM).count(), 1, "{log}");
    assert_eq!(rig.recorded_window(), ahead);
    rig.stop_daemon();
}

/// Garbage, a file others may write and a symbolic link in place of the state file: the
/// daemon exits non-zero at once with one line naming the file and what to do, and changes
/// nothing (no door, the file left as it was).
#[test]
fn a_corrupt_state_file_stops_the_daemon_with_one_clear_line() {
    if !nft_lab_available(false) {
        return;
    }
    let rig = Rig::setup("stbad", PERIOD, 30);
    rig.install_base();
    let state = rig.state_file();
    std::fs::create_dir_all(rig.lab.state_dir()).unwrap();
    let run = |what: &str, reason: &str| {
        let out = rig
            .lab
            .server_cmd("timeout")
            .args(["20", env!("CARGO_BIN_EXE_knock-totp"), "server", "--config"])
            .arg(&rig.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.contains(&state.display().to_string()), "{what}: {err}");
        assert!(err.contains(reason), "{what}: {err}");
        assert!(
            err.contains("remove it if the clock is right"),
            "{what}: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        rig.assert_no_door_and_closed(what);
    };

    write_private(&state, "garbage\n");
    run("garbage", "not the window=N line");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "garbage\n");

    write_private(&state, "window=12\n");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o620)).unwrap();
    run("group-writable", "writable by others");

    std::fs::remove_file(&state).unwrap();
    let target = rig.lab.dir.path().join("elsewhere.window");
    write_private(&target, "window=12\n");
    std::os::unix::fs::symlink(&target, &state).unwrap();
    run("a symbolic link", "symbolic link");
    assert!(std::fs::symlink_metadata(&state).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "window=12\n");
}
