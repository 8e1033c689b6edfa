//! Priorities for the journal: when stderr is the journal stream systemd connected
//! (`JOURNAL_STREAM` names the file on fd 2), every stderr line starts with its syslog priority
//! (`<3>` errors, `<4>` warnings, `<6>` notes, `<7>` -v details); on anything else, nothing
//! changes. No line shows a secret or a knock port of the windows around now.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};

use crate::hygiene::Secret;
use crate::support::{stderr_of, unix_now, Env};

/// A setup-made secret, with its knock ports of the windows around now.
struct Known {
    secret: Secret,
    ports: Vec<u16>,
}

impl Known {
    fn new(base32: &str, period: u64) -> Self {
        let key = SecretKey::from_base32(base32.trim()).unwrap();
        let totp = Totp::new(&key, Algorithm::Sha1, period).unwrap();
        let mut window = totp.window_at(unix_now().as_secs()).previous().previous();
        let mut ports = Vec::new();
        for _ in 0..5 {
            ports.extend(totp.ports_for(window).0);
            window = window.next();
        }
        Self {
            secret: Secret::known(base32),
            ports,
        }
    }

    fn assert_absent(&self, what: &str, text: &str) {
        self.secret.assert_absent(what, text);
        for number in text.split(|c: char| !c.is_ascii_digit()) {
            if let Ok(port) = number.parse::<u16>() {
                assert!(
                    !self.ports.contains(&port),
                    "{what} shows knock port {port} (of {:?}):\n{text}",
                    self.ports
                );
            }
        }
    }
}

/// `knock-totp` with `env`'s private config, HOME and state directory.
fn knock_totp(env: &Env) -> Command {
    fs::create_dir_all(env.home()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_knock-totp"));
    cmd.env("KNOCK_TOTP_CONFIG", env.config())
        .env("HOME", env.home())
        .env("STATE_DIRECTORY", env.state_dir())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("KNOCK_TOTP_SSH");
    cmd
}

/// `DEV:INODE` of `path`, as systemd writes JOURNAL_STREAM.
fn stream_of(path: &Path) -> String {
    let meta = fs::metadata(path).unwrap();
    format!("{}:{}", meta.dev(), meta.ino())
}

struct Run {
    code: Option<i32>,
    stderr: String,
}

/// Runs `cmd` with `stdin`, its stderr into a file; JOURNAL_STREAM names that file when
/// `journal`, else another file (as a child of a service whose stderr was redirected sees it).
fn run(env: &Env, mut cmd: Command, stdin: &str, journal: bool) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let log = env.path().join(format!("stderr-{n}.log"));
    let file = File::create(&log).unwrap();
    let named = if journal {
        log.clone()
    } else {
        let other = env.path().join(format!("journal-{n}"));
        File::create(&other).unwrap();
        other
    };
    let mut child = cmd
        .env("JOURNAL_STREAM", stream_of(&named))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .unwrap();
    // A command that reads no stdin may be gone already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stderr: fs::read_to_string(&log).unwrap(),
    }
}

/// The priority of each line of `stderr`, failing on a line without one.
fn priorities(stderr: &str) -> Vec<u8> {
    assert!(!stderr.is_empty(), "nothing on stderr");
    stderr
        .lines()
        .map(|line| {
            line.strip_prefix('<')
                .and_then(|rest| rest.split_once('>'))
                .and_then(|(n, _)| n.parse::<u8>().ok())
                .unwrap_or_else(|| panic!("a line without its priority: {line:?}\n{stderr}"))
        })
        .collect()
}

