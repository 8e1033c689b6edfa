//! Client commands against the file store: add, list, show, remove, code, ports.

use std::fs;

use predicates::prelude::*;

use crate::support::{stderr_of, stdout_of, Env, RFC_SECRET, SHORT_SECRET};

#[test]
fn ports_at_rfc_time() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    env.cmd()
        .args(["ports", "web", "--at", "1111111109"])
        .assert()
        .success()
        .stdout("8180 1804\n");
}

#[test]
fn spec_vectors_through_the_binary() {
    let env = Env::new();
    env.add_file_host("rfc", "127.0.0.1", RFC_SECRET);
    env.add_file_host("short", "127.0.0.1", SHORT_SECRET);
    for (host, time, code, ports) in [
        ("rfc", "59", "287082", "2870 7082"),
        ("rfc", "1234567890", "005924", "5900 5924"),
        ("rfc", "20000000000", "353130", "3531 3130"),
        ("short", "1740012930", "000418", "4000 4180"),
        ("short", "1740134610", "000024", "1000 2400"),
        ("short", "2025-02-19T23:45:00Z", "770000", "7700 1000"),
    ] {
        env.cmd()
            .args(["code", host, "--at", time])
            .assert()
            .success()
            .stdout(format!("{code}\n"));
        env.cmd()
            .args(["ports", host, "--at", time])
            .assert()
            .success()
            .stdout(format!("{ports}\n"));
    }
}

#[test]
fn ports_warns_when_a_window_knocks_one_port_twice() {
    let env = Env::new();
    env.add_file_host("short", "127.0.0.1", SHORT_SECRET);
    // 1740149940 -> 979797 -> 9797 9797: servers open no door for it.
    env.cmd()
        .args(["ports", "short", "--at", "1740149940"])
        .assert()
        .success()
        .stdout("9797 9797\n")
        .stderr(
            predicate::str::contains("one port twice or two adjacent ports")
                .and(predicate::str::contains("knock-totp ports short --next")),
        );
    env.cmd()
        .args(["ports", "short", "--at", "1740149910"])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn json_output() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let out = env
        .cmd()
        .args(["code", "web", "--at", "1111111109", "--json"])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["host"], "web");
    assert_eq!(value["code"], "081804");
    assert_eq!(value["ports"], serde_json::json!([8180, 1804]));
    assert_eq!(value["window"], 37037036);
    assert_eq!(value["seconds_left"], 1);

    let out = env
        .cmd()
        .args(["ports", "web", "--at", "1111111109", "--next", "--json"])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["code"], "050471");
    assert_eq!(value["window"], 37037037);
}

#[test]
fn next_window_ports() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    env.cmd()
        .args(["ports", "web", "--next", "--at", "1111111109"])
        .assert()
        .success()
        .stdout("5040 4710\n");
}

