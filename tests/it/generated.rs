//! Committed generated files (completions/, man/) match what the code generates now.
//! `KNOCK_TOTP_BLESS=1 cargo test` rewrites them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{can_run, have, stderr_of, stdout_of, Env, RFC_SECRET};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("KNOCK_TOTP_BLESS").is_some()
}

/// Compares (or, when blessing, rewrites) every file of `dir` against `expected`; a file in
/// `dir` that is no longer generated is drift too.
fn check_dir(dir: &Path, expected: &[(String, String)]) {
    if blessing() {
        fs::create_dir_all(dir).unwrap();
        for entry in fs::read_dir(dir).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in expected {
            fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    let mut stale: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run KNOCK_TOTP_BLESS=1 cargo test", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (name, text) in expected {
        let path = dir.join(name);
        let committed = fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == *text,
            "{} is out of date; run KNOCK_TOTP_BLESS=1 cargo test",
            path.display()
        );
        stale.retain(|s| s != name);
    }
    assert!(stale.is_empty(), "not generated any more: {stale:?}");
}

#[test]
fn completions_are_current() {
    let expected: Vec<(String, String)> = knock_totp::cli::completions::SHELLS
        .iter()
        .map(|(shell, file)| {
            (
                file.to_string(),
                knock_totp::cli::completions::script(*shell),
            )
        })
        .collect();
    check_dir(&root().join("completions"), &expected);
}

#[test]
fn packaged_systemd_unit_is_current() {
    let unit = knock_totp::server::systemd::template_unit(Path::new("/usr/bin/knock-totp"));
    assert!(unit.contains("ExecStart=/usr/bin/knock-totp server --config /etc/knock-totp/%i.toml"));
    assert!(unit.contains("LoadCredential=secret:/etc/knock-totp/%i.secret"));
    assert!(
        unit.contains("systemctl enable --now knock-totp-server@NAME"),
        "{unit}"
    );
    check_dir(
        &root().join("contrib"),
        &[("knock-totp-server@.service".to_owned(), unit)],
    );
}

#[test]
fn man_pages_are_current() {
    check_dir(&root().join("man"), &knock_totp::cli::manpages::pages());
}

/// The top-level help, the man page and the package descriptions name the default engine
/// (nftables) and knockd as the compatible one, and do not call the tool a knockd rotation
/// server; the man page says which engine refuses a replayed knock.
#[test]
fn descriptions_name_the_nftables_engine() {
    let help = stdout_of(&Env::new().cmd().arg("--help").output().unwrap());
    let short_help = stdout_of(&Env::new().cmd().arg("-h").output().unwrap());
    let pages = knock_totp::cli::manpages::pages();
    let man = &pages
        .iter()
        .find(|(name, _)| name == "knock-totp.1")
        .expect("knock-totp.1")
        .1;
    let man = man.replace("\\-", "-");
    let cargo = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let field = |key: &str| -> String {
        let start = cargo
            .find(&format!("\n{key} = "))
            .unwrap_or_else(|| panic!("Cargo.toml has no {key}"));
        let rest = &cargo[start + key.len() + 4..];
        let end = match rest.strip_prefix("\"\"\"") {
            Some(long) => long.find("\"\"\"").unwrap() + 6,
            None => rest.find('\n').unwrap(),
        };
        rest[..end].replace("\\\n", "").replace('\n', " ")
    };
    let texts = [
        ("--help", help),
        ("-h", short_help),
        ("man page", man.clone()),
        ("Cargo.toml description", field("description")),
        ("Debian extended-description", field("extended-description")),
    ];
    for (what, text) in &texts {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("nftables"),
            "{what} does not name nftables:\n{flat}"
        );
        assert!(
            flat.contains("knockd"),
            "{what} does not name knockd:\n{flat}"
        );
        for stale in [
            "knockd rotation server",
            "knock sequences for knockd",
            "rotates knockd's sequence for the administrator",
            "template unit for knockd-engine servers",
        ] {
            assert!(
                !flat.contains(stale),
                "{what} still says {stale:?}:\n{flat}"
            );
        }
    }
    let security = man
        .split(".SH SECURITY")
        .nth(1)
        .expect("a SECURITY section");
    let security = security.split(".SH").next().unwrap();
    let flat = security.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("replayed from elsewhere is refused"),
        "{flat}"
    );
    assert!(
        flat.contains("The knockd engine does not refuse it"),
        "{flat}"
    );
}

#[test]
fn man_pages_render_without_warnings() {
    if !can_run(
        "mandoc is not installed (apt-get install mandoc)",
        have("mandoc"),
    ) {
        return;
    }
    for (name, text) in knock_totp::cli::manpages::pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&name);
        fs::write(&path, text).unwrap();
        let out = std::process::Command::new("mandoc")
            .args(["-Tlint", "-W", "warning"])
            .arg(&path)
            .output()
            .unwrap();
        let report = stdout_of(&out) + &stderr_of(&out);
        assert!(
            out.status.success() && report.trim().is_empty(),
            "{name}:\n{report}"
        );
    }
}

/// Runs `program` with `shell -c`, the built knock-totp first on PATH and `env`'s hosts.
fn run_shell(shell: &str, program: &str, env: &Env) -> std::process::Output {
    let bin_dir = assert_cmd::cargo::cargo_bin("knock-totp");
    let bin_dir = bin_dir.parent().unwrap();
    std::process::Command::new(shell)
        .arg("-c")
        .arg(program)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("KNOCK_TOTP_CONFIG", env.config())
        .output()
        .unwrap()
}

