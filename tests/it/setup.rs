//! `setup`: printed and written configs (snapshots), QR round trips, knockd's own parser,
//! file modes, and bad input that must write nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use knock_totp::cli::qr;
use knock_totp::core::otpauth::OtpauthUri;
use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::Algorithm;

use crate::support::lab::Lab;
use crate::support::{can_run, have, is_root, stderr_of, stdout_of, Env, RFC_SECRET};

/// RFC 6238's 1111111109: the window whose code is 081804 (ports 8180 1804) for RFC_SECRET.
const AT: &str = "1111111109";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/setup")
}

/// Stands for this checkout's binary (the unit's ExecStart) in the snapshots.
const BINARY_PLACEHOLDER: &str = "{knock-totp binary}";

/// Compares with a snapshot file; `KNOCK_TOTP_BLESS=1` rewrites it instead.
fn assert_snapshot(name: &str, actual: &str) {
    let binary = fs::canonicalize(assert_cmd::cargo::cargo_bin("knock-totp")).unwrap();
    let actual = actual.replace(binary.to_str().unwrap(), BINARY_PLACEHOLDER);
    let path = fixtures().join(name);
    if std::env::var_os("KNOCK_TOTP_BLESS").is_some() {
        fs::create_dir_all(fixtures()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with KNOCK_TOTP_BLESS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (KNOCK_TOTP_BLESS=1 rewrites it):\n{actual}",
        path.display()
    );
}

fn assert_no_flush(text: &str) {
    assert!(
        !text.to_ascii_lowercase().contains("flush"),
        "flush in:\n{text}"
    );
    for word in text.split_whitespace() {
        assert!(word != "-F" && word != "-X", "{word} in:\n{text}");
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `setup web --engine knockd` with the RFC secret on stdin at the fixed time, plus `extra`
/// flags (the nftables engine's setup has tests of its own).
fn setup(env: &Env, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .args([
            "setup", "web", "--engine", "knockd", "--secret", "-", "--at", AT,
        ])
        .args(extra)
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap()
}

fn uri_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("a URI line")
}

#[test]
fn printed_configs_match_snapshots() {
    let cases: [(&str, &[&str]); 5] = [
        ("iptables.txt", &["--address", "203.0.113.5"]),
        (
            "nftables.txt",
            &["--firewall", "nftables", "--port", "2222", "-i", "ens5"],
        ),
        (
            "aws.txt",
            &[
                "--address",
                "web.example.com",
                "--firewall",
                "aws",
                "--security-group",
                "sg-0123456789abcdef0",
                "--region",
                "eu-west-1",
                "--open-seconds",
                "60",
            ],
        ),
        ("gcp.txt", &["--firewall", "gcp", "--network", "prod"]),
        (
            "azure.txt",
            &[
                "--firewall",
                "azure",
                "--security-group",
                "web-nsg",
                "--resource-group",
                "rg1",
            ],
        ),
    ];
    for (name, extra) in cases {
        let env = Env::new();
        let out = setup(&env, extra);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        assert!(!stdout.contains('\x1b'), "no ANSI colours when not a TTY");
        assert_no_flush(&stdout);
        assert_snapshot(name, &stdout);
    }
}

#[test]
fn nftables_engine_configs_match_snapshots() {
    let cases: [(&str, &[&str]); 4] = [
        ("nft-engine.txt", &["--address", "203.0.113.5"]),
        (
            "nft-engine-aws.txt",
            &[
                "--firewall",
                "aws",
                "--security-group",
                "sg-0123456789abcdef0",
                "--region",
                "eu-west-1",
                "--port",
                "2222",
            ],
        ),
        ("nft-engine-gcp.txt", &["--firewall", "gcp"]),
        (
            "nft-engine-azure.txt",
            &[
                "--firewall",
                "azure",
                "--security-group",
                "web-nsg",
                "--resource-group",
                "rg1",
            ],
        ),
    ];
    for (name, extra) in cases {
        let env = Env::new();
        let out = env
            .cmd()
            .args(["setup", "web", "--secret", "-", "--at", AT])
            .args(extra)
            .write_stdin(RFC_SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        assert!(stdout.contains("engine = \"nftables\""), "{name}");
        assert!(!stdout.contains("knockd.conf"), "{name}: {stdout}");
        // The door ports of the moment are nowhere: the doors exist only in the kernel.
        assert!(
            !stdout.contains("8180") && !stdout.contains("1804"),
            "{name}"
        );
        let cloud = name != "nft-engine.txt";
        assert_eq!(stdout.contains("drop_knock_range = true"), cloud, "{name}");
        assert_snapshot(name, &stdout);
    }
}

#[test]
fn nftables_setup_ignores_a_knockd_conf_it_does_not_write() {
    const ADMINS: &str = "an admin's file\n";
    let env = Env::new();
    // setup --out into a private directory that already holds an admin's knockd.conf.
    let setup_beside_knockd_conf = |dir: &str, engine: &str| {
        let dir = env.path().join(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.join("knockd.conf"), ADMINS).unwrap();
        let out = env
            .cmd()
            .args(["setup", "web", "--engine", engine, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        (dir, out)
    };
    let (dir, out) = setup_beside_knockd_conf("out", "nftables");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(fs::read_to_string(dir.join("knockd.conf")).unwrap(), ADMINS);
    // The knockd engine writes it, so there the existing file is refused without --force.
    let (_, out) = setup_beside_knockd_conf("out-knockd", "knockd");
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("knockd.conf"), "{err}");
}

#[test]
fn engine_and_firewall_combinations_that_would_open_the_port_are_refused() {
    let env = Env::new();
    // The nftables engine is the host firewall: an iptables backend has nothing to do.
    let out = env
        .cmd()
        .args(["setup", "web", "--firewall", "iptables"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--engine nftables"),
        "{}",
        stderr_of(&out)
    );
    // knockd behind a cloud firewall that opens the knock range: a protected port inside the
    // range would be open to the world.
    let out = env
        .cmd()
        .args(["setup", "web", "--engine", "knockd", "--port", "2222"])
        .args(["--firewall", "gcp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("knock range"),
        "{}",
        stderr_of(&out)
    );
    // The same port with the nftables engine is fine: the host keeps it closed.
    let out = env
        .cmd()
        .args(["setup", "web", "--port", "2222", "--firewall", "gcp"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn uri_has_the_spec_form_and_is_accepted_by_add() {
    let env = Env::new();
    let out = setup(&env, &["--address", "127.0.0.1", "--port", "2222"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let uri = uri_line(&stdout);
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/knock-totp:web?secret={RFC_SECRET}&issuer=knock-totp\
             &algorithm=SHA1&digits=6&period=30"
        )
    );
    let add = "knock-totp add web --address 127.0.0.1 --port 2222 --uri -";
    assert!(stdout.lines().any(|l| l == add), "{stdout}");

    // Enroll exactly as printed (with the file store), then the client's ports must be the
    // doors' ports.
    env.cmd()
        .args([
            "add",
            "web",
            "--address",
            "127.0.0.1",
            "--port",
            "2222",
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(format!("{uri}\n"))
        .assert()
        .success();
    env.cmd()
        .args(["ports", "web", "--at", AT])
        .assert()
        .success()
        .stdout("8180 1804\n");
    assert!(stdout.contains("sequence        = 8180:tcp,1804:tcp"));
}

#[test]
fn generated_secret_is_160_bits_and_fresh() {
    let env = Env::new();
    let uris: Vec<OtpauthUri> = (0..2)
        .map(|_| {
            let out = env
                .cmd()
                .args(["setup", "web", "--engine", "knockd"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr_of(&out));
            OtpauthUri::parse(uri_line(&stdout_of(&out))).unwrap()
        })
        .collect();
    assert_eq!(uris[0].secret.bits(), 160);
    assert_ne!(uris[0].secret, uris[1].secret);
}

#[test]
fn png_and_svg_decode_to_the_same_uri() {
    if !can_run(
        "zbarimg is not installed (apt-get install zbar-tools)",
        have("zbarimg"),
    ) {
        return;
    }
    let env = Env::new();
    let png = env.path().join("web.png");
    let svg = env.path().join("web.svg");
    let out = setup(
        &env,
        &[
            "--qr-png",
            png.to_str().unwrap(),
            "--qr-svg",
            svg.to_str().unwrap(),
            "--period",
            "60",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(mode(&png), 0o600);
    assert_eq!(mode(&svg), 0o600);
    assert!(fs::read_to_string(&svg).unwrap().starts_with("<?xml"));

    let scan = Std::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(scan.status.success(), "{}", stderr_of(&scan));
    let decoded = OtpauthUri::parse(stdout_of(&scan).trim()).unwrap();
    assert_eq!(decoded.secret, SecretKey::from_base32(RFC_SECRET).unwrap());
    assert_eq!(decoded.account, "web");
    assert_eq!(decoded.issuer.as_deref(), Some("knock-totp"));
    assert_eq!(decoded.algorithm, Algorithm::Sha1);
    assert_eq!(decoded.period, 60);
    assert_eq!(stdout_of(&scan).trim(), uri_line(&stdout_of(&out)));
}

#[test]
fn terminal_qr_keeps_its_quiet_zone() {
    let env = Env::new();
    let out = setup(&env, &[]);
    let stdout = stdout_of(&out);
    let uri = uri_line(&stdout);
    let lines: Vec<Vec<char>> = stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("otpauth://"))
        .map(|l| l.chars().collect())
        .collect();
    let side = qr::module_count(uri).unwrap() + 2 * qr::QUIET_ZONE;
    // Two module rows per text line.
    assert_eq!(lines.len(), side.div_ceil(2));
    assert!(lines.iter().all(|l| l.len() == side), "ragged QR lines");
    // Light modules are drawn as blocks; a light top with nothing below is an upper half.
    let light = |c: char| c == '█';
    assert!(lines[0].iter().copied().all(light));
    let last = lines.last().unwrap();
    if side % 2 == 1 {
        assert!(last.iter().all(|&c| c == '▀'), "{last:?}");
    } else {
        assert!(last.iter().copied().all(light));
    }
    for line in &lines[..lines.len() - 1] {
        assert!(line[..qr::QUIET_ZONE].iter().copied().all(light));
        assert!(line[side - qr::QUIET_ZONE..].iter().copied().all(light));
    }
}

#[test]
fn out_dir_files_and_modes() {
    let env = Env::new();
    let dir = env.path().join("out");
    let out = setup(
        &env,
        &[
            "--out",
            dir.to_str().unwrap(),
            "--firewall",
            "aws",
            "--security-group",
            "sg-0123abcd",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(mode(&dir), 0o700);
    let expected = [
        ("web.secret", 0o600),
        ("web.toml", 0o644),
        ("knockd.conf", 0o600),
        ("firewall-setup.sh", 0o644),
        ("iam-policy.json", 0o644),
        ("web.nft", 0o644),
        ("knock-totp-web-base.service", 0o644),
        ("knock-totp-web.service", 0o644),
        ("web.otpauth", 0o600),
    ];
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|(n, _)| n.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, want_mode) in expected {
        let path = dir.join(name);
        assert_eq!(mode(&path), want_mode, "{name}");
        let text = fs::read_to_string(&path).unwrap();
        assert_no_flush(&text);
        if text.contains(RFC_SECRET) {
            assert_eq!(mode(&path) & 0o077, 0, "{name} holds the secret");
        }
    }
    assert_eq!(
        fs::read_to_string(dir.join("web.secret")).unwrap(),
        format!("{RFC_SECRET}\n")
    );
    // The printed part never lists file contents, but still gives the add command.
    let stdout = stdout_of(&out);
    assert!(stdout
        .contains("knock-totp add web --address SERVER_ADDRESS --port 22 --uri - < web.otpauth"));
    assert!(!stdout.contains("[options]"));

    // The server config loads back.
    let config = knock_totp::server::config::ServerConfig::load(&dir.join("web.toml")).unwrap();
    assert_eq!(config.aws.unwrap().security_group, "sg-0123abcd");

    // A second run refuses to overwrite; --force overwrites.
    let again = setup(&env, &["--out", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    let forced = setup(&env, &["--out", dir.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", stderr_of(&forced));
    assert!(fs::read_to_string(dir.join("web.toml"))
        .unwrap()
        .contains("firewall = \"iptables\""));
}

/// With --out, the URI (the secret) goes to a 0600 file; a redirected stdout (a log) gets
/// neither it nor the QR code unless --show-secret asks, and stderr says where it is.
#[test]
fn out_keeps_the_secret_off_a_redirected_stdout() {
    let env = Env::new();
    let dir = env.path().join("out");
    // (lo: an interface every machine has, so that stderr holds only the line about the URI)
    let out = setup(&env, &["--out", dir.to_str().unwrap(), "--interface", "lo"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    for text in [&stdout, &stderr] {
        assert!(!text.contains(RFC_SECRET), "{text}");
        assert!(!text.contains("otpauth://"), "{text}");
        assert!(
            !text.contains('\u{2580}') && !text.contains('\u{2588}'),
            "a QR code: {text}"
        );
    }
    let uri_file = dir.join("web.otpauth");
    assert!(stderr.contains(&uri_file.display().to_string()), "{stderr}");
    assert!(stderr.contains("--show-secret"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(mode(&uri_file), 0o600);
    let uri = OtpauthUri::parse(fs::read_to_string(&uri_file).unwrap().trim()).unwrap();
    assert_eq!(uri.secret, SecretKey::from_base32(RFC_SECRET).unwrap());

    let shown = setup(
        &env,
        &[
            "--out",
            dir.to_str().unwrap(),
            "--force",
            "--show-secret",
            "--interface",
            "lo",
        ],
    );
    assert!(shown.status.success(), "{}", stderr_of(&shown));
    let stdout = stdout_of(&shown);
    assert_eq!(
        format!("{}\n", uri_line(&stdout)),
        fs::read_to_string(&uri_file).unwrap()
    );
    assert!(stdout.contains("knock-totp add web --address SERVER_ADDRESS --port 22 --uri -\n"));
    assert!(stderr_of(&shown).is_empty(), "{}", stderr_of(&shown));

    // --show-secret belongs to --out (without it everything is printed anyway).
    let alone = setup(&env, &["--show-secret"]);
    assert_eq!(alone.status.code(), Some(2));
}

#[test]
fn knockd_accepts_every_generated_conf() {
    if !can_run(
        "knockd is not installed (apt-get install knockd)",
        have("knockd"),
    ) {
        return;
    }
    let flags: [&[&str]; 5] = [
        &[],
        &["--firewall", "nftables"],
        &["--firewall", "aws", "--security-group", "sg-0123abcd"],
        &["--firewall", "gcp"],
        &[
            "--firewall",
            "azure",
            "--security-group",
            "nsg",
            "--resource-group",
            "rg",
        ],
    ];
    for extra in flags {
        let env = Env::new();
        let dir = env.path().join("out");
        let mut args = vec!["--out", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        assert!(setup(&env, &args).status.success());
        let conf = dir.join("knockd.conf");
        let check = knockd_check(&conf);
        assert!(check.contains("could not open"), "{extra:?}: {check}");
        assert!(!check.contains("config: line"), "{extra:?}: {check}");

        // The check tells a broken file apart.
        let mut text = fs::read_to_string(&conf).unwrap();
        text.push_str("[broken]\n\tsequence\n");
        fs::write(&conf, text).unwrap();
        let check = knockd_check(&conf);
        assert!(check.contains("config: line"), "{check}");
    }
}

fn knockd_check(conf: &Path) -> String {
    let out = Std::new("knockd")
        .arg("-c")
        .arg(conf)
        .args(["-i", "no-such-if0"])
        .output()
        .unwrap();
    format!("{}{}", stdout_of(&out), stderr_of(&out))
}

#[test]
fn nft_ruleset_is_accepted_by_nft() {
    if !can_run("nft -c needs root and nftables", is_root() && have("nft")) {
        return;
    }
    let env = Env::new();
    let file = env.path().join("knock.nft");
    fs::write(
        &file,
        knock_totp::server::firewall::nftables::nft_ruleset("web", 22),
    )
    .unwrap();
    let out = Std::new("nft")
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Each bad invocation: exit 2, one error line (and maybe a hint), and nothing written.
#[test]
fn bad_input_writes_nothing() {
    let env = Env::new();
    let dir = env.path().join("out");
    let png = env.path().join("qr.png");
    let out_flag = dir.to_str().unwrap().to_owned();
    let png_flag = png.to_str().unwrap().to_owned();
    let not_a_dir = env.path().join("file");
    fs::write(&not_a_dir, "x").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--firewall", "aws"], "--security-group"),
        (
            vec!["--firewall", "aws", "--security-group", "sg-XYZ"],
            "invalid security group id",
        ),
        (vec!["--security-group", "sg-0123abcd"], "does not apply"),
        (
            vec!["--firewall", "gcp", "--region", "eu-west-1"],
            "--region does not apply to --firewall gcp",
        ),
        (
            vec![
                "--firewall",
                "aws",
                "--security-group",
                "sg-0123abcd",
                "--resource-group",
                "rg1",
            ],
            "--resource-group does not apply to --firewall aws",
        ),
        (vec!["--interface", "eth 0"], "invalid interface name"),
        (vec!["--interface", "a/b"], "invalid interface name"),
        (vec!["--port", "0"], "0"),
        (vec!["--port", "70000"], "70000"),
        (vec!["--address", "a b"], "invalid address"),
        (
            vec!["--out", "/proc/knock-totp-no/out"],
            "cannot write in /proc",
        ),
        (
            vec!["--out", not_a_dir.to_str().unwrap()],
            "is not a directory",
        ),
        (
            vec!["--qr-png", "/no-such-dir-knock/qr.png"],
            "does not exist",
        ),
    ];
    for (extra, message) in cases {
        // Every case also asks for --out and --qr-png unless it gives its own.
        let mut args = Vec::new();
        if !extra.contains(&"--out") {
            args.extend(["--out", out_flag.as_str()]);
        }
        if !extra.contains(&"--qr-png") {
            args.extend(["--qr-png", png_flag.as_str()]);
        }
        args.extend(extra.iter().copied());
        let out = setup(&env, &args);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(!stderr.contains(RFC_SECRET), "{extra:?}");
        if !stderr.starts_with("error:") {
            // Ours (not clap's): one line, plus an optional hint.
            assert!(stderr.starts_with("knock-totp: "), "{stderr}");
            assert!(
                stderr.lines().skip(1).all(|l| l.starts_with("hint: ")),
                "{stderr}"
            );
        }
        assert!(!dir.exists(), "{extra:?} created --out");
        assert!(!png.exists(), "{extra:?} wrote the PNG");
        assert!(stdout_of(&out).is_empty(), "{extra:?} printed output");
    }

    // A bad secret on stdin: same.
    let out = env
        .cmd()
        .args(["setup", "web", "--secret", "-", "--out", &out_flag])
        .write_stdin("not base32!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.exists());
    // A secret on the command line is refused.
    let out = env
        .cmd()
        .args(["setup", "web", "--secret", RFC_SECRET])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr_of(&out).contains(RFC_SECRET));

    // An existing file under --out without --force: left as it was, nothing else written.
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("knockd.conf"), "keep").unwrap();
    let out = setup(&env, &["--out", &out_flag, "--qr-png", &png_flag]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("already exists"));
    assert_eq!(fs::read_to_string(dir.join("knockd.conf")).unwrap(), "keep");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    assert!(!png.exists());
}

/// A name that cannot be a file, unit or rule name is refused before any file is written
/// (a 240-character name used to fail with the QR code holding the secret already on disk).
#[test]
fn bad_names_write_nothing() {
    let env = Env::new();
    let dir = env.path().join("out");
    let png = env.path().join("qr.png");
    let long = "a".repeat(240);
    for (name, message) in [
        (long.as_str(), "longer than 63"),
        ("-web", "must not start with '-'"),
    ] {
        let out = env
            .cmd()
            .args(["setup", "--secret", "-", "--out"])
            .arg(&dir)
            .arg("--qr-png")
            .arg(&png)
            .args(["--", name])
            .write_stdin(RFC_SECRET)
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!dir.exists(), "{name}: --out created");
        assert!(!png.exists(), "{name}: the PNG was written");
    }
}

/// A directory like /tmp (sticky, world-writable; a test's own temp dir is 0700), for the
/// attacks of another local user on `setup --out` run by root.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("knock-totp-shared-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Runs `script` (with `$1`... = `args`) through sh as the unprivileged user `nobody`.
fn as_nobody(script: &str, args: &[&Path]) -> std::process::Output {
    Std::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(args)
        .output()
        .unwrap()
}

fn can_attack_as_nobody() -> bool {
    can_run(
        "needs root and setpriv to act as the user nobody against root's setup",
        is_root() && have("setpriv"),
    )
}

/// Attack (a): another user makes the --out directory first, to read the secret (through a
/// file it planted or holds open) or to swap files after root wrote them. setup refuses it,
/// whoever owns it, when others can write in it, and writes nothing.
#[test]
fn setup_refuses_an_out_dir_another_user_can_write() {
    if !can_attack_as_nobody() {
        return;
    }
    let env = Env::new();
    let shared = shared_dir();
    let theirs = shared.path().join("theirs");
    let made = as_nobody("mkdir -m 0755 \"$1\"", &[&theirs]);
    assert!(made.status.success(), "{}", stderr_of(&made));
    let open = shared.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    for (dir, reason) in [
        (&theirs, "belongs to uid 65534"),
        (&open, "writable by others"),
    ] {
        for force in [false, true] {
            let mut args = vec!["--out", dir.to_str().unwrap()];
            if force {
                args.push("--force");
            }
            let out = setup(&env, &args);
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{}: {stderr}", dir.display());
            assert!(stderr.contains(reason), "{stderr}");
            assert!(
                stderr.lines().nth(1).unwrap().starts_with("hint: "),
                "{stderr}"
            );
            assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "{}", dir.display());
            assert!(stdout_of(&out).is_empty());
        }
    }
}

/// Attack (b): another user plants firewall-setup.sh (which root runs) in a directory it
/// made, or replaces it after setup. The planted file is never taken for ours; in the
/// directory setup makes itself, nobody can plant or replace anything.
#[test]
fn setup_never_hands_root_a_planted_firewall_script() {
    if !can_attack_as_nobody() {
        return;
    }
    let env = Env::new();
    let shared = shared_dir();
    let theirs = shared.path().join("theirs");
    let planted = as_nobody(
        "mkdir -m 0755 \"$1\" && printf 'echo pwned\\n' > \"$1/firewall-setup.sh\"",
        &[&theirs],
    );
    assert!(planted.status.success(), "{}", stderr_of(&planted));
    let out = setup(&env, &["--out", theirs.to_str().unwrap(), "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(
        fs::read_to_string(theirs.join("firewall-setup.sh")).unwrap(),
        "echo pwned\n"
    );
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 1);

    let ours = shared.path().join("ours");
    let out = setup(&env, &["--out", ours.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let script = ours.join("firewall-setup.sh");
    let before = fs::read_to_string(&script).unwrap();
    let replace = as_nobody(
        "printf 'echo pwned\\n' > \"$1/x\" || true; mv -f \"$1/x\" \"$1/firewall-setup.sh\" || true; \
         rm -f \"$1/firewall-setup.sh\" || true; printf 'echo pwned\\n' > \"$1/firewall-setup.sh\"; \
         cat \"$1/web.secret\"",
        &[&ours],
    );
    assert!(!replace.status.success());
    assert!(!stdout_of(&replace).contains(RFC_SECRET));
    assert_eq!(fs::read_to_string(&script).unwrap(), before);
    assert_eq!(fs::read_dir(&ours).unwrap().count(), 7);
}

/// Attack (c): another user plants symlinks in the --out directory it made, at the names
/// setup writes and at the temp name setup used to open without O_EXCL
/// (`.web.secret.tmp-PID`; the PID is guessed here by planting it just before `exec`), to
/// make root overwrite (and chmod) a file of its choice. That file stays as it was.
#[test]
fn setup_never_writes_through_a_planted_symlink() {
    use std::os::unix::fs::MetadataExt;
    if !can_attack_as_nobody() {
        return;
    }
    let env = Env::new();
    let shared = shared_dir();
    let victim = shared.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let theirs = shared.path().join("theirs");
    let planted = as_nobody(
        "mkdir -m 0777 \"$1\" && for f in web.secret web.toml firewall-setup.sh knockd.conf; do \
         ln -s \"$2\" \"$1/$f\"; done",
        &[&theirs, &victim],
    );
    assert!(planted.status.success(), "{}", stderr_of(&planted));
    // Root's shell plants the temp-name link as nobody, then becomes setup with the same PID.
    let out = Std::new("sh")
        .args([
            "-c",
            "setpriv --reuid=nobody --regid=nogroup --clear-groups \
             ln -s \"$2\" \"$1/.web.secret.tmp-$$\" && \
             exec \"$3\" setup web --engine knockd --out \"$1\" --force",
            "sh",
        ])
        .arg(&theirs)
        .arg(&victim)
        .arg(env!("CARGO_BIN_EXE_knock-totp"))
        .env("KNOCK_TOTP_CONFIG", env.config())
        .env("HOME", env.home())
        .output()
        .unwrap();
    let meta = fs::metadata(&victim).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(meta.mode() & 0o777, 0o644);
    assert_eq!(meta.uid(), 0);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

/// Runs `command` through sh in the lab's server namespace, as knockd would, with `%IP%`
/// replaced.
fn sh(lab: &Lab, command: &str, ip: &str) -> String {
    let out = lab
        .server_cmd("sh")
        .arg("-c")
        .arg(command.replace("%IP%", ip))
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", stderr_of(&out));
    stdout_of(&out)
}

#[test]
fn iptables_doors_add_timed_ipset_elements() {
    use knock_totp::server::firewall::{Firewall, Iptables, ProtectedPort};
    if !can_run(
        "needs root, ip, iptables and ipset for a network namespace",
        is_root() && have("ip") && have("iptables") && have("ipset"),
    ) {
        return;
    }
    let ns = Lab::new("ipt");
    let target = ProtectedPort {
        server: "web".into(),
        port: 22,
        open_seconds: 30,
    };
    let fw = Firewall::Iptables(Iptables);
    let door = fw.door_commands(&target);
    sh(&ns, "iptables -w -A INPUT -p tcp --dport 9 -j DROP", "");
    sh(&ns, &fw.setup_script(&target, &|_| String::new()), "");
    // The same address knocking twice is one element, its timeout renewed.
    sh(&ns, &door.start, "10.213.0.9");
    sh(&ns, &door.start, "10.213.0.9");
    sh(&ns, door.start_6.as_deref().unwrap(), "fd13:213::9");
    let v4 = sh(&ns, "ipset list knock-totp-web-v4", "");
    assert_eq!(v4.matches("10.213.0.9 timeout").count(), 1, "{v4}");
    let v6 = sh(&ns, "ipset list knock-totp-web-v6", "");
    assert!(v6.contains("fd13:213::9 timeout"), "{v6}");
    let rules = sh(&ns, "iptables -w -S INPUT", "");
    assert!(
        rules.contains("-j knock-totp-web\n") && rules.contains("--dport 9 -j DROP"),
        "{rules}"
    );
    assert!(
        rules.find("knock-totp-web") < rules.find("--dport 9"),
        "our jump is not first:\n{rules}"
    );
}

#[test]
fn nft_doors_add_timed_elements() {
    use knock_totp::server::firewall::nftables::nft_ruleset;
    use knock_totp::server::firewall::{Firewall, Nftables, ProtectedPort};
    if !can_run(
        "needs root, ip and nft for a network namespace",
        is_root() && have("ip") && have("nft"),
    ) {
        return;
    }
    let ns = Lab::new("nft");
    let target = ProtectedPort {
        server: "web".into(),
        port: 22,
        open_seconds: 30,
    };
    let door = Firewall::Nftables(Nftables).door_commands(&target);
    // A second server on the same host, set up first.
    let other = nft_ruleset("db", 5432);
    sh(&ns, &format!("nft -f - <<'EOF'\n{other}EOF"), "");
    let ruleset = nft_ruleset("web", 22);
    // Applying it twice replaces the table rather than doubling its rules.
    for _ in 0..2 {
        sh(&ns, &format!("nft -f - <<'EOF'\n{ruleset}EOF"), "");
    }
    sh(&ns, &door.start, "10.213.0.9");
    sh(&ns, door.start_6.as_deref().unwrap(), "2001:db8::9");
    let table = sh(&ns, "nft list table inet knock_totp_web", "");
    assert!(table.contains("10.213.0.9 timeout 30s"), "{table}");
    assert!(table.contains("2001:db8::9 timeout 30s"), "{table}");
    assert_eq!(table.matches("tcp dport 22 drop").count(), 1, "{table}");
    // The other server's table is still there, and web's knock is not in it.
    let other = sh(&ns, "nft list table inet knock_totp_db", "");
    assert!(other.contains("tcp dport 5432 drop"), "{other}");
    assert!(!other.contains("10.213.0.9"), "{other}");
}

#[test]
fn an_interface_this_machine_lacks_gets_a_warning_not_an_error() {
    let env = Env::new();
    let setup = |interface: &str| {
        env.cmd()
            .args([
                "setup",
                "web",
                "--engine",
                "knockd",
                "--interface",
                interface,
            ])
            .output()
            .unwrap()
    };
    let out = setup("eth9");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("this machine has no interface eth9") && err.contains("lo"),
        "{err}"
    );
    let out = setup("lo");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("no interface"),
        "{}",
        stderr_of(&out)
    );
}

/// The unit runs setup's own binary as root: setup warns when another user could replace it.
#[test]
fn setup_warns_when_its_binary_is_not_roots_alone() {
    if !can_run("needs root (chown)", is_root()) {
        return;
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("exe-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let run_copy = |dir: &str| {
        let bin_dir = base.join(dir);
        fs::create_dir_all(&bin_dir).unwrap();
        fs::set_permissions(&bin_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let copy = bin_dir.join("knock-totp");
        // Copied by another process: a write descriptor of our own, inherited by a child
        // that another test thread forks meanwhile, would make the exec fail (ETXTBSY).
        let copied = Std::new("cp")
            .arg(assert_cmd::cargo::cargo_bin("knock-totp"))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(copied.success());
        if dir == "user" {
            std::os::unix::fs::chown(&bin_dir, Some(65534), Some(65534)).unwrap();
        }
        let env = Env::new();
        let out = Std::new(&copy)
            .args(["setup", "web", "--out"])
            .arg(env.path().join("out"))
            .env("KNOCK_TOTP_CONFIG", env.config())
            .env("HOME", env.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let unit = fs::read_to_string(env.path().join("out/knock-totp-web.service")).unwrap();
        assert!(
            unit.contains(&format!("ExecStart={} server", copy.display())),
            "{unit}"
        );
        (copy, stderr_of(&out))
    };
    let (_, stderr) = run_copy("root");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    let (copy, stderr) = run_copy("user");
    assert!(
        stderr.contains(&format!(
            "WARNING: the daemon's unit runs {} as root, but {} is not root's alone",
            copy.display(),
            copy.parent().unwrap().display()
        )),
        "{stderr}"
    );
    fs::remove_dir_all(&base).unwrap();
}
