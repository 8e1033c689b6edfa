//! The knockd engine on GCP and on Azure, as root in a lab: the daemon deletes at the first
//! rotation the door grants of its own whose expiry has passed (or cannot be read), also a
//! grant whose stop command never ran because knockd was killed with its children, and on
//! SIGTERM every grant of its own; an admin's rules, setup's knock-range rules and another
//! server's grants stay. There is no emulator for either cloud: `gcloud` and `az` are
//! stand-ins (cloud_cli.py, first on PATH for knockd's door commands and for the daemon) that
//! keep the rules in one JSON file and log every call.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use knock_totp::server::firewall::ProtectedPort;

use crate::support::lab::{iptables_door, lab_available, Lab, SERVER_IF};
use crate::support::{can_run, have, stderr_of, wait_until, Env};
use crate::support::{python3, unix_now};

const NAME: &str = "web";
const PERIOD: u64 = 5;
/// Longer than a period, so that a rotation falls inside every grant's life.
const OPEN_SECONDS: u64 = 6;
const PROTECTED: u16 = 22;
const GRANT_PREFIX: &str = "knock-totp:web until ";
const PAST: &str = "2020-01-01T00:00:00+00:00";
const FUTURE: &str = "2100-01-01T00:00:00+00:00";
/// The stand-in for gcloud and az (it acts as the one it is named after).
const CLOUD_CLI_PY: &str = include_str!("cloud_cli.py");
/// `/proc/PID/comm` of the daemon: the stand-ins log their parent's, so the test tells the
/// daemon's calls from those of knockd's door commands (run by sh).
const DAEMON_COMM: &str = "knock-totp";

#[derive(Debug, Clone, Copy)]
enum Cloud {
    Gcp,
    Azure,
}

impl Cloud {
    fn firewall(self) -> &'static str {
        match self {
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Self::Gcp => "gcloud",
            Self::Azure => "az",
        }
    }

    /// setup's options for the cloud (the stand-in knows only resource group rg1, NSG nsg1).
    fn setup_args(self) -> &'static [&'static str] {
        match self {
            Self::Gcp => &[],
            Self::Azure => &["--resource-group", "rg1", "--security-group", "nsg1"],
        }
    }
}

/// A rule as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    description: Option<String>,
}

/// One call of a stand-in.
#[derive(Debug, Clone)]
struct Call {
    argv: Vec<String>,
    parent: String,
    exit: i64,
}

impl Call {
    fn by_daemon(&self) -> bool {
        self.parent == DAEMON_COMM
    }

    /// The rules a successful delete removed (gcloud: its positional names; az: `--name`).
    fn deleted(&self) -> Vec<String> {
        if self.exit != 0 || !self.argv.iter().any(|a| a == "delete") {
            return Vec::new();
        }
        if let Some(i) = self.argv.iter().position(|a| a == "--name") {
            return self.argv.get(i + 1).cloned().into_iter().collect();
        }
        let verb = self.argv.iter().position(|a| a == "delete").unwrap();
        self.argv[verb + 1..]
            .iter()
            .filter(|a| !a.starts_with("--"))
            .cloned()
            .collect()
    }
}

/// What a rule name makes of an address (the doors' `tr .: --`).
fn dashed(ip: &str) -> String {
    ip.replace(['.', ':'], "-")
}

/// The cloud id in the rule names of setup's door commands (`kt-<id>-$(echo %IP% ...`).
fn cloud_id_of_doors(knockd_conf: &str) -> String {
    let end = knockd_conf
        .find("-$(echo %IP%")
        .unwrap_or_else(|| panic!("no door rule name in:\n{knockd_conf}"));
    let start = knockd_conf[..end].rfind("kt-").unwrap() + "kt-".len();
    knockd_conf[start..end].to_owned()
}

/// The pids of `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            Some((p, rest.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

struct Rig {
    lab: Lab,
    cloud: Cloud,
    /// The stand-ins' directory: their rules and their call log are here too.
    bin: PathBuf,
    /// PATH with the stand-ins first.
    path: String,
    /// The client's environment; setup's files are under its `out`.
    env: Env,
    out_dir: PathBuf,
    /// The server's cloud id in rule names, as setup's door commands write it.
    id: String,
    /// The rules setup's one-time script created (the knock range's).
    setup_rules: BTreeSet<String>,
    knockd_pid_file: PathBuf,
}

