//! End to end, as root: the ssh path against a real OpenSSH sshd behind the nftables engine.
//! `setup` writes the server's files, the lab's server namespace loads them, runs
//! `knock-totp server` and `sshd -D -e`; the client namespace logs in with `knock-totp ssh`,
//! with ssh through the README's ProxyCommand recipe, and with scp through it. sshd must see
//! exactly one connection per login: the one that proved the door open.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::lab::{lab_available, Lab};
use crate::support::{can_run, have, stderr_of, stdout_of, wait_until, Env, RFC_SECRET};

const NAME: &str = "web";
/// Short, so that each login below finds the door closed again and knocks.
const OPEN_SECONDS: u64 = 2;

fn sshd_lab_available() -> bool {
    lab_available()
        && ["nft", "sshd", "ssh", "scp", "ssh-keygen"]
            .into_iter()
            .all(|p| can_run(&format!("needs {p} (scripts/test-deps.sh)"), have(p)))
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr_of(&out));
    out
}

/// The server: setup's files with the nftables engine, its firewall and daemon running.
fn protected_server(lab: &mut Lab) {
    let files = lab.dir.path().join("setup");
    let out = Env::new()
        .cmd()
        .args(["-q", "setup", NAME, "--secret", "-", "--port", "22"])
        .args(["--open-seconds", &OPEN_SECONDS.to_string(), "--out"])
        .arg(&files)
        .write_stdin(RFC_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    let edit = |file: &str, from: &str, to: &Path| {
        let path = files.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} lacks {from}:\n{text}");
        std::fs::write(&path, text.replace(from, &to.to_string_lossy())).unwrap();
    };
    edit(
        "web.toml",
        "/etc/knock-totp/web.secret",
        &files.join("web.secret"),
    );
    edit(
        "firewall-setup.sh",
        "/etc/knock-totp/web.nft",
        &files.join("web.nft"),
    );
    run_ok(lab.server_cmd("sh").arg(files.join("firewall-setup.sh")));
    lab.start_daemon(&files.join("web.toml"), "doors in table");
}

/// sshd on port 22 of the server namespace, with a fresh host key and `client_key`'s public
/// half authorized for root. Returns its log (sshd -e writes it to stderr).
fn start_sshd(lab: &mut Lab, client_key: &Path) -> PathBuf {
    let dir = lab.dir.path().to_path_buf();
    let host_key = dir.join("host_key");
    for key in [&host_key, &client_key.to_path_buf()] {
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(key),
        );
    }
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port 22\nListenAddress 0.0.0.0\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile none\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\nSubsystem sftp internal-sftp\n",
            host_key.display(),
            authorized.display()
        ),
    )
    .unwrap();
    // sshd's privilege separation directory (the package creates it at boot).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sshd");
    let config = config.to_string_lossy().into_owned();
    let log = lab.server_spawn(&[sshd, "-D", "-e", "-f", &config], "sshd.log");
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            !lab.server_exec(&["ss", "-Htln", "sport = :22"])
                .stdout
                .is_empty()
        },
        || format!("sshd never listened: {:?}", std::fs::read_to_string(&log)),
    );
    log
}

/// A user's side: the profile, the README's ssh_config recipe with their key and a private
/// known_hosts, and `knock-totp` on PATH, as the recipe names it.
struct SshClient {
    ssh_config: PathBuf,
    path: String,
}

impl SshClient {
    fn new(lab: &Lab, env: &Env, client_key: &Path) -> Self {
        let server = lab.server_ip.to_string();
        env.add_file_host_with(NAME, &server, RFC_SECRET, &["--user", "root"]);
        let known_hosts = env.path().join("known_hosts");
        let ssh_config = env.path().join("ssh_config");
        std::fs::write(
            &ssh_config,
            format!(
                "{}Host *\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
                 UserKnownHostsFile {}\n    StrictHostKeyChecking accept-new\n    BatchMode yes\n",
                readme_recipe(&server),
                client_key.display(),
                known_hosts.display()
            ),
        )
        .unwrap();
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_knock-totp"))
            .parent()
            .unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self { ssh_config, path }
    }

    /// `program` in the client namespace, as the user runs it.
    fn cmd(&self, lab: &Lab, env: &Env, program: &str) -> Command {
        let mut cmd = lab.client_cmd(program);
        cmd.env("PATH", &self.path)
            .env("KNOCK_TOTP_CONFIG", env.config())
            .env("HOME", env.home());
        cmd
    }
}

