//! Interactive use on a real terminal (a pty from `script`): the hidden secret prompt, the
//! confirmation prompts and the `code --watch` countdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{can_run, have, Env, RFC_SECRET, SHORT_SECRET};

/// Runs knock-totp on a pty, typing each of `keystrokes` after a pause; returns what the
/// terminal showed.
pub(crate) fn on_terminal(env: &Env, args: &str, keystrokes: &[&str], run_for: Duration) -> String {
    on_terminal_with(env, &[], args, keystrokes, run_for)
}

/// `on_terminal` with `extra_env` set for knock-totp.
fn on_terminal_with(
    env: &Env,
    extra_env: &[(&str, &str)],
    args: &str,
    keystrokes: &[&str],
    run_for: Duration,
) -> String {
    let bin = assert_cmd::cargo::cargo_bin("knock-totp");
    let mut child = Command::new("script")
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .envs(extra_env.iter().copied())
        .env("KNOCK_TOTP_CONFIG", env.config())
        .env("HOME", env.home())
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for keys in keystrokes {
        std::thread::sleep(Duration::from_millis(700));
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(run_for);
    drop(stdin);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hidden_prompt_and_confirmations() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    let screen = on_terminal(
        &env,
        "add web --address 127.0.0.1 --store file",
        &[&format!("{RFC_SECRET}\r")],
        Duration::from_millis(1500),
    );
    assert!(screen.contains("Base32 secret for web"), "{screen}");
    assert!(
        !screen.contains("GEZD"),
        "the prompt echoed the secret: {screen}"
    );
    env.cmd()
        .args(["code", "web", "--at", "59"])
        .assert()
        .stdout("287082\n");

    // A bare --secret asks on the terminal, hidden, as no source does.
    let screen = on_terminal(
        &env,
        "add bare --address 127.0.0.1 --store file --secret",
        &[&format!("{SHORT_SECRET}\r")],
        Duration::from_millis(1500),
    );
    assert!(screen.contains("Base32 secret for bare"), "{screen}");
    assert!(
        !screen.contains("LPI3"),
        "the prompt echoed the secret: {screen}"
    );
    env.cmd()
        .args(["code", "bare", "--at", "59"])
        .assert()
        .stdout("693974\n");

    // `show --qr` asks first; answering no reveals nothing.
    let screen = on_terminal(&env, "show web --qr", &["n\r"], Duration::from_millis(1000));
    assert!(
        screen.contains("reveals") || screen.contains("secret"),
        "{screen}"
    );
    assert!(!screen.contains("GEZD"), "{screen}");

    let screen = on_terminal(&env, "remove web", &["y\r"], Duration::from_millis(1500));
    assert!(screen.contains("Remove host web"), "{screen}");
    env.cmd().args(["show", "web"]).assert().code(3);
}

#[test]
fn watch_redraws_a_countdown() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let screen = on_terminal(&env, "code web --watch", &[], Duration::from_millis(2500));
    let redraws = screen.matches("\r\x1b[2K").count();
    assert!(redraws >= 2, "expected a redraw each second: {screen:?}");
    assert!(screen.contains("[#") && screen.contains(" s"), "{screen:?}");
}

/// `setup --out` on a terminal still shows the QR code and the URI to scan, as without --out.
#[test]
fn setup_out_on_a_terminal_shows_the_uri() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("out");
    let screen = on_terminal(
        &env,
        &format!("setup web --out {}", dir.display()),
        &[],
        Duration::from_secs(2),
    );
    let uri = std::fs::read_to_string(dir.join("web.otpauth")).unwrap();
    assert!(
        uri.starts_with("otpauth://totp/knock-totp:web?secret="),
        "{uri}"
    );
    assert!(screen.contains(uri.trim()), "{screen}");
    assert!(screen.contains('\u{2588}'), "no QR code: {screen}");
}

/// `add --uri -` on a terminal asks with a hidden prompt instead of echoing the pasted URI.
#[test]
fn uri_from_stdin_on_a_terminal_is_hidden() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    let uri = format!("otpauth://totp/knock-totp:web?secret={RFC_SECRET}&issuer=knock-totp");
    let screen = on_terminal(
        &env,
        "add web --address 127.0.0.1 --store file --uri -",
        &[&format!("{uri}\r")],
        Duration::from_millis(1500),
    );
    assert!(screen.contains("Paste the otpauth URI"), "{screen}");
    assert!(!screen.contains("GEZD"), "the URI was echoed: {screen}");
    env.cmd()
        .args(["code", "web", "--at", "59"])
        .assert()
        .stdout("287082\n");
}

/// A machine without a usable keyring says so before it asks for the secret.
#[test]
fn a_missing_keyring_is_reported_before_the_prompt() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    let screen = on_terminal_with(
        &env,
        &[(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-test-bus",
        )],
        "add web --address 127.0.0.1",
        &[],
        Duration::from_millis(1500),
    );
    assert!(screen.contains("keyring is unavailable"), "{screen}");
    assert!(!screen.contains("Base32 secret for"), "{screen}");
}
