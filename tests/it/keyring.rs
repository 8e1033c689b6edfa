//! The keyring store against a real Secret Service (gnome-keyring on a private session bus;
//! scripts/with-keyring.sh provides one), across separate processes.

use crate::support::{can_run, have, stdout_of, Env, RFC_SECRET};

fn secret_service_available() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && have("secret-tool")
        && std::process::Command::new("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

fn lookup(host: &str) -> Option<String> {
    let out = std::process::Command::new("secret-tool")
        .args(["lookup", "service", "knock-totp", "username", host])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| stdout_of(&out).trim().to_owned())
}

#[test]
fn keyring_round_trip_across_processes() {
    if !can_run(
        "needs a Secret Service on the session bus (run under scripts/with-keyring.sh)",
        secret_service_available(),
    ) {
        return;
    }
    let env = Env::new();
    let host = format!("kr-{}", std::process::id());
    env.cmd()
        .args(["add", &host, "--address", "127.0.0.1", "--secret", "-"])
        .write_stdin(RFC_SECRET)
        .assert()
        .success();
    // The secret is really in the Secret Service, not in a process-local mock.
    assert_eq!(lookup(&host).as_deref(), Some(RFC_SECRET));
    assert!(!std::fs::read_to_string(env.config())
        .unwrap()
        .contains("GEZD"));

    // A second process reads what the first stored.
    env.cmd()
        .args(["code", &host, "--at", "1111111109"])
        .assert()
        .success()
        .stdout("081804\n");
    env.cmd()
        .args(["ports", &host, "--at", "1111111109"])
        .assert()
        .success()
        .stdout("8180 1804\n");

    env.cmd()
        .args(["remove", &host, "--yes"])
        .assert()
        .success();
    assert_eq!(lookup(&host), None);
}

#[test]
fn keyring_host_without_a_bus_exits_4() {
    if !can_run(
        "needs a Secret Service on the session bus (run under scripts/with-keyring.sh)",
        secret_service_available(),
    ) {
        return;
    }
    let env = Env::new();
    let host = format!("kr-nobus-{}", std::process::id());
    env.cmd()
        .args(["add", &host, "--address", "127.0.0.1", "--secret", "-"])
        .write_stdin(RFC_SECRET)
        .assert()
        .success();
    env.cmd()
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-test-bus",
        )
        .args(["code", &host])
        .assert()
        .code(4);
    env.cmd()
        .args(["remove", &host, "--yes"])
        .assert()
        .success();
}

/// Without a bus, `add` fails on the keyring before it reads the secret: an empty stdin is not
/// what it complains about.
#[test]
fn add_checks_the_keyring_before_reading_the_secret() {
    let env = Env::new();
    let output = env
        .cmd()
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-test-bus",
        )
        .args(["add", "nobus", "--address", "127.0.0.1", "--uri", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = crate::support::stderr_of(&output);
    assert!(stderr.contains("keyring is unavailable"), "{stderr}");
    assert!(!stderr.contains("stdin"), "{stderr}");
}
