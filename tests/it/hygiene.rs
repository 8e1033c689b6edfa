//! Secret hygiene: with one known secret, no command shows it where it was not asked for: not
//! on stdout or stderr, not in the argv of programs knock-totp starts, not in any file but the
//! store's 0600 file (and setup's 0600 secret file).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use knock_totp::core::secret::SecretKey;

use crate::support::{have, is_root, stderr_of, write_private, Env};

pub(crate) struct Secret {
    upper: String,
    lower: String,
}

impl Secret {
    fn new() -> Self {
        Self::known(&SecretKey::generate().to_base32())
    }

    /// A secret some command made (setup's), in base32.
    pub(crate) fn known(base32: &str) -> Self {
        let upper = base32.trim().to_ascii_uppercase();
        let lower = upper.to_ascii_lowercase();
        Self { upper, lower }
    }

    /// Fails if `text` holds the secret in either case, or any 12-character run of it.
    pub(crate) fn assert_absent(&self, what: &str, text: &str) {
        let folded = text.to_ascii_uppercase();
        for start in 0..=self.upper.len() - 12 {
            let run = &self.upper[start..start + 12];
            assert!(
                !folded.contains(run),
                "{what} shows (part of) the secret:\n{text}"
            );
        }
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr_of(out))
}

/// Every regular file below `dir`, with its mode.
fn files_below(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                found.push((entry.path(), meta.permissions().mode() & 0o777));
            }
        }
    }
    found
}

fn stand_in(dir: &Path, name: &str, log: &Path) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" >> '{}'\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_secret_stays_where_it_belongs() {
    let secret = Secret::new();
    let env = Env::new();
    let bin = env.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let argv_log = env.path().join("argv.log");
    let ssh = stand_in(&bin, "ssh", &argv_log);

    // A listener, so that ssh's knock-and-verify finds the port open.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();

    let mut transcript = Vec::new();
    let mut run = |args: &[&str], stdin: &str| {
        let out = env
            .cmd()
            .args(args)
            .env("KNOCK_TOTP_SSH", &ssh)
            .write_stdin(stdin)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        transcript.push((args.join(" "), output_text(&out), out.status.code()));
    };
    run(
        &[
            "add",
            "web",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "--store",
            "file",
            "--secret",
            "-",
        ],
        &secret.lower,
    );
    run(
        &[
            "add",
            "web2",
            "--address",
            "127.0.0.1",
            "--store",
            "file",
            "--uri",
            "-",
        ],
        &format!(
            "otpauth://totp/knock-totp:web2?secret={}&issuer=knock-totp",
            secret.upper
        ),
    );
    run(&["-v", "list"], "");
    run(&["-v", "list", "--json"], "");
    run(&["-v", "show", "web"], "");
    run(&["-v", "show", "web", "--json"], "");
    run(&["-v", "code", "web"], "");
    run(&["-v", "code", "--json"], "");
    run(&["-v", "ports", "web", "--next", "--json"], "");
    run(
        &["-vv", "knock", "web", "--margin", "0", "--delay-ms", "0"],
        "",
    );
    run(
        &[
            "-vv",
            "knock",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "--secret",
            "-",
            "--margin",
            "0",
            "--verify",
        ],
        &secret.upper,
    );
    run(
        &["-vv", "ssh", "web", "--margin", "0", "--", "-T", "true"],
        "",
    );
    run(&["-v", "remove", "web2", "--yes"], "");

    let setup_out = env.path().join("setup");
    let out = env
        .cmd()
        .args([
            "setup",
            "srv",
            "--address",
            "127.0.0.1",
            "--secret",
            "-",
            "--out",
        ])
        .arg(&setup_out)
        .write_stdin(secret.upper.as_str())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    // With --out and stdout not a terminal, setup prints neither the URI nor the QR code.
    secret.assert_absent("setup's stderr", &stderr_of(&out));
    secret.assert_absent("setup's stdout", &String::from_utf8_lossy(&out.stdout));

    let server_config = setup_out.join("srv.toml");
    let toml = fs::read_to_string(&server_config)
        .unwrap()
        .replace(
            "/etc/knock-totp/srv.secret",
            &setup_out.join("srv.secret").display().to_string(),
        )
        .replace(
            "/etc/knock-totp/knockd/srv.conf",
            &env.path().join("knockd/srv.conf").display().to_string(),
        );
    fs::create_dir_all(env.path().join("knockd")).unwrap();
    fs::write(&server_config, toml).unwrap();
    run(
        &[
            "-vv",
            "server",
            "--config",
            server_config.to_str().unwrap(),
            "--once",
            "--dry-run",
        ],
        "",
    );

    for (args, text, code) in &transcript {
        assert!(
            code.is_some() && !text.contains("panicked"),
            "{args}: {code:?}\n{text}"
        );
        secret.assert_absent(args, text);
    }
    let ssh_argv = fs::read_to_string(&argv_log).unwrap_or_default();
    assert!(
        ssh_argv.contains("HostKeyAlias=web"),
        "the stand-in ssh ran: {ssh_argv}"
    );
    secret.assert_absent("argv of the programs knock-totp ran", &ssh_argv);

    // Files: the secret only in the store's file and setup's secret and URI files, all 0600.
    let store_file = env.config().parent().unwrap().join("secrets/web");
    let allowed = [
        store_file.clone(),
        setup_out.join("srv.secret"),
        setup_out.join("srv.otpauth"),
    ];
    let mut holders = Vec::new();
    for (path, mode) in files_below(env.path()) {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if text.to_ascii_uppercase().contains(&secret.upper) {
            assert!(
                allowed.contains(&path),
                "{} holds the secret",
                path.display()
            );
            assert_eq!(
                mode,
                0o600,
                "{} holds the secret with mode {mode:o}",
                path.display()
            );
            holders.push(path);
        }
    }
    assert_eq!(holders.len(), 3, "{holders:?}");
    drop(listener);
}

