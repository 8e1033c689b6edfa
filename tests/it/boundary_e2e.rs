//! End to end, as root: `knock-totp ssh` started at 20 evenly spaced moments of the window
//! (period 10 s, the client's default margin and timeout) gets in 20 of 20 times against the
//! nftables engine, the knockd engine, and a stand-in of the original knocker that restarts
//! knockd with the new sequence at every boundary, taking more than a second.
//!
//! The runs go one at a time from one client, the previous grant taken back before each, in
//! whichever order of the 20 moments comes soonest (six windows: the runs that start in the
//! last 3 s wait for the next window, so one of them fits in each). They cannot run
//! at once from 20 addresses: an nftables door opens for its first knocker only, and knockd
//! completes only one of several attempts at the same door that overlap (measured here: of
//! six clients knocking one door within the same 100 ms, one got in). The ssh program is a
//! stand-in that runs the ProxyCommand `knock-totp ssh` gives it (which knocks and passes
//! back the connection that answered) and sends a line through that connection, which the
//! server's echo service sends back.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};
use knock_totp::core::window::Window;
use knock_totp::server::firewall::{Firewall, Iptables, ProtectedPort};

use crate::support::lab::{lab_available, Lab, SERVER_IF};
use crate::support::unix_now;
use crate::support::{fdpass_ssh, stderr_of, wait_until, write_private, Env, RFC_SECRET};

const PERIOD: u64 = 10;
const MOMENTS: u64 = 20;
const PROTECTED: u16 = 22;
const OPEN_SECONDS: u64 = 10;
const NAME: &str = "web";
/// How long one `knock-totp ssh` may take: the margin's wait, the timeout, a knock again.
const TRIAL_LIMIT: Duration = Duration::from_secs(25);
/// What the original knocker's restart of knockd costs here (measured 1.9 s in the field).
const RESTART_TAKES: Duration = Duration::from_millis(1_200);

fn totp() -> Totp {
    Totp::new(
        &SecretKey::from_base32(RFC_SECRET).unwrap(),
        Algorithm::Sha1,
        PERIOD,
    )
    .unwrap()
}

/// One `knock-totp ssh` run: when it started in its window, whether it got in, what it said.
struct Trial {
    offset: Duration,
    took: Duration,
    ok: bool,
    stderr: String,
}

impl Trial {
    fn knocked_again(&self) -> bool {
        self.stderr.contains("knocking once more") || self.stderr.contains("knocking again")
    }
}

/// What each run sends through the connection it got; the echo server sends it back.
const PING: &str = "ping\n";

/// Runs `knock-totp -v ssh web` from the client namespace once at each twentieth of a window,
/// one run at a time, in whichever order of the moments comes soonest. After each run
/// `close_grant` takes the client's address out of the set of allowed ones, so that every run
/// starts with the port closed.
fn twenty_moments(lab: &Lab, close_grant: &dyn Fn(&Lab)) -> Vec<Trial> {
    let env = Env::new();
    let period = PERIOD.to_string();
    env.add_file_host_with(
        NAME,
        &lab.server_ip.to_string(),
        RFC_SECRET,
        &["--period", &period],
    );
    let ssh = fdpass_ssh(lab.dir.path());
    let argv_file = lab.dir.path().join("ssh-argv");
    let step = Duration::from_millis(PERIOD * 1000 / MOMENTS);
    let mut left: Vec<Duration> = (0..MOMENTS as u32).map(|k| step * k).collect();
    let mut ready = unix_now() + Duration::from_millis(500);
    let mut trials = Vec::new();
    while !left.is_empty() {
        // The soonest moment at or after `ready` whose offset in its window is still to do.
        let window_start =
            |t: Duration| Duration::from_secs(Window::at(t.as_secs(), PERIOD).start());
        let next = |offset: Duration| {
            let at = window_start(ready) + offset;
            if at >= ready {
                at
            } else {
                at + Duration::from_secs(PERIOD)
            }
        };
        let (i, at) = left
            .iter()
            .map(|&offset| next(offset))
            .enumerate()
            .min_by_key(|&(_, at)| at)
            .unwrap();
        let offset = left.remove(i);
        std::thread::sleep(at.saturating_sub(unix_now()));
        let child = env
            .std_cmd_via(&lab.client_prefix())
            .args(["-v", "ssh", NAME, "--ssh-bin"])
            .arg(&ssh)
            .env("KT_ARGV_FILE", &argv_file)
            .env("KT_SEND", PING)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let began = Instant::now();
        let (ok, stderr) = finish(child);
        trials.push(Trial {
            offset,
            took: began.elapsed(),
            ok,
            stderr,
        });
        close_grant(lab);
        ready = unix_now() + Duration::from_millis(100);
    }
    trials.sort_by_key(|t| t.offset);
    trials
}

