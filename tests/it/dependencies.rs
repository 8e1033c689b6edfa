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

/// The modules of src/server and the arrows between them.
mod server {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// Every module of src/server, ranked: a module imports only modules of its rank or
    /// below. `mod` is src/server/mod.rs and what it defines (`load_secret_file`).
    ///
    /// config and users sit above the backends: the config's fields are the backends' own
    /// types (`FirewallKind` from `firewall_backends!`, `AwsTarget`, ... which implement
    /// `Backend`), while the backends name no config, only paths and the clouds' CLIs.
    const RANKING: &[(u8, &[&str])] = &[
        (
            0,
            &[
                "mod", "paths", "doors", "state", "schedule", "signals", "retry", "notify",
            ],
        ),
        (1, &["firewall", "cloud"]),
        (2, &["config", "users"]),
        (3, &["engine"]),
        (4, &["rotation", "systemd", "artifacts"]),
    ];

    fn rank(module: &str) -> Option<u8> {
        RANKING
            .iter()
            .find(|(_, modules)| modules.contains(&module))
            .map(|(rank, _)| *rank)
    }

    fn server_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server")
    }

    /// The top-level module of src/server a file belongs to (`mod` for src/server/mod.rs).
    fn module_of(file: &Path) -> String {
        let relative = file.strip_prefix(server_dir()).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let first = first.to_str().unwrap();
        first.strip_suffix(".rs").unwrap_or(first).to_owned()
    }

    fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }

    /// The top-level modules of src/server a text names as `crate::server::X` (in `use`
    /// lines, groups `crate::server::{x, y::z}` included, and in paths in the code). A name
    /// that is no module of src/server is an item of src/server/mod.rs: `mod`.
    fn imported(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = Vec::new();
        for (at, _) in code.match_indices("crate::server::") {
            let rest = &code[at + "crate::server::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut part = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => names.push(std::mem::take(&mut part)),
                        _ if depth == 0 => part.push(c),
                        _ => {}
                    }
                }
                names.push(part);
            } else {
                names.push(rest.to_owned());
            }
        }
        names
            .iter()
            .filter_map(|name| {
                let name: String = name
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .map(|name| {
                if modules.contains(&name) {
                    name
                } else {
                    "mod".to_owned()
                }
            })
            .collect()
    }

    #[test]
    fn imports_point_down_the_ranking() {
        let mut files = Vec::new();
        rust_files(&server_dir(), &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
        for module in &modules {
            assert!(
                rank(module).is_some(),
                "src/server/{module} is not in the ranking: give it its place in RANKING"
            );
        }
        let mut upward = Vec::new();
        for file in &files {
            let from = module_of(file);
            let text = std::fs::read_to_string(file).unwrap();
            for to in imported(&text, &modules) {
                if to != from && rank(&to) > rank(&from) {
                    upward.push(format!(
                        "{} imports {to} (rank {}) from {from} (rank {})",
                        file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                            .unwrap()
                            .display(),
                        rank(&to).unwrap(),
                        rank(&from).unwrap(),
                    ));
                }
            }
        }
        assert!(
            upward.is_empty(),
            "arrows pointing up:\n{}",
            upward.join("\n")
        );
    }
}