#[test]
fn a_real_rotation_logs_no_secret() {
    if !is_root() || !have("knockd") {
        eprintln!("skipped: needs root and knockd; the dry run above covers the rest");
        return;
    }
    let secret = Secret::new();
    let env = Env::new();
    let dir = env.path();
    let secret_file = dir.join("srv.secret");
    write_private(&secret_file, &format!("{}\n", secret.upper));
    let conf = dir.join("knockd.conf");
    let pid_file = dir.join("knockd.pid");
    fs::write(
        &conf,
        format!(
            "[options]\n\tUseSyslog\n\tInterface = lo\n\tPidFile = {}\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let config = dir.join("srv.toml");
    fs::write(
        &config,
        format!(
            "name = \"srv\"\nsecret_file = \"{}\"\nport = 22\ninterface = \"lo\"\n\
             knockd_conf = \"{}\"\nknockd_pid_file = \"{}\"\nfirewall = \"iptables\"\n",
            secret_file.display(),
            conf.display(),
            pid_file.display()
        ),
    )
    .unwrap();
    assert!(Command::new("knockd")
        .args(["-d", "-i", "lo", "-c"])
        .arg(&conf)
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(&pid_file)
        .map(|p| p.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "knockd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = env
        .cmd()
        .args(["-vv", "server", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let pid = fs::read_to_string(&pid_file).unwrap();
    let _ = Command::new("kill").arg(pid.trim()).status();
    assert!(out.status.success(), "{}", output_text(&out));
    secret.assert_absent("server --once -vv", &output_text(&out));
    let rendered = fs::read_to_string(&conf).unwrap();
    assert!(rendered.contains("sequence"), "{rendered}");
    secret.assert_absent("the rendered knockd.conf", &rendered);
    let mode = fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o077,
        0,
        "knockd.conf (current ports) is private: {mode:o}"
    );
}
