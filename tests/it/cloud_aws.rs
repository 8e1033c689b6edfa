//! The knockd engine on AWS, as root, against a moto server inside a lab's server namespace:
//! `setup`'s one-time commands open the knock range once and drop it on the host (knockd
//! still sees the knocks), the group's knock-range rules never change across rotations, a
//! door's grant is revoked on time, an admin's permanent /32 for a knocker's address survives
//! that knocker's door, and the daemon sweeps expired grants and the per-port knock rules
//! that older versions rotated.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use knock_totp::core::ports::PortPair;
use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};
use knock_totp::core::window::Window;

use crate::support::lab::{iptables_door, lab_available, Lab, SERVER_IF};
use crate::support::{can_run, have, stderr_of, stdout_of, write_private, Env, RFC_SECRET};
use crate::support::{python3, unix_now};

const NAME: &str = "web";
const PERIOD: u64 = 10;
const OPEN_SECONDS: u64 = 4;
const SEQ_TIMEOUT: u64 = 3;
const PROTECTED: u16 = 22;
/// Outside the knock range, which the host drops (loopback included).
const MOTO_PORT: u16 = 15000;
/// A service listening inside the knock range: the host's drop must hide it.
const SERVICE_IN_RANGE: u16 = 5555;
const GRANT_PREFIX: &str = "knock-totp:web until ";

