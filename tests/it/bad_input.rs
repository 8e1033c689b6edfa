//! The bad-input matrix across commands: one row per case with its exit code (0 ok, 1 runtime,
//! 2 usage or bad input, 3 no such host, 4 secret store unavailable) and a word the error must
//! hold. Every row: no panic, no secret in the output, our errors are one line plus an
//! optional `hint:` line, hosts.toml is left byte for byte as it was and no secret is stored.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{stderr_of, stdout_of, Env, RFC_SECRET, SHORT_SECRET};

struct Row {
    args: &'static [&'static str],
    stdin: &'static str,
    env: &'static [(&'static str, &'static str)],
    code: i32,
    word: &'static str,
}

const fn row(
    args: &'static [&'static str],
    stdin: &'static str,
    code: i32,
    word: &'static str,
) -> Row {
    Row {
        args,
        stdin,
        env: &[],
        code,
        word,
    }
}

/// Paths in rows: `@` stands for the test's scratch directory.
fn expand(arg: &str, scratch: &str) -> String {
    arg.replace('@', scratch)
}

const ROWS: &[Row] = &[
    // Adding a host: secrets, URIs, names, addresses, ports.
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        "NOT*BASE32!",
        2,
        "Base32",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        "ABCDEFGH",
        2,
        "too short",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        "",
        2,
        "no secret",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--uri",
            "-",
        ],
        "otpauth://totp/x?secret=LPI3UVRWMUTRNDBD&digits=8",
        2,
        "digits",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--uri",
            "-",
        ],
        "otpauth://hotp/x?secret=LPI3UVRWMUTRNDBD&counter=0",
        2,
        "HOTP",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--store",
            "file",
            "--uri",
            "-",
        ],
        "https://example.com",
        2,
        "otpauth",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--port",
            "0",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        SHORT_SECRET,
        2,
        "0",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "a.example",
            "--port",
            "70000",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        SHORT_SECRET,
        2,
        "70000",
    ),
    row(
        &[
            "add",
            "a/b",
            "--address",
            "a.example",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        SHORT_SECRET,
        2,
        "host name",
    ),
    row(
        &[
            "add",
            "h",
            "--address",
            "not an address",
            "--store",
            "file",
            "--secret",
            "-",
        ],
        SHORT_SECRET,
        2,
        "address",
    ),
    row(&["code", "nope"], "", 3, "no such host"),
    row(&["ports", "nope"], "", 3, "no such host"),
    row(&["remove", "nope", "--yes"], "", 3, "no such host"),
    row(&["code", "--at", "1969-01-01T00:00:00Z"], "", 2, "1970"),
    row(&["code", "--at", "soon"], "", 2, "RFC 3339"),
    // Hosts that are not there.
    row(&["knock", "nope"], "", 3, "no such host"),
    row(&["ssh", "nope"], "", 3, "no such host"),
    row(&["proxy", "nope"], "", 3, "no such host"),
    row(&["show", "nope"], "", 3, "no such host"),
    // Arguments clap refuses.
    row(&["proxy"], "", 2, "NAME"),
    row(&["knock"], "", 2, "required"),
    row(&["knock", "web", "--timeout", "1e9"], "", 2, "seconds"),
    row(&["knock", "--address", "127.0.0.1"], "", 2, "--secret"),
    row(&["ports", "web", "--at", "tomorrow"], "", 2, "RFC 3339"),
    row(&["code", "web", "--at", "-5"], "", 2, "1970"),
    row(
        &[
            "add",
            "x",
            "--address",
            "h",
            "--period",
            "0",
            "--secret",
            "-",
        ],
        RFC_SECRET,
        2,
        "period",
    ),
    row(
        &[
            "add",
            "x",
            "--address",
            "h",
            "--algorithm",
            "MD5",
            "--secret",
            "-",
        ],
        RFC_SECRET,
        2,
        "MD5",
    ),
    row(&["completions", "tcsh"], "", 2, "tcsh"),
    // Secrets and codes.
    row(
        &["knock", "--address", "127.0.0.1", "--secret", RFC_SECRET],
        "",
        2,
        "stdin",
    ),
    row(
        &["knock", "--address", "127.0.0.1", "--secret", "-"],
        "GEZD1",
        2,
        "Base32",
    ),
    row(
        &["knock", "--address", "127.0.0.1", "--secret", "-"],
        "",
        2,
        "no secret",
    ),
    row(&["ports", "--from-code", "97011"], "", 2, "six digits"),
    row(&["ports", "--from-code", "97a113"], "", 2, "six digits"),
    row(
        &[
            "add",
            "x",
            "--address",
            "h",
            "--store",
            "file",
            "--secret-file",
            "@/missing",
        ],
        "",
        2,
        "cannot read secret file",
    ),
    row(
        &[
            "add",
            "x",
            "--address",
            "h",
            "--store",
            "file",
            "--uri",
            "-",
        ],
        "otpauth://totp/x?secret=LPI3UVRWMUTRNDBD&digits=7",
        2,
        "digits",
    ),
    // Server side.
    row(
        &["server", "--config", "@/missing.toml", "--once"],
        "",
        2,
        "missing.toml",
    ),
    row(
        &["server", "--config", "@/garbage.toml", "--once"],
        "",
        2,
        "garbage.toml",
    ),
    row(
        &["setup", "web", "--period", "86400"],
        "",
        2,
        "captured knock stays valid for three periods",
    ),
    row(
        &["setup", "web", "--open-seconds", "3600"],
        "",
        2,
        "open_seconds must be between 1 and 300",
    ),
    row(
        &["server", "--config", "@/slow.toml", "--once"],
        "",
        2,
        "seq_timeout must be between 1 and 60 seconds, got 3600",
    ),
    row(
        &["setup", "web", "--firewall", "aws"],
        "",
        2,
        "--security-group",
    ),
    row(
        &["setup", "web", "--interface", "this-name-is-too-long"],
        "",
        2,
        "interface",
    ),
    // Environment: the config path is a directory; the keyring is unreachable.
    Row {
        args: &["list"],
        stdin: "",
        env: &[("KNOCK_TOTP_CONFIG", "@")],
        code: 2,
        word: "is a directory",
    },
    Row {
        args: &["code", "kr"],
        stdin: "",
        env: &[(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/knock-totp-bus",
        )],
        code: 4,
        word: "--store file",
    },
];