impl Rig {
    /// A lab with the stand-ins, setup's files for the cloud, and setup's one-time script
    /// run as an admin runs it (the host's drop of the knock range loaded from setup's own
    /// file): the knock range's rules are in the cloud. None when the test cannot run here.
    fn new(cloud: Cloud) -> Option<Self> {
        if !lab_available()
            || !can_run(
                "needs nft and python3 (scripts/test-deps.sh)",
                have("nft") && have(python3()),
            )
        {
            return None;
        }
        let lab = Lab::new(cloud.firewall());
        let bin = lab.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for program in ["gcloud", "az"] {
            let file = bin.join(program);
            std::fs::write(&file, CLOUD_CLI_PY).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = Env::new();
        let out_dir = env.path().join("out");
        let out = env
            .cmd()
            .args(["setup", NAME, "--engine", "knockd", "--firewall"])
            .arg(cloud.firewall())
            .args(cloud.setup_args())
            .args(["--interface", SERVER_IF, "--period", &PERIOD.to_string()])
            .args(["--open-seconds", &OPEN_SECONDS.to_string()])
            .args(["--address", &lab.server_ip.to_string(), "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "setup: {}", stderr_of(&out));
        let id = cloud_id_of_doors(&std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap());
        let knockd_pid_file = lab.dir.path().join("knockd.pid");
        let mut rig = Self {
            lab,
            cloud,
            bin,
            path,
            env,
            out_dir,
            id,
            setup_rules: BTreeSet::new(),
            knockd_pid_file,
        };
        let script = std::fs::read_to_string(rig.out_dir.join("firewall-setup.sh"))
            .unwrap()
            .replace(
                "/etc/knock-totp/web.nft",
                rig.out_dir.join("web.nft").to_str().unwrap(),
            );
        let out = rig.sh(&script);
        assert!(out.status.success(), "{script}\n{}", stderr_of(&out));
        rig.setup_rules = rig.names();
        let knock_range = format!("kt-{}-knocks", rig.id);
        assert!(
            !rig.setup_rules.is_empty()
                && rig.setup_rules.iter().all(|n| n.starts_with(&knock_range)),
            "{:?}",
            rig.setup_rules
        );
        Some(rig)
    }

    /// The name of one of our grants (a door's, for `ip`).
    fn grant_name(&self, ip: &str) -> String {
        format!("kt-{}-{}", self.id, dashed(ip))
    }

    /// Starts knockd in the foreground (its -D output shows the doors), then the daemon
    /// from setup's config pointed at this knockd by pid file, as cloud_aws.rs does; returns
    /// after the daemon's first rotation.
    fn start_knockd_and_daemon(&mut self) {
        let dir = self.lab.dir.path().to_path_buf();
        let conf = dir.join("knockd.conf");
        std::fs::write(
            &conf,
            self.lab
                .knockd_conf(&[iptables_door("placeholder", [40001, 40002], PROTECTED, 2)]),
        )
        .unwrap();
        let conf_arg = conf.to_str().unwrap().to_owned();
        let knockd = self.with_path(&["knockd", "-c", &conf_arg, "-v", "-D"]);
        self.lab.server_spawn(
            &knockd.iter().map(String::as_str).collect::<Vec<_>>(),
            "knockd.out",
        );
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || self.read("knockd.out").contains("listening on"),
            || format!("knockd: {}", self.read("knockd.out")),
        );
        let (_, pid_file) = self.lab.write_knockd_pid_file();
        assert_eq!(pid_file, self.knockd_pid_file);
        let mut config: toml::Table = std::fs::read_to_string(self.out_dir.join("web.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let path_value = |p: &Path| toml::Value::String(p.display().to_string());
        config.insert(
            "secret_file".into(),
            path_value(&self.out_dir.join("web.secret")),
        );
        config.insert("knockd_conf".into(), path_value(&conf));
        config.remove("knockd_reload_command");
        config.insert("knockd_pid_file".into(), path_value(&self.knockd_pid_file));
        let config_file = dir.join("web.toml");
        std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
        let config_arg = config_file.to_str().unwrap().to_owned();
        let bin = env!("CARGO_BIN_EXE_knock-totp");
        let daemon = self.with_path(&[bin, "-v", "server", "--config", &config_arg]);
        self.lab.server_spawn(
            &daemon.iter().map(String::as_str).collect::<Vec<_>>(),
            "server.log",
        );
        self.wait_rotations(1);
    }

    /// The daemon's pid.
    fn daemon_pid(&self) -> u32 {
        let daemon = self.lab.server_pids("knock-totp");
        assert_eq!(daemon.len(), 1, "{daemon:?}\n{}", self.logs());
        daemon[0]
    }

    /// `env PATH=... ARGS`: how knockd, the daemon and the admin's commands find the stand-ins.
    fn with_path<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut argv = vec!["env".to_owned(), format!("PATH={}", self.path)];
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// Runs a shell command in the server namespace with the stand-ins on PATH.
    fn sh(&self, script: &str) -> Output {
        self.lab
            .server_cmd("env")
            .arg(format!("PATH={}", self.path))
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Adds a rule for `source` on the protected port by hand, as an admin (or another
    /// server, or a door) would with the cloud's CLI. Azure needs a free `priority`.
    fn add_rule(&self, name: &str, source: &str, description: Option<&str>, priority: u32) {
        let quote = |s: &str| format!("'{s}'");
        let mut command = match self.cloud {
            Cloud::Gcp => format!(
                "gcloud compute firewall-rules create {name} --network=default \
                 --direction=INGRESS --action=ALLOW --rules=tcp:{PROTECTED} \
                 --source-ranges={source}/32 --target-tags=admin --priority={priority} --quiet"
            ),
            Cloud::Azure => format!(
                "az network nsg rule create --resource-group rg1 --nsg-name nsg1 --name {name} \
                 --priority {priority} --direction Inbound --access Allow --protocol Tcp \
                 --source-address-prefixes {source}/32 --destination-port-ranges {PROTECTED} \
                 --output none"
            ),
        };
        if let Some(description) = description {
            command.push_str(&format!(" --description {}", quote(description)));
        }
        let out = self.sh(&command);
        assert!(out.status.success(), "{command}: {}", stderr_of(&out));
    }

    fn rules(&self) -> Vec<Rule> {
        let file = self
            .bin
            .join(format!("{}-rules.json", self.cloud.program()));
        let Ok(text) = std::fs::read_to_string(file) else {
            return Vec::new();
        };
        let rules: Value = serde_json::from_str(&text).unwrap();
        rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Rule {
                name: r["name"].as_str().unwrap().to_owned(),
                description: r["description"].as_str().map(str::to_owned),
            })
            .collect()
    }

    fn names(&self) -> BTreeSet<String> {
        self.rules().into_iter().map(|r| r.name).collect()
    }

    fn rule(&self, name: &str) -> Option<Rule> {
        self.rules().into_iter().find(|r| r.name == name)
    }

    fn calls(&self) -> Vec<Call> {
        std::fs::read_to_string(self.bin.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let call: Value = serde_json::from_str(line).unwrap();
                Call {
                    argv: call["argv"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned())
                        .collect(),
                    parent: call["parent"].as_str().unwrap().to_owned(),
                    exit: call["exit"].as_i64().unwrap(),
                }
            })
            .collect()
    }

    /// The rules the daemon's calls deleted so far.
    fn daemon_deleted(&self) -> BTreeSet<String> {
        self.daemon_deleted_since(0)
    }

    /// The rules the daemon's calls deleted after the first `calls` calls.
    fn daemon_deleted_since(&self, calls: usize) -> BTreeSet<String> {
        self.calls()
            .iter()
            .skip(calls)
            .filter(|c| c.by_daemon())
            .flat_map(Call::deleted)
            .collect()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.lab.dir.path().join(file)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let calls: Vec<String> = self
            .calls()
            .iter()
            .map(|c| format!("[{} exit {}] {}", c.parent, c.exit, c.argv.join(" ")))
            .collect();
        format!(
            "server log:\n{}\nknockd output:\n{}\ncalls:\n{}\nrules:\n{:#?}",
            self.read("server.log"),
            self.read("knockd.out"),
            calls.join("\n"),
            self.rules()
        )
    }

    fn rotations(&self) -> usize {
        self.read("server.log")
            .lines()
            .filter(|l| l.contains(": doors for "))
            .count()
    }

    fn wait_rotations(&self, count: usize) {
        wait_until(
            Duration::from_secs(PERIOD * count as u64 + 20),
            Duration::from_millis(100),
            || self.rotations() >= count,
            || format!("fewer than {count} rotations\n{}", self.logs()),
        );
    }

    /// Waits (up to `wait`) for the rule `name` to appear; returns it.
    fn wait_rule(&self, name: &str, wait: Duration) -> Rule {
        wait_until(
            wait,
            Duration::from_millis(50),
            || self.rule(name).is_some(),
            || format!("no rule {name} appeared\n{}", self.logs()),
        );
        self.rule(name).unwrap()
    }
}

/// The grant's expiry, unix seconds, from its description.
fn expiry_of(grant: &Rule) -> i64 {
    let description = grant.description.as_deref().unwrap_or("");
    let text = description
        .strip_prefix(GRANT_PREFIX)
        .unwrap_or_else(|| panic!("not a grant of {NAME}: {grant:?}"));
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{grant:?}: {e}"))
        .as_second()
}

fn sweeps_its_expired_grants_and_no_one_else_s(cloud: Cloud) {
    let began = Instant::now();
    let Some(mut rig) = Rig::new(cloud) else {
        return;
    };
    let server_ip = rig.lab.server_ip.to_string();
    let client_ip = rig.lab.client_ip.to_string();

    // What the daemon finds at its start: grants of ours that no door deleted (one expired,
    // one whose expiry cannot be read, one still running), an admin's rules for the
    // client's address (one named like ours but not described so), and another server's
    // expired grant.
    let other_id = ProtectedPort {
        server: "web2".into(),
        port: PROTECTED,
        open_seconds: OPEN_SECONDS,
    }
    .cloud_id();
    let expired = rig.grant_name("192.0.2.50");
    let unreadable = rig.grant_name("192.0.2.51");
    let live = rig.grant_name("192.0.2.60");
    let admin = "office-ssh".to_owned();
    let admin_named_like_ours = rig.grant_name("office");
    let other_server = format!("kt-{other_id}-192-0-2-50");
    let past = format!("{GRANT_PREFIX}{PAST}");
    let future = format!("{GRANT_PREFIX}{FUTURE}");
    rig.add_rule(&expired, "192.0.2.50", Some(&past), 1001);
    rig.add_rule(
        &unreadable,
        "192.0.2.51",
        Some("knock-totp:web until never"),
        1002,
    );
    rig.add_rule(&live, "192.0.2.60", Some(&future), 1003);
    rig.add_rule(&admin, &client_ip, Some("admin: office"), 500);
    rig.add_rule(&admin_named_like_ours, &client_ip, None, 501);
    rig.add_rule(
        &other_server,
        "192.0.2.50",
        Some(&format!("knock-totp:web2 until {PAST}")),
        1004,
    );
    let untouchable: BTreeSet<String> = rig
        .setup_rules
        .iter()
        .cloned()
        .chain([admin, admin_named_like_ours, other_server])
        .collect();

    rig.start_knockd_and_daemon();

    // 1. The first rotation deleted our expired grants, and nothing else.
    let mut expected = untouchable.clone();
    expected.insert(live.clone());
    assert_eq!(rig.names(), expected, "{}", rig.logs());
    assert_eq!(
        rig.daemon_deleted(),
        BTreeSet::from([expired.clone(), unreadable.clone()]),
        "{}",
        rig.logs()
    );

    // 2. A real knock: knockd's door creates the client's grant. Killed with its children,
    //    knockd never runs the stop command; the grant still goes, at the first rotation
    //    after its expiry.
    let otpauth = std::fs::read_to_string(rig.out_dir.join("web.otpauth")).unwrap();
    rig.env.add_uri_host(NAME, &server_ip, otpauth.trim());
    let grant_name = rig.grant_name(&client_ip);
    let knock = || {
        let out = rig
            .env
            .cmd_via(&rig.lab.client_prefix())
            .args(["knock", NAME])
            .output()
            .unwrap();
        assert!(out.status.success(), "knock: {}", stderr_of(&out));
    };
    let knocked_at = unix_now().as_secs_f64();
    knock();
    let grant = rig.wait_rule(&grant_name, Duration::from_secs(5));
    let knockd_pid = std::fs::read_to_string(&rig.knockd_pid_file).unwrap();
    let tree = process_tree(knockd_pid.trim().parse().unwrap());
    // Some of the door's shell may have ended meanwhile: kill says so, and that is fine.
    Command::new("kill")
        .arg("-KILL")
        .args(tree.iter().map(u32::to_string))
        .output()
        .unwrap();
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        || !tree.iter().any(|pid| Lab::process_alive(*pid)),
        || format!("knockd and its children {tree:?} survived SIGKILL"),
    );
    let seen_at = unix_now().as_secs_f64();
    let expiry = expiry_of(&grant);
    assert!(
        (knocked_at + OPEN_SECONDS as f64 - 1.0..=seen_at + OPEN_SECONDS as f64)
            .contains(&(expiry as f64)),
        "expiry {expiry} for a knock at {knocked_at}: {grant:?}"
    );
    while unix_now().as_secs_f64() < expiry as f64 - 0.5 {
        assert!(
            rig.rule(&grant_name).is_some(),
            "the grant went before its expiry\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let latest = expiry as f64 + PERIOD as f64 + 2.0;
    wait_until(
        Duration::from_secs_f64((latest - unix_now().as_secs_f64()).max(0.0)),
        Duration::from_millis(100),
        || rig.rule(&grant_name).is_none(),
        || format!("the grant outlived its expiry by a period\n{}", rig.logs()),
    );
    let late = unix_now().as_secs_f64() - expiry as f64;
    assert!(rig.daemon_deleted().contains(&grant_name), "{}", rig.logs());
    let door_deletes: Vec<Call> = rig
        .calls()
        .into_iter()
        .filter(|c| !c.by_daemon() && c.argv.iter().any(|a| a == "delete"))
        .collect();
    assert!(
        door_deletes.is_empty(),
        "a stop command ran: {door_deletes:?}"
    );
    assert_eq!(rig.names(), expected, "{}", rig.logs());

    // 3. SIGTERM: the daemon deletes every grant of ours, running or not (the seeded one and
    //    a door's, from a knock on the knockd the daemon restarted), and nothing else.
    knock();
    rig.wait_rule(&grant_name, Duration::from_secs(5));
    let daemon = rig.daemon_pid();
    let calls = rig.calls().len();
    Command::new("kill")
        .args(["-TERM", &daemon.to_string()])
        .status()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || !Lab::process_alive(daemon),
        || format!("the daemon did not stop\n{}", rig.logs()),
    );
    assert_eq!(rig.names(), untouchable, "{}", rig.logs());
    // Deleted by the daemon's own calls, not by the door's stop command (due only
    // OPEN_SECONDS after the knock).
    let deleted = rig.daemon_deleted_since(calls);
    assert!(
        deleted.contains(&live) && deleted.contains(&grant_name),
        "{}",
        rig.logs()
    );
    eprintln!(
        "{}: the unstopped grant went {late:.1} s after its expiry; {:.1} s in all",
        cloud.firewall(),
        began.elapsed().as_secs_f64()
    );
}

/// A grant that goes between the daemon's list and its delete (its door's stop command ran
/// meanwhile): gcloud then refuses the whole delete, and deletes nothing. The daemon still
/// deletes the other expired grant at that rotation and keeps running (GrantStore::revoke: a
/// rule already gone counts as deleted).
fn sweeps_past_a_grant_deleted_meanwhile(cloud: Cloud) {
    let Some(mut rig) = Rig::new(cloud) else {
        return;
    };
    let expired = rig.grant_name("192.0.2.50");
    let vanishing = rig.grant_name("192.0.2.52");
    let past = format!("{GRANT_PREFIX}{PAST}");
    rig.add_rule(&expired, "192.0.2.50", Some(&past), 1001);
    rig.add_rule(&vanishing, "192.0.2.52", Some(&past), 1002);
    let vanish = rig.bin.join("vanish");
    std::fs::write(&vanish, &vanishing).unwrap();
    rig.start_knockd_and_daemon();
    assert!(!vanish.exists(), "the daemon never listed the rules");
    assert_eq!(rig.names(), rig.setup_rules, "{}", rig.logs());
    assert!(rig.daemon_deleted().contains(&expired), "{}", rig.logs());
    assert!(Lab::process_alive(rig.daemon_pid()), "{}", rig.logs());
}

#[test]
fn knockd_on_gcp_sweeps_its_expired_grants_and_no_one_else_s() {
    sweeps_its_expired_grants_and_no_one_else_s(Cloud::Gcp);
}

#[test]
fn knockd_on_azure_sweeps_its_expired_grants_and_no_one_else_s() {
    sweeps_its_expired_grants_and_no_one_else_s(Cloud::Azure);
}

#[test]
fn knockd_on_gcp_sweeps_past_a_grant_deleted_meanwhile() {
    sweeps_past_a_grant_deleted_meanwhile(Cloud::Gcp);
}

#[test]
fn knockd_on_azure_sweeps_past_a_grant_deleted_meanwhile() {
    sweeps_past_a_grant_deleted_meanwhile(Cloud::Azure);
}