/// One SYN per port from a chosen source address (a knock by hand; no retransmits).
const SYN_PY: &str = r#"
import socket, sys, time
src, dst = sys.argv[1], sys.argv[2]
for i, p in enumerate(sys.argv[3:]):
    if i:
        time.sleep(0.1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    s.connect_ex((dst, int(p)))
    s.close()
"#;

/// The aws CLI's environment for moto: dummy credentials, no config files.
fn moto_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{MOTO_PORT}")),
        ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
        ("AWS_PAGER", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `env K=V ... ` before a program: knockd's doors and the daemon call aws with it.
fn with_moto_env(program: &[&str]) -> Vec<String> {
    let mut argv = vec!["env".to_owned()];
    argv.extend(moto_env().into_iter().map(|(k, v)| format!("{k}={v}")));
    argv.extend(program.iter().map(|s| (*s).to_owned()));
    argv
}

/// An ingress rule as describe-security-group-rules shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    id: String,
    from: i64,
    to: i64,
    cidr: String,
    description: String,
}

struct Rig {
    lab: Lab,
    group: String,
    totp: Totp,
    admin_ip: Ipv4Addr,
    server_log: PathBuf,
    knockd_log: PathBuf,
}

impl Rig {
    fn try_aws(&self, args: &[&str]) -> Result<Value, String> {
        let out = self
            .lab
            .server_cmd("aws")
            .args(args)
            .args(["--output", "json"])
            .envs(moto_env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(stderr_of(&out));
        }
        let text = stdout_of(&out);
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        })
    }

    fn aws(&self, args: &[&str]) -> Value {
        self.try_aws(args)
            .unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
    }

    /// The group's ingress rules, sorted.
    fn rules(&self) -> Vec<Rule> {
        let filter = format!("Name=group-id,Values={}", self.group);
        let out = self.aws(&["ec2", "describe-security-group-rules", "--filters", &filter]);
        let mut rules: Vec<Rule> = out["SecurityGroupRules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["IsEgress"] == false)
            .map(|r| Rule {
                id: r["SecurityGroupRuleId"].as_str().unwrap().to_owned(),
                from: r["FromPort"].as_i64().unwrap(),
                to: r["ToPort"].as_i64().unwrap(),
                cidr: r["CidrIpv4"]
                    .as_str()
                    .or(r["CidrIpv6"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                description: r["Description"].as_str().unwrap_or("").to_owned(),
            })
            .collect();
        rules.sort();
        rules
    }

    fn knock_range_rules(&self) -> Vec<Rule> {
        self.rules()
            .into_iter()
            .filter(|r| (r.from, r.to) == (1000, 9999))
            .collect()
    }

    /// Our grants for `ip` on the protected port.
    fn grants_for(&self, ip: &str) -> Vec<Rule> {
        let cidr = format!("{ip}/32");
        self.rules()
            .into_iter()
            .filter(|r| {
                r.cidr == cidr
                    && r.from == i64::from(PROTECTED)
                    && r.description.starts_with(GRANT_PREFIX)
            })
            .collect()
    }

    /// Adds a rule by hand (an admin, another server, an older version of ours).
    fn authorize(&self, port: u16, cidr: &str, description: &str) -> String {
        let (ranges, key) = if cidr.contains(':') {
            ("Ipv6Ranges", "CidrIpv6")
        } else {
            ("IpRanges", "CidrIp")
        };
        let permissions = format!(
            "[{{\"IpProtocol\":\"tcp\",\"FromPort\":{port},\"ToPort\":{port},\
             \"{ranges}\":[{{\"{key}\":\"{cidr}\",\"Description\":\"{description}\"}}]}}]"
        );
        let out = self.aws(&[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &self.group,
            "--ip-permissions",
            &permissions,
        ]);
        out["SecurityGroupRules"][0]["SecurityGroupRuleId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn has_rule(&self, id: &str) -> bool {
        self.rules().iter().any(|r| r.id == id)
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    fn knockd_log(&self) -> String {
        std::fs::read_to_string(&self.knockd_log).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "server log:\n{}\nknockd output:\n{}\nrules:\n{:#?}",
            self.server_log(),
            self.knockd_log(),
            self.rules()
        )
    }

    fn rotations(&self) -> usize {
        self.server_log()
            .lines()
            .filter(|l| l.contains(": doors for "))
            .count()
    }

    fn wait_rotations(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(PERIOD * count as u64 + 30);
        while self.rotations() < count {
            assert!(
                Instant::now() < deadline,
                "fewer than {count} rotations\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pair of a door that is in place now (the current window's, or the next one's when
    /// the current pair repeats a port and has no door).
    fn door_ports_now(&self) -> PortPair {
        let window = Window::at(unix_now().as_secs(), PERIOD);
        let ports = self.totp.ports_for(window);
        if ports.first() != ports.second() {
            ports
        } else {
            self.totp.ports_for(window.next())
        }
    }

    /// Knocks the current door from `src`; returns when knockd says the door opened for it.
    /// knockd reads packets with pcap and rereads its config at each rotation, so on a busy
    /// machine a knock can fall into a reload: up to three knocks, 5 s apart.
    fn knock(&self, src: Ipv4Addr) {
        let script = self.lab.dir.path().join("syn.py");
        std::fs::write(&script, SYN_PY).unwrap();
        let offset = self.knockd_log().len();
        let needle = format!("{src}: knock-totp-");
        for attempt in 1..=3 {
            let ports = self.door_ports_now();
            let out = self
                .lab
                .client_cmd(python3())
                .arg(&script)
                .arg(src.to_string())
                .arg(self.lab.server_ip.to_string())
                .arg(ports.first().to_string())
                .arg(ports.second().to_string())
                .output()
                .unwrap();
            assert!(out.status.success(), "syn.py: {}", stderr_of(&out));
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let opened = self.knockd_log().get(offset..).is_some_and(|text| {
                    text.lines()
                        .any(|l| l.starts_with(&needle) && l.contains("OPEN SESAME"))
                });
                if opened {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("cloud_aws: knock {attempt} from {src} not seen by knockd within 5 s");
        }
        panic!(
            "knockd opened no door for {src} in 3 knocks\n{}",
            self.logs()
        );
    }
}

/// The lines of `script` that make up the knock-range command (it ends with a `\`
/// continuation), after checking that the script loads the host's drop from where the base
/// unit loads it at every boot.
fn knock_range_command(script: &str, base_unit: &str) -> String {
    let mut lines = script.lines();
    let mut command = String::new();
    while let Some(line) = lines.next() {
        if line.starts_with("aws ec2 authorize-security-group-ingress") && line.ends_with('\\') {
            command = format!("{}{}", line.trim_end_matches('\\'), lines.next().unwrap());
            break;
        }
    }
    assert!(command.contains("FromPort=1000,ToPort=9999"), "{script}");
    let load = "nft -f /etc/knock-totp/web.nft";
    assert!(script.lines().any(|l| l == load), "{script}");
    assert!(
        base_unit
            .lines()
            .any(|l| l == format!("ExecStart=/usr/sbin/{load}")),
        "{base_unit}"
    );
    command
}

#[test]
fn knockd_on_aws_keeps_the_knock_range_and_revokes_only_its_own_grants() {
    if !lab_available()
        || !can_run(
            "needs moto_server, the aws CLI (scripts/test-deps.sh), nft and python3",
            have("moto_server") && have("aws") && have("nft") && have(python3()),
        )
    {
        return;
    }
    let mut lab = Lab::new("aws");
    let admin_ip = lab.add_client_ipv4(3);
    lab.server_spawn(
        &[
            "moto_server",
            "-H",
            "127.0.0.1",
            "-p",
            &MOTO_PORT.to_string(),
        ],
        "moto.log",
    );
    let dir = lab.dir.path().to_path_buf();
    let mut rig = Rig {
        lab,
        group: String::new(),
        totp: Totp::new(
            &SecretKey::from_base32(RFC_SECRET).unwrap(),
            Algorithm::Sha1,
            PERIOD,
        )
        .unwrap(),
        admin_ip,
        server_log: dir.join("server.log"),
        knockd_log: dir.join("knockd.out"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        match rig.try_aws(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "web",
            "--description",
            "test",
        ]) {
            Ok(out) => break out,
            Err(e) => assert!(Instant::now() < deadline, "moto never answered: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    rig.group = created["GroupId"].as_str().unwrap().to_owned();

    // What an older version rotated and left behind, another server's rule, an expired grant
    // of ours that a door failed to revoke, and an admin's permanent rule for a knocker.
    let rotated = rig.authorize(4321, "0.0.0.0/0", "knock-totp:web");
    let other_server = rig.authorize(4322, "0.0.0.0/0", "knock-totp:db");
    let expired = rig.authorize(
        PROTECTED,
        "192.0.2.50/32",
        "knock-totp:web until 2020-01-01T00:00:00+00:00",
    );
    let admin_cidr = format!("{}/32", rig.admin_ip);
    let admin = rig.authorize(PROTECTED, &admin_cidr, "admin: office");

    // setup's one-time script, as an admin runs it: the knock range in the group, and the
    // drop of the range on the host.
    let env = Env::new();
    let out_dir = env.path().join("out");
    let out = env
        .cmd()
        .args(["setup", NAME, "--engine", "knockd", "--firewall", "aws"])
        .args(["--security-group", &rig.group, "--region", "us-east-1"])
        .args(["--interface", SERVER_IF, "--address"])
        .arg(rig.lab.server_ip.to_string())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    let script = std::fs::read_to_string(out_dir.join("firewall-setup.sh")).unwrap();
    let base_unit = std::fs::read_to_string(out_dir.join("knock-totp-web-base.service")).unwrap();
    let knock_range_command = knock_range_command(&script, &base_unit);
    let out = rig
        .lab
        .server_cmd("sh")
        .args(["-c", &knock_range_command])
        .envs(moto_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{knock_range_command}: {}",
        stderr_of(&out)
    );
    let range_rules = rig.knock_range_rules();
    assert_eq!(range_rules.len(), 2, "IPv4 and IPv6: {range_rules:#?}");

    // The IPv6 door commands as knockd runs them (sh, %IP% substituted): the grant is the
    // knocker's /128 with its expiry, and stop revokes it; for an address an admin keeps open
    // (a /128 of their own) the door adds nothing and revokes nothing.
    let conf_text = std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap();
    let command = |key: &str| {
        conf_text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {key} in:\n{conf_text}"))
    };
    let run_door = |key: &str, ip: &str| {
        rig.lab
            .server_cmd("sh")
            .args(["-c", &command(key).replace("%IP%", ip)])
            .envs(moto_env())
            .output()
            .unwrap()
    };
    let v6_grants = |ip: &str| {
        let cidr = format!("{ip}/128");
        rig.rules()
            .into_iter()
            .filter(|r| r.cidr == cidr && r.description.starts_with(GRANT_PREFIX))
            .count()
    };
    let knocker6 = "fd13:213::7";
    let out = run_door("start_command_6", knocker6);
    assert!(out.status.success(), "start_command_6: {}", stderr_of(&out));
    assert_eq!(v6_grants(knocker6), 1, "{:#?}", rig.rules());
    let out = run_door("stop_command_6", knocker6);
    assert!(out.status.success(), "stop_command_6: {}", stderr_of(&out));
    assert_eq!(v6_grants(knocker6), 0, "{:#?}", rig.rules());
    let admin6 = rig.authorize(PROTECTED, "fd13:213::8/128", "admin: office v6");
    let out = run_door("start_command_6", "fd13:213::8");
    assert!(!out.status.success(), "a duplicate of the admin's rule");
    run_door("stop_command_6", "fd13:213::8");
    assert!(rig.has_rule(&admin6), "{:#?}", rig.rules());

    rig.lab.start_echo_server(SERVICE_IN_RANGE);
    assert!(rig.lab.client_can_connect(SERVICE_IN_RANGE));
    let ruleset_file = out_dir.join("web.nft");
    rig.lab
        .server_exec(&["nft", "-f", ruleset_file.to_str().unwrap()]);
    assert!(
        !rig.lab.client_can_connect(SERVICE_IN_RANGE),
        "the host's drop must hide a service in the knock range"
    );

    // knockd in the foreground (its -D output says which door opened), then the daemon.
    let conf = dir.join("knockd.conf");
    std::fs::write(
        &conf,
        rig.lab
            .knockd_conf(&[iptables_door("placeholder", [40001, 40002], PROTECTED, 2)]),
    )
    .unwrap();
    let conf_arg = conf.to_str().unwrap().to_owned();
    rig.lab.server_spawn(
        &with_moto_env(&["knockd", "-c", &conf_arg, "-v", "-D"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "knockd.out",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rig.knockd_log().contains("listening on") {
        assert!(Instant::now() < deadline, "knockd: {}", rig.knockd_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, pid_file) = rig.lab.write_knockd_pid_file();
    let secret = dir.join("web.secret");
    write_private(&secret, &format!("{RFC_SECRET}\n"));
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{NAME}\"\nsecret_file = \"{}\"\nport = {PROTECTED}\nengine = \"knockd\"\n\
             interface = \"{SERVER_IF}\"\nknockd_conf = \"{conf_arg}\"\nknockd_pid_file = \"{}\"\n\
             firewall = \"aws\"\nopen_seconds = {OPEN_SECONDS}\nseq_timeout = {SEQ_TIMEOUT}\n\
             period = {PERIOD}\n[aws]\nsecurity_group = \"{}\"\nregion = \"us-east-1\"\n",
            secret.display(),
            pid_file.display(),
            rig.group,
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let bin = env!("CARGO_BIN_EXE_knock-totp");
    rig.lab.server_spawn(
        &with_moto_env(&[bin, "-v", "server", "--config", &config_arg])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "server.log",
    );
    rig.wait_rotations(1);

    // The first rotation swept our stale rules and nothing else.
    assert!(!rig.has_rule(&rotated), "{}", rig.logs());
    assert!(!rig.has_rule(&expired), "{}", rig.logs());
    assert!(rig.has_rule(&other_server), "{}", rig.logs());
    assert!(rig.has_rule(&admin), "{}", rig.logs());

    // A door's grant: the knocker's /32 only, described with its expiry, revoked on time.
    let client = rig.lab.client_ip;
    let knocked = Instant::now();
    let knocked_at = unix_now().as_secs();
    rig.knock(client);
    let grant = loop {
        if let Some(grant) = rig.grants_for(&client.to_string()).pop() {
            break grant;
        }
        assert!(
            knocked.elapsed() < Duration::from_secs(OPEN_SECONDS),
            "no grant appeared for {client}\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let expiry: jiff::Timestamp = grant.description[GRANT_PREFIX.len()..].parse().unwrap();
    let expiry = expiry.as_second() as u64;
    assert!(
        (knocked_at + OPEN_SECONDS..=knocked_at + OPEN_SECONDS + 3).contains(&expiry),
        "expiry {expiry} for a knock at {knocked_at}: {grant:?}"
    );
    while rig.has_rule(&grant.id) {
        assert!(
            knocked.elapsed() < Duration::from_secs(OPEN_SECONDS + 8),
            "the grant outlived open_seconds ({OPEN_SECONDS} s)\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A door for the address an admin keeps open adds nothing and revokes nothing: AWS keys
    // rules by (protocol, port, address), and revoking by that key would remove the admin's.
    let knocked = Instant::now();
    rig.knock(rig.admin_ip);
    while knocked.elapsed() < Duration::from_secs(OPEN_SECONDS + 8) {
        assert!(
            rig.has_rule(&admin),
            "the admin's rule was revoked\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(rig.grants_for(&rig.admin_ip.to_string()).is_empty());

    // Rotations never touch the knock range.
    let seen = rig.rotations();
    rig.wait_rotations(seen + 2);
    assert_eq!(rig.knock_range_rules(), range_rules, "{}", rig.logs());
    assert!(
        rig.rules()
            .iter()
            .all(|r| !(r.description == "knock-totp:web" && r.from == r.to)),
        "{}",
        rig.logs()
    );

    // SIGTERM revokes every grant of ours, running or not, and nothing else.
    let live = rig.authorize(
        PROTECTED,
        "192.0.2.60/32",
        "knock-totp:web until 2100-01-01T00:00:00+00:00",
    );
    let daemon = rig.lab.server_pids("knock-totp");
    assert_eq!(daemon.len(), 1, "{daemon:?}");
    Command::new("kill")
        .args(["-TERM", &daemon[0].to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Lab::process_alive(daemon[0]) {
        assert!(Instant::now() < deadline, "{}", rig.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!rig.has_rule(&live), "{}", rig.logs());
    assert!(rig.has_rule(&admin) && rig.has_rule(&other_server));
    assert_eq!(rig.knock_range_rules(), range_rules);
    assert!(!rig.server_log().contains(RFC_SECRET));
}
