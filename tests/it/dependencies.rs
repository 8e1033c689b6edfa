//! What the binary is built from: crates in the dependency tree that we chose to keep out.

use std::os::unix::fs::PermissionsExt;

use crate::support::{stderr_of, stdout_of};

/// The crates (name only) the release binary is built from on this machine's target.
fn normal_dependencies() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn png_is_written_without_the_image_crate() {
    let crates = normal_dependencies();
    assert!(crates.iter().any(|c| c == "png"), "{crates:?}");
    for unwanted in ["image", "moxcms"] {
        assert!(
            !crates.iter().any(|c| c == unwanted),
            "{unwanted} is in the dependency tree again"
        );
    }
}

/// Runs scripts/deny.sh with stand-ins for cargo and cargo-deny that log their arguments, and
/// CARGO_HOME in `cargo_home`. Returns the script's output and the logged cargo calls.
fn run_deny_script(cargo_home: &std::path::Path) -> (std::process::Output, String) {
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls");
    for name in ["cargo", "cargo-deny"] {
        let path = bin.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{name} $*\" >>'{}'\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/deny.sh"),
    )
    .env("PATH", path)
    .env("CARGO_HOME", cargo_home)
    .env_remove("KNOCK_TOTP_DENY_FETCH")
    .output()
    .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    (out, calls)
}

#[test]
fn deny_script_says_plainly_when_advisories_were_not_checked() {
    let cargo_home = tempfile::tempdir().unwrap();
    let (out, calls) = run_deny_script(cargo_home.path());
    assert!(out.status.success(), "{out:?}");
    assert!(calls.contains("check licenses bans sources"), "{calls}");
    assert!(!calls.contains("advisories"), "{calls}");
    let output = stdout_of(&out) + &stderr_of(&out);
    assert_eq!(
        output
            .matches("WARNING: security advisories were NOT checked")
            .count(),
        1,
        "{output}"
    );
}

#[test]
fn deny_script_checks_advisories_offline_when_a_database_is_on_disk() {
    let cargo_home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(
        cargo_home
            .path()
            .join("advisory-dbs/advisory-db-3157b0e258782691/crates"),
    )
    .unwrap();
    let (out, calls) = run_deny_script(cargo_home.path());
    assert!(out.status.success(), "{out:?}");
    assert!(!stdout_of(&out).contains("NOT checked"), "{out:?}");
    // The flags cargo-deny 0.20 takes: `--offline` (`check --disable-fetch` is gone).
    assert!(
        calls
            .lines()
            .any(|l| l == "cargo deny --offline --log-level error check advisories"),
        "{calls}"
    );
}

/// Symbols of libdbus's C API (any one is proof that libdbus is linked in).
const LIBDBUS_SYMBOLS: [&str; 3] = [
    "dbus_connection_open",
    "dbus_message_new_method_call",
    "dbus_bus_get",
];

#[test]
fn no_c_libdbus_is_linked() {
    let crates = normal_dependencies();
    assert!(crates.iter().any(|c| c == "zbus"), "{crates:?}");
    for unwanted in ["libdbus-sys", "dbus", "dbus-secret-service"] {
        assert!(
            !crates.iter().any(|c| c == unwanted),
            "{unwanted} is in the dependency tree again"
        );
    }
    let binary = env!("CARGO_BIN_EXE_knock-totp");
    let ldd = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap();
    let libraries = stdout_of(&ldd);
    assert!(ldd.status.success(), "{ldd:?}");
    assert!(!libraries.contains("libdbus"), "{libraries}");
    // Not stripped in test builds: a statically linked (vendored) libdbus shows its symbols.
    let nm = std::process::Command::new("nm")
        .arg(binary)
        .output()
        .unwrap();
    assert!(nm.status.success(), "{nm:?}");
    let symbols = stdout_of(&nm);
    assert!(symbols.lines().count() > 1000, "nm saw too few symbols");
    for symbol in LIBDBUS_SYMBOLS {
        assert!(
            !symbols
                .lines()
                .any(|l| l.split_whitespace().last() == Some(symbol)),
            "{symbol} is linked in"
        );
    }
}