/// Waits (bounded) for a trial's process; kills it past `TRIAL_LIMIT`. It got in when the
/// echo server's answer came back through the connection the ProxyCommand passed to ssh.
fn finish(mut child: Child) -> (bool, String) {
    let deadline = Instant::now() + TRIAL_LIMIT;
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (text, echoed) = (stderr.join().unwrap(), stdout.join().unwrap());
    // A port that was open before the knock proves nothing about the knock.
    let ok = status.is_some_and(|s| s.success())
        && echoed == PING
        && !text.contains("was open before knocking");
    (ok, format!("{text}stdout: {echoed:?}"))
}

/// Fails with every unsuccessful trial's output unless all 20 got in.
fn assert_all_got_in(what: &str, trials: &[Trial], logs: impl FnOnce() -> String) {
    let failed: Vec<String> = trials
        .iter()
        .filter(|t| !t.ok)
        .map(|t| format!("at +{:?}:\n{}", t.offset, t.stderr))
        .collect();
    eprintln!(
        "{what}: {} of {MOMENTS} got in (each took {:?}); knocked more than once at {:?}",
        trials.len() - failed.len(),
        trials
            .iter()
            .map(|t| t.took.as_millis())
            .collect::<Vec<_>>(),
        trials
            .iter()
            .filter(|t| t.knocked_again())
            .map(|t| t.offset)
            .collect::<Vec<_>>()
    );
    assert!(
        failed.is_empty(),
        "{what}: {} of {MOMENTS} did not get in:\n{}\n{}",
        failed.len(),
        failed.join("\n"),
        logs()
    );
}