/// Runs the bash completion function as bash would for the given words.
fn complete_in_bash(env: &Env, words: &[&str]) -> Vec<String> {
    let script = root().join("completions/knock-totp.bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\n\
         complete -p knock-totp >/dev/null || exit 9\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         _knock_totp_hosts_or_default knock-totp \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = run_shell("bash", &program, env);
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_and_host_names() {
    if !can_run("bash is not installed", have("bash")) {
        return;
    }
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    env.add_file_host("db", "127.0.0.1", RFC_SECRET);
    let subcommands = complete_in_bash(&env, &["knock-totp", "k"]);
    assert_eq!(subcommands, ["knock"]);
    let hosts = complete_in_bash(&env, &["knock-totp", "ssh", ""]);
    assert_eq!(hosts, ["db", "web"]);
    let hosts = complete_in_bash(&env, &["knock-totp", "-v", "code", "w"]);
    assert_eq!(hosts, ["web"]);
    let flags = complete_in_bash(&env, &["knock-totp", "ports", "--ne"]);
    assert_eq!(flags, ["--next"]);

    // Anywhere among the options, but not as an option's value or after the host.
    let hosts = complete_in_bash(&env, &["knock-totp", "ssh", "--timeout", "5", "-v", "w"]);
    assert_eq!(hosts, ["web"]);
    let hosts = complete_in_bash(&env, &["knock-totp", "ports", "--next", "--at", "59", ""]);
    assert_eq!(hosts, ["db", "web"]);
    let value = complete_in_bash(&env, &["knock-totp", "code", "--at", "w"]);
    assert!(!value.contains(&"web".to_owned()), "{value:?}");
    let after_host = complete_in_bash(&env, &["knock-totp", "code", "web", "d"]);
    assert!(!after_host.contains(&"db".to_owned()), "{after_host:?}");
}

/// The units `setup --out` writes for each engine (file name, text), and the binary they run.
fn generated_units(dir: &Path) -> Vec<(String, String)> {
    let mut units = Vec::new();
    for engine in ["nftables", "knockd"] {
        let out_dir = dir.join(engine);
        let out = Env::new()
            .cmd()
            .args(["setup", "web", "--engine", engine, "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        for entry in fs::read_dir(&out_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "service") {
                let name = format!("{engine}-{}", path.file_name().unwrap().to_str().unwrap());
                units.push((name, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    units
}

/// The binary the tests run, as `setup` finds itself (canonical path).
fn installed_binary() -> PathBuf {
    fs::canonicalize(assert_cmd::cargo::cargo_bin("knock-totp")).unwrap()
}

#[test]
fn the_daemon_unit_runs_the_binary_that_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let exe = installed_binary();
    for (name, text) in generated_units(dir.path()) {
        let Some(exec) = text.lines().find_map(|l| l.strip_prefix("ExecStart=")) else {
            panic!("{name} has no ExecStart:\n{text}");
        };
        let program = Path::new(exec.split_whitespace().next().unwrap());
        assert!(program.is_file(), "{name}: {exec}: no such program");
        if !name.ends_with("-base.service") {
            assert_eq!(program, exe, "{name}: {exec}");
        }
    }
}

#[test]
fn systemd_accepts_the_units() {
    if !can_run("systemd-analyze is not installed", have("systemd-analyze")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = generated_units(dir.path());
    let template = knock_totp::server::systemd::template_unit(&installed_binary());
    units.push(("knock-totp-server@.service".to_owned(), template));
    assert_eq!(
        units.len(),
        5,
        "daemon and base units for both engines, the template"
    );
    for (name, text) in units {
        // The man page is not installed here; everything else must verify cleanly.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("Documentation="))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = dir.path().join(&name);
        fs::write(&path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let report = stdout_of(&out) + &stderr_of(&out);
        assert!(
            out.status.success() && report.trim().is_empty(),
            "{name}:\n{report}"
        );
    }
}

/// The goal for `systemd-analyze security` (0 best, 10 worst; the unit scored 5.4 before).
const MAX_EXPOSURE: f64 = 2.5;

#[test]
fn the_daemon_units_expose_little() {
    if !can_run("systemd-analyze is not installed", have("systemd-analyze")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units: Vec<(String, String)> = generated_units(dir.path())
        .into_iter()
        .filter(|(name, _)| !name.ends_with("-base.service"))
        .collect();
    let template = knock_totp::server::systemd::template_unit(Path::new("/usr/bin/knock-totp"));
    // The template's instance name does not matter to the score.
    units.push(("knock-totp-server-web.service".to_owned(), template));
    for (name, text) in units {
        let path = dir.path().join(&name);
        fs::write(&path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&path)
            .output()
            .unwrap();
        let report = stdout_of(&out);
        let exposure: f64 = report
            .lines()
            .find_map(|l| l.strip_prefix("→ Overall exposure level for "))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no exposure level in:\n{report}"));
        assert!(
            exposure <= MAX_EXPOSURE,
            "{name}: exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
        );
    }
}

#[test]
fn elvish_completes_host_names() {
    if !can_run(
        "elvish is not installed (apt-get install elvish)",
        have("elvish"),
    ) {
        return;
    }
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    // The completer uses the interactive `edit:` module; outside a terminal, keep it in a
    // variable and let `cand` print what it would offer.
    let script = fs::read_to_string(root().join("completions/knock-totp.elv")).unwrap();
    let script = script
        .replace(
            "set edit:completion:arg-completer[knock-totp] = ",
            "var completer = ",
        )
        .replace(
            "edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc",
            "echo $text",
        );
    assert!(script.contains("var completer = ") && script.contains("echo $text"));
    let program = format!("{script}\n$completer knock-totp ssh ''\n");
    let out = run_shell("elvish", &program, &env);
    let offered = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(offered.lines().any(|l| l == "web"), "{offered}");
    assert!(offered.lines().any(|l| l == "--ssh-bin"), "{offered}");
}
