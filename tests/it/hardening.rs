//! Faults around the configuration: concurrent writers, interrupted writes, odd files and input.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use predicates::prelude::*;

use crate::support::{stderr_of, Env, RFC_SECRET};

fn add_command(env: &Env, name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("knock-totp"));
    cmd.env("KNOCK_TOTP_CONFIG", env.config())
        .env("HOME", env.home())
        .args([
            "add",
            name,
            "--address",
            "127.0.0.1",
            "--store",
            "file",
            "--secret",
            RFC_SECRET,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn names(env: &Env) -> Vec<String> {
    let out = env.cmd().args(["list", "--names"]).output().unwrap();
    assert!(
        out.status.success(),
        "hosts.toml unreadable: {}",
        stderr_of(&out)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn concurrent_adds_all_survive() {
    let env = Env::new();
    let children: Vec<_> = (0..12)
        .map(|i| add_command(&env, &format!("host{i:02}")).spawn().unwrap())
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let expected: Vec<String> = (0..12).map(|i| format!("host{i:02}")).collect();
    assert_eq!(names(&env), expected);
}

#[test]
fn killed_writers_never_leave_a_broken_or_shorter_file() {
    let env = Env::new();
    env.add_file_host("first", "127.0.0.1", RFC_SECRET);
    let mut committed = vec!["first".to_owned()];
    for i in 0..25u64 {
        let name = format!("h{i:02}");
        let mut child = add_command(&env, &name).spawn().unwrap();
        // Kill at varying points of the process's life, some before and some after the save.
        std::thread::sleep(Duration::from_micros(300 * (i % 9) + 100 * i));
        let _ = child.kill();
        let _ = child.wait();
        let now = names(&env);
        for name in &committed {
            assert!(now.contains(name), "lost {name}: {now:?}");
        }
        committed = now;
    }
    let leftovers: Vec<_> = fs::read_dir(env.config().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    // A killed writer may leave its temporary file, never a half-written hosts.toml.
    for tmp in leftovers {
        assert!(tmp.starts_with(".hosts.toml.tmp-"), "{tmp}");
    }
}

#[test]
fn truncated_and_garbage_hosts_files_are_refused_and_kept() {
    let full = "[hosts.web]\naddress = \"web.example\"\nport = 22\n";
    for content in [
        &full[..20],
        "\u{0}\u{1}garbage",
        "[hosts.web]\naddress = 7\n",
        "hosts = 3\n",
    ] {
        let env = Env::new();
        fs::create_dir_all(env.config().parent().unwrap()).unwrap();
        fs::write(env.config(), content).unwrap();
        let out = env
            .cmd()
            .args([
                "add",
                "x",
                "--address",
                "x.example",
                "--store",
                "file",
                "--secret",
                "-",
            ])
            .write_stdin(RFC_SECRET)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{content:?}: {}",
            stderr_of(&out)
        );
        assert!(
            stderr_of(&out).contains("hosts.toml"),
            "{}",
            stderr_of(&out)
        );
        assert_eq!(fs::read_to_string(env.config()).unwrap(), content);
    }
}

#[test]
fn non_utf8_hosts_file_and_stdin() {
    let env = Env::new();
    fs::create_dir_all(env.config().parent().unwrap()).unwrap();
    fs::write(env.config(), b"\xff\xfe[hosts]").unwrap();
    env.cmd()
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("UTF-8"));

    let env = Env::new();
    env.cmd()
        .args([
            "add",
            "x",
            "--address",
            "x.example",
            "--store",
            "file",
            "--secret",
            "-",
        ])
        .write_stdin(&b"GEZD\xffGNBV"[..])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("UTF-8"));
}

#[test]
fn huge_stdin_is_refused() {
    let env = Env::new();
    let huge = "A".repeat(1 << 20);
    env.cmd()
        .args([
            "add",
            "x",
            "--address",
            "x.example",
            "--store",
            "file",
            "--secret",
            "-",
        ])
        .write_stdin(huge)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("too long"));
    assert!(!env.config().exists());
}

#[test]
fn config_dir_that_cannot_be_created() {
    let env = Env::new();
    let blocker = env.path().join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    env.cmd()
        .env("KNOCK_TOTP_CONFIG", blocker.join("hosts.toml"))
        .args([
            "add",
            "x",
            "--address",
            "x.example",
            "--store",
            "file",
            "--secret",
            "-",
        ])
        .write_stdin(RFC_SECRET)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not-a-dir"));
}

#[test]
fn times_far_from_now() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    // Past 2106 (beyond 32-bit unix time) is fine: RFC 6238's own vector is in 2603.
    env.cmd()
        .args(["code", "web", "--at", "20000000000"])
        .assert()
        .success()
        .stdout("353130\n");
    env.cmd()
        .args(["code", "web", "--at", "2200-01-01T00:00:00Z"])
        .assert()
        .success();
    env.cmd()
        .args(["code", "web", "--at", "1969-12-31T23:59:59Z"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("before 1970"));
    env.cmd()
        .args(["code", "web", "--at", "999999999999999"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("9999"));
}

/// A file-store secret that others can read (a restore or a dotfile sync with a loose mode)
/// is refused: exit 2, one line naming the file and its mode, the chmod that fixes it.
#[test]
fn a_store_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let path = env.config().parent().unwrap().join("secrets/web");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.cmd().args(["code", "web"]).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mode 644"), "{stderr}");
    assert!(
        stderr.contains(&format!("hint: chmod 600 {}", path.display())),
        "{stderr}"
    );
    assert!(!stderr.contains(RFC_SECRET));
    assert!(out.stdout.is_empty());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    env.cmd().args(["code", "web"]).assert().success();
}

/// Enrolling with no keyring fails and leaves nothing behind: no empty hosts.toml.lock, no
/// configuration directory it made; after commands that succeeded, no lock file either.
#[test]
fn a_failed_enrollment_leaves_no_lock_file() {
    let env = Env::new();
    let config_dir = env.config().parent().unwrap().to_path_buf();
    let add_to_keyring = |name: &str| {
        env.cmd()
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", env.path().join("no-session"))
            .args(["add", name, "--address", "127.0.0.1", "--secret", "-"])
            .write_stdin(RFC_SECRET)
            .output()
            .unwrap()
    };
    let out = add_to_keyring("web");
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("keyring"), "{}", stderr_of(&out));
    assert!(!config_dir.exists(), "left behind: {config_dir:?}");

    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    let out = add_to_keyring("db");
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    let mut left: Vec<String> = fs::read_dir(&config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["hosts.toml", "secrets"]);
    assert_eq!(names(&env), ["web"]);
}