/// setup's iptables firewall for the knockd-based servers: the chain and ipset doors use.
fn iptables_firewall(lab: &Lab) {
    // A host firewall's script has no host part of the knockd engine behind a cloud.
    let script = Firewall::Iptables(Iptables).setup_script(
        &ProtectedPort {
            server: NAME.into(),
            port: PROTECTED,
            open_seconds: OPEN_SECONDS,
        },
        &|_| String::new(),
    );
    let out = lab.server_cmd("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Takes the client's address out of the ipset doors add it to.
fn close_ipset_grant(lab: &Lab) {
    let set = format!("knock-totp-{NAME}-v4");
    let client = lab.client_ip.to_string();
    let _ = lab
        .server_cmd("ipset")
        .args(["-exist", "del", &set, &client])
        .output();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn ssh_gets_in_at_any_moment_of_the_window_with_the_nftables_engine() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("bnft");
    let files = lab.dir.path().join("setup");
    let (period, open) = (PERIOD.to_string(), OPEN_SECONDS.to_string());
    let out = Env::new()
        .cmd()
        .args(["-q", "setup", NAME, "--secret", "-", "--period", &period])
        .args(["--open-seconds", &open, "--out"])
        .arg(&files)
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    for (file, from, to) in [
        (
            "web.toml",
            "/etc/knock-totp/web.secret",
            files.join("web.secret"),
        ),
        (
            "firewall-setup.sh",
            "/etc/knock-totp/web.nft",
            files.join("web.nft"),
        ),
    ] {
        let path = files.join(file);
        let text = read(&path);
        assert!(text.contains(from), "{file}:\n{text}");
        std::fs::write(&path, text.replace(from, &to.to_string_lossy())).unwrap();
    }
    let out = lab
        .server_cmd("sh")
        .arg(files.join("firewall-setup.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    lab.start_echo_server(PROTECTED);
    let log = lab.start_daemon(&files.join("web.toml"), ": window ");
    let client = lab.client_ip.to_string();
    let trials = twenty_moments(&lab, &|lab: &Lab| {
        let element = format!("{{ {client} }}");
        let _ = lab
            .server_cmd("nft")
            .args([
                "delete",
                "element",
                "inet",
                "knock_totp_web",
                "allowed4",
                &element,
            ])
            .output();
    });
    assert_all_got_in("nftables engine", &trials, || read(&log));
}

#[test]
fn ssh_gets_in_at_any_moment_of_the_window_with_the_knockd_engine() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("bknockd");
    iptables_firewall(&lab);
    lab.start_echo_server(PROTECTED);
    let conf = lab.knockd_conf(&[]);
    lab.start_knockd(&conf);
    let (_, pid_file) = lab.write_knockd_pid_file();
    let dir = lab.dir.path().to_path_buf();
    let secret = dir.join("web.secret");
    write_private(&secret, &format!("{RFC_SECRET}\n"));
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{NAME}\"\nsecret_file = \"{}\"\nport = {PROTECTED}\nengine = \"knockd\"\n\
             interface = \"{SERVER_IF}\"\nknockd_conf = \"{}\"\nknockd_pid_file = \"{}\"\n\
             firewall = \"iptables\"\nopen_seconds = {OPEN_SECONDS}\nseq_timeout = 2\n\
             period = {PERIOD}\n",
            secret.display(),
            dir.join("knockd.conf").display(),
            pid_file.display(),
        ),
    )
    .unwrap();
    let log = lab.start_daemon(&config, ": window ");
    let trials = twenty_moments(&lab, &close_ipset_grant);
    let logs = || format!("server:\n{}\nknockd:\n{}", read(&log), lab.knockd_output());
    assert_all_got_in("knockd engine", &trials, logs);
    // Its reloads land where clients do not knock: no knock was lost, none was repeated.
    let again: Vec<Duration> = trials
        .iter()
        .filter(|t| t.knocked_again())
        .map(|t| t.offset)
        .collect();
    assert!(
        again.is_empty(),
        "clients started at {again:?} had to knock again\n{}",
        logs()
    );
}

/// The original knocker (livingstonetech/port-knocking-totp): at every boundary it writes a
/// knockd.conf with the new window's sequence only and restarts knockd, which takes a while.
struct OriginalKnocker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OriginalKnocker {
    fn start(lab: &Lab) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let conf_path = lab.dir.path().join("original.conf");
        let out_path = lab.dir.path().join("original.out");
        let options = lab.knockd_conf(&[]);
        let mut cmd = lab.server_cmd("knockd");
        cmd.arg("-c").arg(&conf_path).args(["-v", "-D"]);
        let conf_for = move |window: Window| {
            let [a, b] = totp().ports_for(window).0;
            format!(
                "{options}[totp]\n    sequence = {a}:tcp,{b}:tcp\n    seq_timeout = 2\n    \
                 tcpflags = syn\n    start_command = ipset -exist add knock-totp-{NAME}-v4 %IP% \
                 timeout {OPEN_SECONDS}\n"
            )
        };
        let start_knockd = move |cmd: &mut std::process::Command, window: Window| -> Child {
            std::fs::write(&conf_path, conf_for(window)).unwrap();
            let out = std::fs::File::create(&out_path).unwrap();
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap();
            wait_until(
                Duration::from_secs(5),
                Duration::from_millis(10),
                || read(&out_path).contains(&format!("listening on {SERVER_IF}")),
                || format!("knockd did not start:\n{}", read(&out_path)),
            );
            child
        };
        let mut window = Window::at(unix_now().as_secs(), PERIOD);
        let mut knockd = start_knockd(&mut cmd, window);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let next = Duration::from_secs(window.end());
                std::thread::sleep(
                    next.saturating_sub(unix_now())
                        .min(Duration::from_millis(200)),
                );
                if unix_now() < next {
                    continue;
                }
                let _ = knockd.kill();
                let _ = knockd.wait();
                std::thread::sleep(RESTART_TAKES);
                window = Window::at(unix_now().as_secs(), PERIOD);
                knockd = start_knockd(&mut cmd, window);
            }
            let _ = knockd.kill();
            let _ = knockd.wait();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OriginalKnocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn ssh_gets_in_at_any_moment_of_the_window_against_the_original_knocker() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("borig");
    iptables_firewall(&lab);
    lab.start_echo_server(PROTECTED);
    let knocker = OriginalKnocker::start(&lab);
    let trials = twenty_moments(&lab, &close_ipset_grant);
    drop(knocker);
    assert_all_got_in("original knocker", &trials, || {
        read(&lab.dir.path().join("original.out"))
    });
}