#[test]
fn a_fatal_error_and_its_hint_are_errors_in_the_journal() {
    let env = Env::new();
    let missing = env.path().join("missing.toml");
    let mut cmd = knock_totp(&env);
    cmd.args(["server", "--config"]).arg(&missing);
    let out = run(&env, cmd, "", true);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(priorities(&out.stderr), [3, 3], "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with("<3>knock-totp: cannot read "),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("<3>hint: "), "{lines:?}");

    // A usage error too (a typo in a unit's ExecStart=): clap's lines, each an error.
    let mut cmd = knock_totp(&env);
    cmd.args(["server", "--no-such-option"]);
    let out = run(&env, cmd, "", true);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let levels = priorities(&out.stderr);
    assert!(
        levels.len() > 1 && levels.iter().all(|&p| p == 3),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--no-such-option"), "{}", out.stderr);
}

#[test]
fn elsewhere_the_lines_are_as_always() {
    let env = Env::new();
    let missing = env.path().join("missing.toml");
    let piped = env
        .cmd()
        .args(["server", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let mut cmd = knock_totp(&env);
    cmd.args(["server", "--config"]).arg(&missing);
    let out = run(&env, cmd, "", false);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr, stderr_of(&piped));
    assert!(
        out.stderr.starts_with("knock-totp: cannot read ") && out.stderr.contains("\nhint: "),
        "{}",
        out.stderr
    );

    let mut cmd = knock_totp(&env);
    cmd.args(["server", "--no-such-option"]);
    let out = run(&env, cmd, "", false);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        !out.stderr.lines().any(|l| l.starts_with('<')),
        "{}",
        out.stderr
    );
}

/// `setup srv --out DIR` and `setup srv --user alice --out DIR`, the server's config pointed
/// at DIR's secret: its path, the server's and alice's secrets (base32) and the period.
fn server_with_a_user(env: &Env) -> (PathBuf, String, String, u64) {
    let out_dir = env.path().join("setup");
    for extra in [&[][..], &["--user", "alice"][..]] {
        let out = env
            .cmd()
            .args(["setup", "srv", "--address", "127.0.0.1", "--out"])
            .arg(&out_dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let config = out_dir.join("srv.toml");
    let secret_file = out_dir.join("srv.secret");
    let text = fs::read_to_string(&config).unwrap().replace(
        "/etc/knock-totp/srv.secret",
        &secret_file.display().to_string(),
    );
    fs::write(&config, &text).unwrap();
    let period = text
        .lines()
        .find_map(|l| l.strip_prefix("period = "))
        .map_or(30, |p| p.trim().parse().unwrap());
    let server = fs::read_to_string(secret_file).unwrap();
    let alice = fs::read_to_string(out_dir.join("srv.d/alice.secret")).unwrap();
    (config, server, alice, period)
}

#[test]
fn a_dry_run_in_the_journal_logs_notes_and_warnings_without_secrets_or_ports() {
    let env = Env::new();
    let (config, server, alice, period) = server_with_a_user(&env);
    let known = [Known::new(&server, period), Known::new(&alice, period)];

    // An nft that fails: the dry run goes on with a warning.
    let bin = env.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("nft"), "#!/bin/sh\nexit 1\n").unwrap();
    fs::set_permissions(bin.join("nft"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    for verbosity in [None, Some("-v")] {
        let mut cmd = knock_totp(&env);
        cmd.env("PATH", &path)
            .args(verbosity)
            .args(["server", "--once", "--dry-run", "--config"])
            .arg(&config);
        let out = run(&env, cmd, "", true);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let levels = priorities(&out.stderr);
        assert!(
            levels.iter().all(|p| [4, 6, 7].contains(p)),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("<6>knock-totp: 1 enabled users in "),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("<4>knock-totp: WARNING: nft is not available (dry run: going on)"),
            "{}",
            out.stderr
        );
        for k in &known {
            k.assert_absent("server --dry-run in the journal", &out.stderr);
        }
    }
}

#[test]
fn a_client_in_the_journal_logs_details_without_the_secret_or_its_ports() {
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let base32 = SecretKey::generate().to_base32().to_string();
    let known = Known::new(&base32, 30);

    let mut cmd = knock_totp(&env);
    cmd.args(["-v", "knock", "--address", "127.0.0.1", "--port", &port])
        .args(["--secret", "-", "--margin", "0", "--verify"]);
    let out = run(&env, cmd, &base32, true);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let levels = priorities(&out.stderr);
    assert!(levels.contains(&7) && levels.contains(&6), "{}", out.stderr);
    assert!(levels.iter().all(|p| [6, 7].contains(p)), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("<7>knock-totp: port {port} accepted a connection")),
        "{}",
        out.stderr
    );
    known.assert_absent("knock -v in the journal", &out.stderr);
    drop(listener);
}
