//! The README's administrator quick start, run as written: the `setup` command, then the
//! "on the server" block in the server namespace of a lab, with /etc an overlay private to it
//! (so the steps write to /etc as written without touching this machine's). Only `systemctl`
//! is stood in for (no systemd runs here): what it would start is started from the installed
//! units' ExecStart lines. Then a client enrolled from the otpauth file knocks.

use std::path::Path;
use std::time::Duration;

use crate::readme::{blocks, readme};
use crate::support::lab::{lab_available, Lab};
use crate::support::{can_run, have, stderr_of, wait_until, Env};

/// The shell block that follows the README line `line`.
fn block_after(text: &str, line: &str) -> String {
    let at = text
        .find(line)
        .unwrap_or_else(|| panic!("README has no {line:?}"));
    blocks(&text[at..], "sh")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("README has no sh block after {line:?}"))
}

/// The command of the `ExecStart=` line of a unit file.
fn exec_start(unit: &Path) -> String {
    let text = std::fs::read_to_string(unit).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{} has no ExecStart:\n{text}", unit.display()))
        .to_owned()
}

#[test]
fn the_administrator_quick_start_runs_as_written() {
    if !lab_available()
        || !can_run(
            "needs unshare (util-linux) and systemd-analyze",
            have("unshare") && have("systemd-analyze"),
        )
    {
        return;
    }
    let text = readme();
    let setup = block_after(&text, "## Quick start (administrator)");
    let on_server = block_after(&text, "Then, on the server:");
    assert!(
        on_server.contains("systemctl ") && on_server.lines().count() > 3,
        "{on_server}"
    );

    let mut lab = Lab::new("readme");
    lab.start_echo_server(22);
    let admin = Env::new();
    let work = admin.path().join("admin");
    std::fs::create_dir_all(&work).unwrap();
    // The setup line as written, run from the administrator's working directory.
    let line = setup.trim();
    let args: Vec<&str> = line
        .strip_prefix("knock-totp ")
        .unwrap_or_else(|| panic!("not a knock-totp command: {line}"))
        .split_whitespace()
        .collect();
    let out = admin.cmd().current_dir(&work).args(&args).output().unwrap();
    assert!(out.status.success(), "{line}: {}", stderr_of(&out));

    // The server block as written, but for `systemctl`: it would load the base unit and start
    // the daemon; here the installed units' ExecStart lines run instead.
    let files = work.join("web-setup");
    let steps: String = on_server
        .lines()
        .filter(|line| !line.trim_start().starts_with("systemctl "))
        .map(|line| format!("{line}\n"))
        .collect();
    let base = exec_start(&files.join("knock-totp-web-base.service"));
    let daemon = exec_start(&files.join("knock-totp-web.service"));
    let upper = lab.dir.path().join("etc-upper");
    let scratch = lab.dir.path().join("etc-work");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let script = format!(
        "set -eu\n\
         mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={scratch} /etc\n\
         cd {work}\n\
         {steps}\
         {base}\n\
         exec {daemon}\n",
        upper = upper.display(),
        scratch = scratch.display(),
        work = work.display(),
    );
    let log = lab.server_spawn(&["unshare", "--mount", "sh", "-c", &script], "admin.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || read().contains("doors in table"),
        || {
            format!(
                "the README's steps did not get the daemon running:\n{}",
                read()
            )
        },
    );
    assert!(
        !read().contains("WARNING") && !read().contains("error"),
        "the README's steps printed a warning or an error:\n{}",
        read()
    );
    assert!(
        !lab.client_can_connect(22),
        "port 22 is open before any knock"
    );

    // A client enrolled from the otpauth file, as the README's client line says.
    let user = Env::new();
    let server_ip = lab.server_ip.to_string();
    user.add_uri_host(
        "web",
        &server_ip,
        &std::fs::read_to_string(files.join("web.otpauth")).unwrap(),
    );
    let out = user
        .cmd_via(&lab.client_prefix())
        .args(["knock", "web", "--verify", "--timeout", "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr_of(&out), read());
    assert!(lab.client_can_connect(22), "the knocker cannot connect");
}