#[test]
fn ports_from_code_needs_no_host() {
    let env = Env::new();
    for (code, ports) in [
        ("970113", "9701 1130"),
        ("000000", "1000 1000"),
        ("001000", "1000 1000"),
    ] {
        env.cmd()
            .args(["ports", "--from-code", code])
            .assert()
            .success()
            .stdout(format!("{ports}\n"));
    }
    env.cmd()
        .args(["ports", "--from-code", "970113"])
        .assert()
        .success()
        .stderr("");
    // 080808 -> 8080 8080: one port twice, as `ports NAME` warns.
    for code in ["080808", "979797"] {
        env.cmd()
            .args(["ports", "--from-code", code])
            .assert()
            .success()
            .stderr(
                predicate::str::contains("one port twice or two adjacent ports")
                    .and(predicate::str::contains("next code")),
            );
    }
    env.cmd()
        .args(["ports", "--from-code", "12345"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("six digits"));
    assert!(!env.config().exists());
}

#[test]
fn authenticator_view_lists_every_host() {
    let env = Env::new();
    env.add_file_host("a", "127.0.0.1", RFC_SECRET);
    env.add_file_host("b", "127.0.0.1", SHORT_SECRET);
    let out = env.cmd().args(["code", "--at", "59"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout_of(&out);
    assert!(text.contains("a  287082  2870 7082"), "{text}");
    assert!(text.contains("b  693974  6939 3974"), "{text}");
}

#[test]
fn add_list_show_remove() {
    let env = Env::new();
    env.cmd()
        .args([
            "add",
            "web",
            "--address",
            "example.com",
            "--port",
            "2222",
            "--user",
            "alice",
        ])
        .args(["--delay-ms", "50", "--store", "file", "--secret", "-"])
        .write_stdin(format!("{RFC_SECRET}\n"))
        .assert()
        .success();
    let list = env.cmd().arg("list").output().unwrap();
    let text = stdout_of(&list);
    assert!(
        text.contains("web") && text.contains("example.com") && text.contains("2222"),
        "{text}"
    );
    assert!(!text.contains("GEZD"));

    let json = env.cmd().args(["list", "--json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value[0]["user"], "alice");
    assert_eq!(value[0]["delay_ms"], 50);
    env.cmd()
        .args(["list", "--names"])
        .assert()
        .success()
        .stdout("web\n");

    let show = env.cmd().args(["show", "web"]).output().unwrap();
    assert!(stdout_of(&show).contains("2222"));
    assert!(!stdout_of(&show).contains("GEZD"));

    env.cmd()
        .args(["show", "web", "--secret", "--yes"])
        .assert()
        .success()
        .stdout(format!("{RFC_SECRET}\n"));
    env.cmd()
        .args(["show", "web", "--secret"])
        .assert()
        .code(2)
        .stdout("");

    // Without a terminal and without --yes, remove refuses.
    env.cmd().args(["remove", "web"]).assert().code(2);
    env.cmd()
        .args(["remove", "web", "--yes"])
        .assert()
        .success();
    env.cmd().args(["show", "web"]).assert().code(3);
    assert!(!env.config().parent().unwrap().join("secrets/web").exists());
}

#[test]
fn show_qr_prints_the_enrollment_uri() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let out = env
        .cmd()
        .args(["show", "web", "--qr", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout_of(&out);
    assert!(text.contains(
        "otpauth://totp/knock-totp:web?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=knock-totp&algorithm=SHA1&digits=6&period=30"
    ));
    assert!(text.contains('▀') || text.contains('▄') || text.contains('█'));
}

#[test]
fn secret_sources() {
    let env = Env::new();
    // --uri - from stdin takes algorithm and period from the URI.
    env.cmd()
        .args([
            "add",
            "u",
            "--address",
            "10.0.0.1",
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(
            "otpauth://totp/knock-totp:u?secret=gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq&period=60",
        )
        .assert()
        .success();
    let show = env.cmd().args(["show", "u", "--json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(value["period"], 60);

    // Another issuer's URI is added, with one WARNING line naming the issuer.
    let out = env
        .cmd()
        .args([
            "add",
            "g",
            "--address",
            "10.0.0.1",
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(format!(
            "otpauth://totp/GitHub:alice?secret={RFC_SECRET}&issuer=GitHub"
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let warnings: Vec<_> = stderr.lines().filter(|l| l.contains("WARNING")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("GitHub's, not knock-totp's"),
        "{stderr}"
    );
    assert!(!stderr.contains(RFC_SECRET), "{stderr}");
    // knock-totp's own URI (and one without an issuer, above) adds without a warning.
    env.cmd()
        .args([
            "add",
            "k",
            "--address",
            "10.0.0.1",
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(format!(
            "otpauth://totp/knock-totp:k?secret={RFC_SECRET}&issuer=knock-totp"
        ))
        .assert()
        .success()
        .stderr(predicate::str::contains("WARNING").not());

    // --secret VALUE works but warns about shell history.
    env.cmd()
        .args([
            "add",
            "v",
            "--address",
            "::1",
            "--store",
            "file",
            "--secret",
            RFC_SECRET,
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("shell history"));

    // --secret-file
    let file = env.path().join("secret.txt");
    fs::write(&file, format!("{SHORT_SECRET}\n")).unwrap();
    env.cmd()
        .args([
            "add",
            "w",
            "--address",
            "w.example",
            "--store",
            "file",
            "--secret-file",
        ])
        .arg(&file)
        .assert()
        .success();
    env.cmd()
        .args(["code", "w", "--at", "59"])
        .assert()
        .stdout("693974\n");

    // A bare --secret, the way users type it, asks: stdin when it is not a terminal.
    env.cmd()
        .args([
            "add",
            "bare",
            "--address",
            "bare.example",
            "--store",
            "file",
            "--secret",
        ])
        .write_stdin(format!("{SHORT_SECRET}\n"))
        .assert()
        .success()
        .stderr(predicate::str::contains("shell history").not());
    env.cmd()
        .args(["code", "bare", "--at", "59"])
        .assert()
        .stdout("693974\n");

    // No source and no terminal: a clear error, nothing written.
    env.cmd()
        .args(["add", "x", "--address", "x.example", "--store", "file"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--secret -"));
    env.cmd().args(["show", "x"]).assert().code(3);
}

#[test]
fn force_replaces_an_existing_host() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    env.cmd()
        .args([
            "add",
            "web",
            "--address",
            "127.0.0.2",
            "--store",
            "file",
            "--secret",
            "-",
            "--force",
        ])
        .write_stdin(SHORT_SECRET)
        .assert()
        .success();
    env.cmd()
        .args(["code", "web", "--at", "59"])
        .assert()
        .stdout("693974\n");
}

#[test]
fn duplicate_host_without_force_keeps_the_old_one() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let before = fs::read(env.config()).unwrap();
    env.cmd()
        .args([
            "add",
            "web",
            "--address",
            "10.1.1.1",
            "--store",
            "file",
            "--secret",
            "-",
        ])
        .write_stdin(SHORT_SECRET)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(fs::read(env.config()).unwrap(), before);
    env.cmd()
        .args(["code", "web", "--at", "59"])
        .assert()
        .stdout("287082\n");
}

#[test]
fn malformed_hosts_file_is_reported_and_kept() {
    let env = Env::new();
    fs::create_dir_all(env.config().parent().unwrap()).unwrap();
    let garbage = "[hosts.web]\naddress = \"x\"\nport = \"twenty-two\"\n";
    fs::write(env.config(), garbage).unwrap();
    let out = env
        .cmd()
        .args([
            "add",
            "other",
            "--address",
            "o.example",
            "--store",
            "file",
            "--secret",
            "-",
        ])
        .write_stdin(SHORT_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("hosts.toml:3:"), "{err}");
    assert_eq!(
        err.lines().next().unwrap().matches("knock-totp:").count(),
        1
    );
    assert_eq!(fs::read_to_string(env.config()).unwrap(), garbage);
    env.cmd().arg("list").assert().code(2);
}

#[cfg(unix)]
#[test]
fn unreadable_hosts_file_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    fs::create_dir_all(env.config()).unwrap();
    env.cmd()
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a directory"));
    fs::remove_dir(env.config()).unwrap();
    if crate::support::is_root() {
        return; // root reads anything; the mode check below would prove nothing
    }
    fs::write(env.config(), "").unwrap();
    fs::set_permissions(env.config(), fs::Permissions::from_mode(0o000)).unwrap();
    env.cmd()
        .arg("list")
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read"));
}

#[test]
fn keyring_store_without_a_session_bus_fails_clearly() {
    let env = Env::new();
    let out = env
        .cmd()
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-test-bus",
        )
        .env_remove("DISPLAY")
        .args(["add", "web", "--address", "127.0.0.1", "--secret", "-"])
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("keyring is unavailable"), "{err}");
    assert!(err.contains("--store file"), "{err}");
    assert!(!err.contains("GEZD"));
    assert!(
        !env.config().exists(),
        "a profile without its secret was written"
    );
}

#[test]
fn secret_store_setting_in_hosts_toml_picks_the_file_store() {
    let env = Env::new();
    fs::create_dir_all(env.config().parent().unwrap()).unwrap();
    fs::write(env.config(), "secret_store = \"file\"\n").unwrap();
    env.cmd()
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-test-bus",
        )
        .args(["add", "web", "--address", "127.0.0.1", "--secret", "-"])
        .write_stdin(RFC_SECRET)
        .assert()
        .success();
    assert!(env.config().parent().unwrap().join("secrets/web").exists());
    let toml = fs::read_to_string(env.config()).unwrap();
    assert!(toml.contains("secret_store = \"file\""), "{toml}");
}

#[test]
fn broken_pipe_is_success() {
    let env = Env::new();
    for i in 0..50 {
        env.add_file_host(&format!("h{i}"), "127.0.0.1", RFC_SECRET);
    }
    // Enough output to overflow the pipe after `head` has gone.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; for i in $(seq 1 20); do KNOCK_TOTP_CONFIG={} {} code --at 59; done | head -1 >/dev/null",
            env.config().display(),
            assert_cmd::cargo::cargo_bin("knock-totp").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}
