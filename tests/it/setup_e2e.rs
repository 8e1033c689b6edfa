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
    let out_dir = admin.path().join("web-setup");
    let png = admin.path().join("web.png");

    // setup's knockd.conf holds the current window's door only (the daemon adds the
    // neighbours), so start early in a window.
    if seconds_left_in_window() < 12 {
        std::thread::sleep(Duration::from_secs(seconds_left_in_window() + 1));
    }
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
            "--interface",
            SERVER_IF,
        ])
        .args(["--open-seconds", "20", "--out"])
        .arg(&out_dir)
        .arg("--qr-png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

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
    assert!(stdout_of(&out).contains(&uri));

    // The administrator puts the files in place on the server.
    let script = out_dir.join("firewall-setup.sh");
    let status = lab.server_cmd("sh").arg(&script).status().unwrap();
    assert!(status.success(), "firewall-setup.sh failed");
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
    user.cmd()
        .args([
            "add",
            "web",
            "--address",
            &server_ip,
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(uri.as_str())
        .assert()
        .success();
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
    let rules = lab.server_rules();
    assert!(
        rules.contains(&format!("-s {}/32", lab.client_ip)),
        "the door opened the port for the knocker only:\n{rules}"
    );
}