/// The README's ssh_config recipe, pointed at `address`.
fn readme_recipe(address: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```")
        .find(|b| b.contains("ProxyCommand knock-totp proxy"))
        .expect("the README's ssh_config recipe");
    let recipe: String = block
        .lines()
        .map(|l| match l.trim().strip_prefix("HostName ") {
            Some(_) => format!("    HostName {address}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    assert!(recipe.contains(&format!("HostName {address}")), "{recipe}");
    recipe
}

#[test]
fn sshd_sees_one_connection_per_login_through_ssh_proxy_and_scp() {
    if !sshd_lab_available() {
        return;
    }
    let mut lab = Lab::new("sshd");
    protected_server(&mut lab);
    let env = Env::new();
    let client_key = env.path().join("id_ed25519");
    let sshd_log = start_sshd(&mut lab, &client_key);
    let client = SshClient::new(&lab, &env, &client_key);
    let ssh_config = &client.ssh_config;
    let known_hosts = env.path().join("known_hosts");
    let in_client = |program: &str| client.cmd(&lab, &env, program);
    let door_closes = || std::thread::sleep(Duration::from_secs(OPEN_SECONDS + 1));

    // 1. knock-totp ssh.
    let out = in_client("knock-totp")
        .args(["ssh", NAME, "--", "-F"])
        .arg(ssh_config)
        .args(["echo", "in-through-knock-totp-ssh"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nsshd:\n{}",
        stderr_of(&out),
        std::fs::read_to_string(&sshd_log).unwrap_or_default()
    );
    assert_eq!(stdout_of(&out), "in-through-knock-totp-ssh\n");
    assert!(
        !stderr_of(&out).contains("open before"),
        "{}",
        stderr_of(&out)
    );
    door_closes();

    // 2. ssh through the README's ProxyCommand.
    let out = in_client("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args([NAME, "echo", "in-through-the-proxy-command"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "in-through-the-proxy-command\n");
    door_closes();

    // 3. scp through it.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let source = env.path().join("payload");
    std::fs::write(&source, &payload).unwrap();
    let copy = lab.dir.path().join("copied");
    let out = in_client("scp")
        .arg("-F")
        .arg(ssh_config)
        .arg(&source)
        .arg(format!("{NAME}:{}", copy.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        std::fs::read(&copy).unwrap() == payload,
        "scp's copy differs"
    );

    // One known_hosts entry for both ways in: under the profile name.
    let known = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(known.lines().count(), 1, "{known}");
    assert!(known.starts_with(&format!("{NAME} ")), "{known}");

    // sshd: three logins, three connections, none closed before its banner.
    let mut log = String::new();
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            log = std::fs::read_to_string(&sshd_log).unwrap_or_default();
            log.matches("Accepted publickey").count() >= 3
        },
        || "sshd logged fewer than three logins".into(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(&sshd_log).unwrap();
    assert!(!log.contains("kex_exchange_identification"), "{log}");
    assert_eq!(log.matches("Connection from ").count(), 3, "{log}");
    assert_eq!(log.matches("Accepted publickey").count(), 3, "{log}");
}

#[test]
fn ten_ssh_logins_a_minute_through_the_proxy_command_are_never_banned() {
    if !sshd_lab_available() {
        return;
    }
    const LOGINS: u32 = 10;
    let mut lab = Lab::new("sshten");
    protected_server(&mut lab);
    let env = Env::new();
    let client_key = env.path().join("id_ed25519");
    start_sshd(&mut lab, &client_key);
    let client = SshClient::new(&lab, &env, &client_key);
    let started = std::time::Instant::now();
    for login in 0..LOGINS {
        // One login every 6 s: ten a minute, each finding the door closed again.
        let due = Duration::from_secs(6) * login;
        std::thread::sleep(due.saturating_sub(started.elapsed()));
        let out = client
            .cmd(&lab, &env, "ssh")
            .arg("-F")
            .arg(&client.ssh_config)
            .args([NAME, "echo", "in"])
            .output()
            .unwrap();
        assert!(out.status.success(), "login {login}: {}", stderr_of(&out));
        assert_eq!(stdout_of(&out), "in\n");
    }
    let config = lab.dir.path().join("setup").join("web.toml");
    let out = run_ok(
        lab.server_cmd(env!("CARGO_BIN_EXE_knock-totp"))
            .args(["server", "--config"])
            .arg(&config)
            .args(["--status", "--json"]),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "ten logins a minute: {LOGINS} in {:.1?}; counters {}",
        started.elapsed(),
        status["counters"]
    );
    assert_eq!(status["banned"], serde_json::json!([]), "{status}");
    assert_eq!(status["counters"]["bans"], 0, "{status}");
    assert_eq!(status["counters"]["limited"], 0, "{status}");
    assert!(
        status["counters"]["opened"].as_u64().unwrap() >= u64::from(LOGINS),
        "{status}"
    );
}
