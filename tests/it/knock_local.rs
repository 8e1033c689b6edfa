//! knock, ssh and proxy without root: loopback only, plus failures that need no network.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::support::{can_run, fdpass_ssh, have, stderr_of, stdout_of, Env, RFC_SECRET};

/// A loopback port with (very likely) nobody listening.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An echo server on loopback: each connection gets its bytes back, then EOF after the
/// client's EOF. Returns the port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

fn loopback_host(env: &Env, port: u16) {
    env.add_file_host_with(
        "lo",
        "127.0.0.1",
        RFC_SECRET,
        &["--port", &port.to_string(), "--user", "bob"],
    );
}

#[test]
fn unknown_host_exits_3_for_knock_ssh_and_proxy() {
    let env = Env::new();
    for args in [
        &["knock", "nosuch"][..],
        &["ssh", "nosuch"],
        &["proxy", "nosuch", "nosuch", "22"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("no such host"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

#[test]
fn a_name_that_does_not_resolve_is_a_clear_error() {
    // In a network namespace of its own the lookup cannot leave this machine.
    let offline = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can_run("needs `unshare -rn` (user and network namespaces)", offline) {
        return;
    }
    let env = Env::new();
    env.add_file_host("gone", "no-such-host.invalid", RFC_SECRET);
    let out = env
        .cmd_via(&["unshare", "-rn"])
        .args(["knock", "gone", "--margin", "0"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot resolve no-such-host.invalid"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn knock_to_a_closed_loopback_port_succeeds_and_shows_no_secret() {
    let env = Env::new();
    loopback_host(&env, closed_port());
    let out = env
        .cmd()
        .args(["-v", "knock", "lo", "--margin", "0"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("knocking 127.0.0.1 "), "{stderr}");
    assert!(!stderr.contains(RFC_SECRET), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn knock_ports_show_at_vv_only() {
    let env = Env::new();
    loopback_host(&env, closed_port());
    let pair = || stdout_of(&env.cmd().args(["ports", "lo"]).output().unwrap());
    let before = pair();
    let knock = |verbosity: &str| {
        let out = env
            .cmd()
            .args([verbosity, "knock", "lo", "--margin", "0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        stderr_of(&out)
    };
    let (v, vv) = (knock("-v"), knock("-vv"));
    let after = pair();
    for ports in [before.trim(), after.trim()] {
        assert!(!v.contains(ports), "-v showed the ports {ports}: {v}");
    }
    assert!(v.contains("knocking 127.0.0.1 "), "{v}");
    assert!(
        vv.contains(&format!("on ports {}", before.trim()))
            || vv.contains(&format!("on ports {}", after.trim())),
        "-vv did not show the ports: {vv}"
    );
}

#[test]
fn knock_by_address_reads_the_secret_from_stdin() {
    let env = Env::new();
    let port = closed_port().to_string();
    env.cmd()
        .args(["knock", "--address", "127.0.0.1", "--port", &port])
        .args(["--secret", "-", "--margin", "0"])
        .write_stdin(RFC_SECRET)
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["knock", "--address", "127.0.0.1", "--port", &port])
        .args(["--secret", RFC_SECRET])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let out = env
        .cmd()
        .args(["knock", "--address", "127.0.0.1", "--secret", "-"])
        .write_stdin("not base32!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn a_port_that_never_opens_exits_1_naming_the_causes() {
    let env = Env::new();
    loopback_host(&env, closed_port());
    let out = env
        .cmd()
        .args([
            "knock",
            "lo",
            "--verify",
            "--timeout",
            "0.3",
            "--margin",
            "0",
        ])
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Nothing guards or listens on the port: it refused before and after the knock. One line
    // of what happened, one of what to do.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].ends_with("refused every connection, before and after knocking: nothing listens, or a firewall rejects and no door opened"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("hint: check the profile's port"),
        "{stderr}"
    );
    assert!(!stderr.contains("open before knocking"), "{stderr}");
}

#[test]
fn knock_verify_reports_an_open_port() {
    let env = Env::new();
    let port = echo_server();
    loopback_host(&env, port);
    let out = env
        .cmd()
        .args(["knock", "lo", "--verify", "--margin", "0"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is open"), "{stderr}");
    // Nothing guards this port: the client says so.
    assert!(
        stderr.contains(
            "port PORT on 127.0.0.1 was open before knocking: its firewall does not close it"
                .replace("PORT", &port.to_string())
                .as_str()
        ),
        "{stderr}"
    );
}

#[test]
fn proxy_relays_to_a_loopback_echo_server() {
    let env = Env::new();
    loopback_host(&env, echo_server());
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let out = env
        .cmd()
        .args(["proxy", "lo", "--margin", "0"])
        .write_stdin(payload.clone())
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout == payload, "the echoed bytes differ");
}

#[test]
fn proxy_with_a_closed_stdin_exits_cleanly() {
    let env = Env::new();
    loopback_host(&env, echo_server());
    // `<&-` closes stdin before knock-totp starts.
    let out = env
        .cmd_via(&["sh", "-c", "exec \"$0\" proxy lo --margin 0 <&-"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "{}", stdout_of(&out));
}

#[test]
fn ssh_hands_the_connection_that_answered_to_ssh() {
    if !can_run("needs python3 for the stand-in ssh", have("python3")) {
        return;
    }
    let env = Env::new();
    let port = echo_server();
    env.add_file_host_with(
        "lo",
        "localhost",
        RFC_SECRET,
        &["--port", &port.to_string(), "--user", "bob"],
    );
    let stand_in = fdpass_ssh(env.path());
    let argv_file = env.path().join("argv");
    let out = env
        .cmd()
        .args(["ssh", "lo", "--margin", "0", "--", "-N"])
        .env("KNOCK_TOTP_SSH", &stand_in)
        .env("KT_ARGV_FILE", &argv_file)
        .env("KT_SEND", "through the handed-over socket\n")
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    // The echo server answered over the descriptor the ProxyCommand passed.
    assert_eq!(
        stdout_of(&out),
        "through the handed-over socket\n",
        "{stderr}"
    );
    // Nothing guards the port: the ProxyCommand said so (its stderr is ssh's).
    assert!(stderr.contains("was open before knocking"), "{stderr}");
    let argv = std::fs::read_to_string(&argv_file).unwrap();
    let argv: Vec<&str> = argv.lines().skip(1).collect();
    let port = port.to_string();
    assert_eq!(argv[..2], ["-o", "HostKeyAlias=lo"]);
    assert_eq!(argv[2], "-o");
    assert!(
        argv[3].starts_with("ProxyCommand='")
            && argv[3].ends_with("' proxy --fdpass --timeout 5 --margin 0 -- lo"),
        "{argv:?}"
    );
    assert_eq!(
        argv[4..],
        [
            "-o",
            "ProxyUseFdpass=yes",
            "-p",
            port.as_str(),
            "-l",
            "bob",
            "localhost",
            "-N"
        ]
    );
}

#[test]
fn ssh_reports_a_missing_ssh_program() {
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    loopback_host(&env, listener.local_addr().unwrap().port());
    let out = env
        .cmd()
        .args([
            "ssh",
            "lo",
            "--margin",
            "0",
            "--ssh-bin",
            "/nonexistent/ssh",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("cannot run /nonexistent/ssh"));
    // Checked before knocking: the protected port never saw the verifying connection.
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "knock-totp knocked and connected before finding ssh missing"
    );
    // A bare name is looked up on PATH.
    let out = env
        .cmd()
        .env("PATH", env.path())
        .args(["ssh", "lo", "--margin", "0", "--ssh-bin", "no-such-ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("cannot run no-such-ssh"),
        "{}",
        stderr_of(&out)
    );
    listener.accept().map(|_| ()).unwrap_err();
}

#[test]
fn near_the_end_of_a_window_knock_waits_for_the_next_one() {
    let env = Env::new();
    let port = closed_port().to_string();
    // With a 2 s period and a 2 s margin, every moment is too close to the window's end.
    let started = std::time::Instant::now();
    let out = env
        .cmd()
        .args(["-v", "knock", "--address", "127.0.0.1", "--port", &port])
        .args(["--secret", "-", "--period", "2", "--margin", "2"])
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting for the next one"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn verify_knocks_once_more_after_the_code_changed() {
    let env = Env::new();
    let port = closed_port().to_string();
    // A 1 s period: the code surely changes during a 1.2 s wait.
    let out = env
        .cmd()
        .args(["-v", "knock", "--address", "127.0.0.1", "--port", &port])
        .args(["--secret", "-", "--period", "1", "--margin", "0"])
        .args(["--verify", "--timeout", "1.2"])
        .write_stdin(RFC_SECRET)
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("knocking again").count(), 1, "{stderr}");
    assert!(
        stderr.contains("no connection within 1.2 s of knocking"),
        "{stderr}"
    );
}

#[test]
fn knock_and_verify_over_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        can_run("needs IPv6 on loopback", false);
        return;
    };
    let env = Env::new();
    let port = listener.local_addr().unwrap().port().to_string();
    env.add_file_host_with("lo6", "[::1]", RFC_SECRET, &["--port", &port]);
    let out = env
        .cmd()
        .args(["-v", "knock", "lo6", "--verify", "--margin", "0"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("knocking ::1 "), "{stderr}");
}

/// Through the real ssh (`knock-totp ssh`, ProxyUseFdpass), a failed knock shows our two
/// lines first, then only the two ssh prints when its proxy hands back no connection.
#[test]
fn a_failed_knock_through_real_ssh_shows_our_two_lines_then_ssh_s_two() {
    if !can_run(
        "needs the OpenSSH client (apt-get install openssh-client)",
        have("ssh"),
    ) {
        return;
    }
    let env = Env::new();
    loopback_host(&env, closed_port());
    let out = env
        .cmd()
        .env("HOME", env.home())
        .args([
            "ssh",
            "lo",
            "--timeout",
            "0.3",
            "--margin",
            "0",
            "--",
            "true",
        ])
        .write_stdin("")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    assert!(lines[0].starts_with("knock-totp: lo: port "), "{stderr}");
    assert!(lines[1].starts_with("hint: "), "{stderr}");
    let ssh_lines = [
        "mm_receive_fd: recvmsg: expected received 1 got 0",
        "proxy dialer did not pass back a connection",
    ];
    assert!(
        lines[2..].iter().all(|l| ssh_lines.contains(l)) && lines.len() <= 4,
        "ssh added lines the README does not describe:\n{stderr}"
    );
}

/// Under ssh's ProxyCommand, a failed knock leaves ssh two lines on stderr (what happened,
/// what to do) and nothing on stdout; the client's knock record is private.
#[test]
fn a_failed_proxy_knock_gives_ssh_two_lines() {
    let env = Env::new();
    loopback_host(&env, closed_port());
    let out = env
        .cmd()
        .args(["proxy", "lo", "127.0.0.1", "22", "--timeout", "0.3"])
        .args(["--margin", "0"])
        .write_stdin("")
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("knock-totp: lo: port "), "{stderr}");
    assert!(lines[1].starts_with("hint: "), "{stderr}");
    let record = env.config().parent().unwrap().join("state/knocks.toml");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&record).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("[hosts.lo]") && text.contains("failures"),
        "{text}"
    );
    assert!(!text.contains(RFC_SECRET), "{text}");
}
