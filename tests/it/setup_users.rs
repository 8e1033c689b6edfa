//! `setup NAME --user USER`: the user's files in NAME.d, their modes and contents, the
//! server's period in the URI, and what is refused.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use knock_totp::cli::args::parse_time;
use knock_totp::core::otpauth::OtpauthUri;
use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::Algorithm;
use knock_totp::server::users::{load_users, parse_user};

use crate::support::{can_run, have, stderr_of, stdout_of, Env, RFC_SECRET};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn out_dir(env: &Env) -> PathBuf {
    env.path().join("out")
}

/// `setup web --out OUT` plus `extra`, the secret (when `stdin` is given) on stdin.
fn setup(env: &Env, extra: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = env.cmd();
    cmd.args(["setup", "web", "--out"])
        .arg(out_dir(env))
        .args(extra);
    if let Some(stdin) = stdin {
        cmd.write_stdin(stdin);
    }
    cmd.output().unwrap()
}

fn enroll(env: &Env, extra: &[&str]) -> std::process::Output {
    let out = setup(env, &[&["--user", "alice"], extra].concat(), None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    out
}

#[test]
fn user_files_have_their_modes_and_the_servers_period() {
    let env = Env::new();
    let server = setup(&env, &["--period", "60"], None);
    assert!(server.status.success(), "{}", stderr_of(&server));
    let out = enroll(
        &env,
        &["--expires", "2027-01-31T18:00:00Z", "--open-seconds", "60"],
    );
    let users = out_dir(&env).join("web.d");
    assert_eq!(mode(&users), 0o700);
    assert_eq!(mode(&users.join("alice.toml")), 0o644);
    assert_eq!(mode(&users.join("alice.secret")), 0o600);
    assert_eq!(mode(&users.join("alice.otpauth")), 0o600);

    let toml_path = users.join("alice.toml");
    let text = fs::read_to_string(&toml_path).unwrap();
    assert!(
        text.contains("expires = \"2027-01-31T18:00:00Z\""),
        "{text}"
    );
    let user = parse_user("alice", &text, &toml_path).unwrap();
    assert!(user.enabled);
    assert_eq!(
        user.expires,
        Some(parse_time("2027-01-31T18:00:00Z").unwrap())
    );
    assert_eq!(user.open_seconds, Some(60));
    let loaded = load_users(&users).unwrap();
    assert_eq!(loaded, std::slice::from_ref(&user));
    let secret = user.load_secret().unwrap();

    let uri_text = fs::read_to_string(users.join("alice.otpauth")).unwrap();
    assert!(
        uri_text.starts_with("otpauth://totp/knock-totp:web%20%28alice%29?"),
        "{uri_text}"
    );
    let uri = OtpauthUri::parse(uri_text.trim()).unwrap();
    assert_eq!(uri.issuer.as_deref(), Some("knock-totp"));
    assert_eq!(uri.account, "web (alice)");
    assert_eq!(uri.period, 60);
    assert_eq!(uri.algorithm, Algorithm::Sha1);
    assert_eq!(uri.secret, secret);

    let stdout = stdout_of(&out);
    assert!(stdout.contains("period 60 s"), "{stdout}");
    assert!(stdout.contains("web.toml"), "{stdout}");
    assert!(
        stdout.contains("\nsystemctl reload knock-totp-web "),
        "{stdout}"
    );
    // The server's own files are left as they were.
    assert!(!out_dir(&env).join("alice.secret").exists());
}

#[test]
fn without_a_server_config_the_defaults_apply_and_nothing_else_is_written() {
    let env = Env::new();
    let out = enroll(&env, &[]);
    let stdout = stdout_of(&out);
    assert!(stdout.contains("the defaults"), "{stdout}");
    assert!(stdout.contains("period 30 s, SHA1"), "{stdout}");
    let users = out_dir(&env).join("web.d");
    let uri = fs::read_to_string(users.join("alice.otpauth")).unwrap();
    assert_eq!(OtpauthUri::parse(uri.trim()).unwrap().period, 30);
    let user = parse_user(
        "alice",
        &fs::read_to_string(users.join("alice.toml")).unwrap(),
        &users.join("alice.toml"),
    )
    .unwrap();
    assert!(user.enabled && user.expires.is_none() && user.open_seconds.is_none());
    let mut names: Vec<String> = fs::read_dir(out_dir(&env))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["web.d"]);
}

#[test]
fn the_qr_png_decodes_to_the_uri_file() {
    if !can_run(
        "zbarimg is not installed (apt-get install zbar-tools)",
        have("zbarimg"),
    ) {
        return;
    }
    let env = Env::new();
    let png = env.path().join("alice.png");
    enroll(&env, &["--qr-png", png.to_str().unwrap()]);
    assert_eq!(mode(&png), 0o600);
    let scan = Std::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(scan.status.success(), "{}", stderr_of(&scan));
    let uri_file = out_dir(&env).join("web.d/alice.otpauth");
    assert_eq!(
        stdout_of(&scan).trim(),
        fs::read_to_string(uri_file).unwrap().trim()
    );
}

#[test]
fn existing_user_files_need_force() {
    let env = Env::new();
    enroll(&env, &[]);
    let secret_file = out_dir(&env).join("web.d/alice.secret");
    let first = fs::read_to_string(&secret_file).unwrap();

    let again = setup(&env, &["--user", "alice"], None);
    assert_eq!(again.status.code(), Some(2), "{}", stderr_of(&again));
    let stderr = stderr_of(&again);
    assert!(stderr.contains("alice.toml already exists"), "{stderr}");
    assert!(stderr.contains("hint: pass --force"), "{stderr}");
    assert_eq!(fs::read_to_string(&secret_file).unwrap(), first);

    enroll(&env, &["--force", "--open-seconds", "5"]);
    assert_ne!(fs::read_to_string(&secret_file).unwrap(), first);
    let users = load_users(&out_dir(&env).join("web.d")).unwrap();
    assert_eq!(users[0].open_seconds, Some(5));
    // Another user beside alice needs no --force.
    let bob = setup(&env, &["--user", "bob"], None);
    assert!(bob.status.success(), "{}", stderr_of(&bob));
    assert_eq!(load_users(&out_dir(&env).join("web.d")).unwrap().len(), 2);
}