#[test]
fn bad_input_matrix() {
    for (i, row) in ROWS.iter().enumerate() {
        let env = Env::new();
        env.add_file_host("web", "127.0.0.1", RFC_SECRET);
        // A keyring host whose secret is unreachable without a session bus.
        let hosts =
            fs::read_to_string(env.config()).unwrap() + "\n[hosts.kr]\naddress = \"127.0.0.1\"\n";
        fs::write(env.config(), hosts).unwrap();
        let scratch = env.path().join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        fs::write(scratch.join("garbage.toml"), "name = [\n").unwrap();
        fs::write(
            scratch.join("slow.toml"),
            "name = \"web\"\nsecret_file = \"/etc/knock-totp/web.secret\"\nport = 22\n\
             engine = \"nftables\"\nfirewall = \"nftables\"\nseq_timeout = 3600\n",
        )
        .unwrap();
        let scratch = scratch.to_str().unwrap().to_owned();
        let before = fs::read(env.config()).unwrap();
        let secrets = env.config().parent().unwrap().join("secrets");
        let stored = |dir: &std::path::Path| -> Vec<_> {
            fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect()
        };
        let stored_before = stored(&secrets);
        fs::set_permissions(env.config(), fs::Permissions::from_mode(0o600)).unwrap();

        let mut cmd = env.cmd();
        cmd.args(row.args.iter().map(|a| expand(a, &scratch)))
            .write_stdin(row.stdin)
            .timeout(std::time::Duration::from_secs(20));
        for (key, value) in row.env {
            cmd.env(key, expand(value, &scratch));
        }
        let out = cmd.output().unwrap();
        let err = stderr_of(&out);
        let case = format!("row {i} {:?}", row.args);
        assert_eq!(out.status.code(), Some(row.code), "{case}: {err}");
        assert!(
            err.contains(row.word),
            "{case}: no {:?} in: {err}",
            row.word
        );
        assert!(!err.contains("panicked"), "{case}: {err}");
        for secret in ["GEZDGNBV", SHORT_SECRET] {
            assert!(
                !err.contains(secret) && !stdout_of(&out).contains(secret),
                "{case} leaked the secret"
            );
        }
        if err.starts_with("knock-totp: ") {
            let mut lines = err.lines();
            lines.next();
            assert!(
                lines.all(|l| l.starts_with("hint: ")),
                "{case}: more than one error line: {err}"
            );
        } else {
            assert!(err.starts_with("error: "), "{case}: {err}");
        }
        assert_eq!(
            fs::read(env.config()).unwrap(),
            before,
            "{case} changed hosts.toml"
        );
        assert_eq!(stored(&secrets), stored_before, "{case} stored a secret");
    }
}