#[test]
fn bad_input_is_one_error_line_and_writes_nothing() {
    let env = Env::new();
    let cases: [(&[&str], &str); 6] = [
        (&["--user", "Alice"], "invalid user name \"Alice\""),
        (&["--user", "../x"], "invalid user name"),
        (&["--user", "alice", "--open-seconds", "0"], "out of range"),
        (&["--user", "alice", "--expires", "soon"], "--expires"),
        (&["--user", "alice", "--port", "2222"], "--port"),
        (&["--expires", "2027-01-31T18:00:00Z"], "--user"),
    ];
    for (args, expected) in cases {
        let out = setup(&env, args, None);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // Ours: `knock-totp: ...` and a hint; clap's: `error: ...`, its usage and a pointer to --help.
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        let others = stderr.lines().skip(1).filter(|l| {
            !(l.is_empty()
                || l.starts_with("  ")
                || l.starts_with("hint: ")
                || l.starts_with("Usage: ")
                || l.starts_with("For more information"))
        });
        assert_eq!(others.count(), 0, "{args:?}: {stderr}");
        assert!(!out_dir(&env).exists(), "{args:?} wrote something");
    }
    let bad_name = setup(&env, &["--user", "Alice"], None);
    assert!(
        stderr_of(&bad_name).contains("a lowercase letter"),
        "{}",
        stderr_of(&bad_name)
    );
}

#[test]
fn a_secret_from_stdin_is_the_users() {
    let env = Env::new();
    let out = setup(
        &env,
        &["--user", "alice", "--secret", "-"],
        Some(RFC_SECRET),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let users = out_dir(&env).join("web.d");
    assert_eq!(
        fs::read_to_string(users.join("alice.secret")).unwrap(),
        format!("{RFC_SECRET}\n")
    );
    let user = &load_users(&users).unwrap()[0];
    assert_eq!(
        user.load_secret().unwrap(),
        SecretKey::from_base32(RFC_SECRET).unwrap()
    );
    let uri = fs::read_to_string(users.join("alice.otpauth")).unwrap();
    assert_eq!(
        OtpauthUri::parse(uri.trim()).unwrap().secret,
        SecretKey::from_base32(RFC_SECRET).unwrap()
    );
    // Only `-`: a secret in argv would land in shell history.
    let argv = setup(&env, &["--user", "bob", "--secret", RFC_SECRET], None);
    assert_eq!(argv.status.code(), Some(2));
    assert!(!stderr_of(&argv).contains(RFC_SECRET));
}

/// Stdout is a pipe here (a log): the secret, the URI and the QR code stay off it and off
/// stderr unless --show-secret asks; stderr says where the URI is.
#[test]
fn the_secret_stays_off_a_redirected_stdout() {
    let env = Env::new();
    let out = enroll(&env, &[]);
    let users = out_dir(&env).join("web.d");
    let secret = fs::read_to_string(users.join("alice.secret")).unwrap();
    let secret = secret.trim();
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    for text in [&stdout, &stderr] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("otpauth://"), "{text}");
        assert!(
            !text.contains('\u{2580}') && !text.contains('\u{2588}'),
            "a QR code: {text}"
        );
    }
    let uri_file = users.join("alice.otpauth");
    assert!(stderr.contains(&uri_file.display().to_string()), "{stderr}");
    assert!(stdout.contains(&uri_file.display().to_string()), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let shown = enroll(&env, &["--force", "--show-secret"]);
    let uri = fs::read_to_string(&uri_file).unwrap();
    assert!(stdout_of(&shown).contains(&uri), "{}", stdout_of(&shown));
}

/// A symlink where the users directory goes is refused, not followed.
#[test]
fn a_symlinked_users_directory_is_refused() {
    let env = Env::new();
    let elsewhere = env.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::create_dir_all(out_dir(&env)).unwrap();
    fs::set_permissions(out_dir(&env), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out_dir(&env).join("web.d")).unwrap();
    let out = setup(&env, &["--user", "alice"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("symbolic link"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// knockd takes one secret: a knockd server has no users.
#[test]
fn a_knockd_server_takes_no_user() {
    let env = Env::new();
    let server = setup(&env, &["--engine", "knockd", "--interface", "lo"], None);
    assert!(server.status.success(), "{}", stderr_of(&server));
    let out = setup(&env, &["--user", "alice"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("knockd engine"),
        "{}",
        stderr_of(&out)
    );
    assert!(!out_dir(&env).join("web.d").exists());
}

/// On a terminal the QR code and the URI are shown, as `setup` shows the server's.
#[test]
fn on_a_terminal_the_qr_code_and_uri_are_shown() {
    if !can_run("needs `script` (util-linux) for a pty", have("script")) {
        return;
    }
    let env = Env::new();
    let screen = crate::tty::on_terminal(
        &env,
        &format!("setup web --user alice --out {}", out_dir(&env).display()),
        &[],
        std::time::Duration::from_secs(2),
    );
    let uri = fs::read_to_string(out_dir(&env).join("web.d/alice.otpauth")).unwrap();
    assert!(screen.contains(uri.trim()), "{screen}");
    assert!(screen.contains('\u{2588}'), "no QR code: {screen}");
    assert!(
        screen.contains("systemctl reload knock-totp-web "),
        "{screen}"
    );
}
