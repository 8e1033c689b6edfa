//! A two-namespace network lab for root-only tests: a "server" and a "client" network
//! namespace joined by a veth pair, with firewall, listener and knockd helpers.
//!
//! ```ignore
//! let mut lab = Lab::new("knock");
//! lab.protect_port(22);
//! lab.start_echo_server(22);
//! lab.start_knockd(&lab.knockd_conf(&[iptables_door("now", [1111, 2222], 22, 2)]));
//! assert!(!lab.client_can_connect(22));
//! ```
//!
//! Namespaces, the veth pair and every address exist only inside the lab; nothing is
//! configured in the host namespace, and `Drop` kills every process in both namespaces and
//! deletes them, also when the test panics. Tests that use a lab should first check
//! `lab_available()`.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{can_run, have, is_root, wait_until};

/// The only firewall binary the lab uses (mixing iptables flavours leaves ports refused).
/// `-w` everywhere: the xtables lock is shared by all namespaces.
pub const IPTABLES: &str = "iptables";

/// Interface names inside the namespaces (they never exist in the host namespace).
pub const SERVER_IF: &str = "vS";
pub const CLIENT_IF: &str = "vC";

/// Programs a lab needs.
const LAB_PROGRAMS: [&str; 5] = ["ip", "iptables", "ipset", "knockd", "socat"];

static LABS_CREATED: AtomicU32 = AtomicU32::new(0);

/// Whether labs can be built here; prints the reason (or, under CI, panics) when not.
pub fn lab_available() -> bool {
    if !can_run("needs root for network namespaces", is_root()) {
        return false;
    }
    let missing: Vec<&str> = LAB_PROGRAMS.into_iter().filter(|p| !have(p)).collect();
    can_run(
        &format!(
            "needs {} (scripts/test-deps.sh installs them)",
            missing.join(", ")
        ),
        missing.is_empty(),
    )
}

pub struct Lab {
    pub server_ns: String,
    pub client_ns: String,
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    /// Scratch directory for configs, logs and scripts; removed on drop.
    pub dir: TempDir,
    children: Vec<Child>,
    knockd_out: Option<PathBuf>,
    netns_etc: Option<PathBuf>,
    /// Whether this lab created /etc/netns itself (then it removes it again when empty).
    created_etc_netns: bool,
    /// A third namespace behind the server, standing for a container (see `add_container`).
    container_ns: Option<String>,
}

impl Lab {
    /// Builds the namespaces and the link. `tag` (a few letters) names them for debugging;
    /// the process id and a counter keep parallel tests and test runs apart.
    pub fn new(tag: &str) -> Self {
        let n = LABS_CREATED.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        // The subnet only matters inside the lab, but a distinct one per lab keeps logs readable.
        let x = ((pid.wrapping_mul(7).wrapping_add(n)) % 250 + 1) as u8;
        let lab = Self {
            server_ns: format!("kt-{tag}-{pid}-{n}-s"),
            client_ns: format!("kt-{tag}-{pid}-{n}-c"),
            server_ip: Ipv4Addr::new(10, 213, x, 1),
            client_ip: Ipv4Addr::new(10, 213, x, 2),
            dir: tempfile::tempdir().expect("lab temp dir"),
            children: Vec::new(),
            knockd_out: None,
            netns_etc: None,
            created_etc_netns: false,
            container_ns: None,
        };
        // Created before the namespaces so that a failure below still cleans up in Drop.
        run_ok(Command::new("ip").args(["netns", "add", &lab.server_ns]));
        run_ok(Command::new("ip").args(["netns", "add", &lab.client_ns]));
        let (s, c) = (lab.server_ns.clone(), lab.client_ns.clone());
        run_ok(Command::new("ip").args([
            "-n", &s, "link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF, "netns",
            &c,
        ]));
        let server_cidr = format!("{}/24", lab.server_ip);
        let client_cidr = format!("{}/24", lab.client_ip);
        run_ok(Command::new("ip").args(["-n", &s, "addr", "add", &server_cidr, "dev", SERVER_IF]));
        run_ok(Command::new("ip").args(["-n", &c, "addr", "add", &client_cidr, "dev", CLIENT_IF]));
        for (ns, dev) in [(&s, "lo"), (&c, "lo"), (&s, SERVER_IF), (&c, CLIENT_IF)] {
            run_ok(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        lab
    }

    /// A command run inside the server namespace. A daemon started with it keeps its state
    /// file (the newest window served) in the lab, as systemd's StateDirectory= would.
    pub fn server_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = netns_cmd(&self.server_ns, program.as_ref());
        cmd.env("STATE_DIRECTORY", self.state_dir());
        cmd
    }

    /// Where daemons in the server namespace keep their state file (`NAME.window`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A command run inside the client namespace.
    pub fn client_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        netns_cmd(&self.client_ns, program.as_ref())
    }

    /// The argv prefix that runs a program in the client namespace (for `Env::cmd_via`).
    pub fn client_prefix(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.client_ns.clone(),
        ]
    }

    /// Runs `args` in the server namespace and panics (with its stderr) if it fails.
    pub fn server_exec(&self, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().expect("a program to run");
        run_ok(self.server_cmd(program).args(rest))
    }

    /// Starts a long-running process in the server namespace, its output in `log` under the
    /// lab directory. It is killed when the lab is dropped.
    pub fn server_spawn(&mut self, args: &[&str], log: &str) -> PathBuf {
        let (program, rest) = args.split_first().expect("a program to run");
        let path = self.dir.path().join(log);
        let out = std::fs::File::create(&path).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = self
            .server_cmd(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        self.children.push(child);
        path
    }

    /// Starts `knock-totp server --config CONFIG` in the server namespace through `prefix`
    /// (argv words before it, e.g. setpriv), its output in `log`; returns the log's path.
    pub fn spawn_daemon(&mut self, prefix: &[&str], config: &Path, log: &str) -> PathBuf {
        let config = config.to_string_lossy().into_owned();
        let mut argv = prefix.to_vec();
        argv.extend([
            env!("CARGO_BIN_EXE_knock-totp"),
            "server",
            "--config",
            &config,
        ]);
        self.server_spawn(&argv, log)
    }

    /// Starts `knock-totp server --config CONFIG` in the server namespace, its output in
    /// server.log, and returns that log's path once the log contains `ready` (within 10 s).
    pub fn start_daemon(&mut self, config: &Path, ready: &str) -> PathBuf {
        let log = self.spawn_daemon(&[], config, "server.log");
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        crate::support::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || read().contains(ready),
            || format!("the daemon never logged {ready:?}:\n{}", read()),
        );
        log
    }

    /// knockd in the foreground writes no pid file: writes the pid of the one knockd running
    /// in the server namespace to knockd.pid in the lab directory; returns the pid and the
    /// file's path (the daemon's `knockd_pid_file`).
    pub fn write_knockd_pid_file(&self) -> (u32, PathBuf) {
        let pids = self.server_pids("knockd");
        assert_eq!(pids.len(), 1, "knockd processes: {pids:?}");
        let path = self.dir.path().join("knockd.pid");
        std::fs::write(&path, format!("{}\n", pids[0])).unwrap();
        (pids[0], path)
    }

    /// Process ids of the programs named `name` (their `/proc/PID/comm`) running in the
    /// server namespace, e.g. a knockd started in the foreground (which writes no pid file).
    pub fn server_pids(&self, name: &str) -> Vec<u32> {
        let out = run_ok(Command::new("ip").args(["netns", "pids", &self.server_ns]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
            .collect()
    }

    /// Server firewall: established connections pass, `port` is refused with a reset, every
    /// other TCP port (the knock ports) is dropped silently. knockd sees packets before this.
    pub fn protect_port(&self, port: u16) {
        let port = port.to_string();
        self.server_exec(&[
            IPTABLES,
            "-w",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ]);
        self.server_exec(&[
            IPTABLES,
            "-w",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]);
        self.server_exec(&[IPTABLES, "-w", "-A", "INPUT", "-p", "tcp", "-j", "DROP"]);
    }

    /// What setup's iptables script gives `port` that `protect_port` lacks: the ipset
    /// `knock-totp-NAME-v4` where doors put their knockers (each element with its own
    /// timeout), accepted ahead of every other rule.
    pub fn accept_ipset(&self, name: &str, port: u16) {
        let set = format!("knock-totp-{name}-v4");
        self.server_exec(&["ipset", "create", &set, "hash:ip", "timeout", "30"]);
        let port = port.to_string();
        self.server_exec(&[
            IPTABLES,
            "-w",
            "-I",
            "INPUT",
            "1",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-m",
            "set",
            "--match-set",
            &set,
            "src",
            "-j",
            "ACCEPT",
        ]);
    }

    /// The server namespace's INPUT rules (`iptables -S INPUT`).
    pub fn server_rules(&self) -> String {
        let out = self.server_exec(&[IPTABLES, "-w", "-S", "INPUT"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An echo server (each connection's bytes sent back until EOF) on `port` in the server
    /// namespace; returns once it listens.
    pub fn start_echo_server(&mut self, port: u16) {
        let listen = format!("TCP4-LISTEN:{port},reuseaddr,fork");
        self.server_spawn(&["socat", &listen, "EXEC:cat"], &format!("echo-{port}.log"));
        self.wait_listening("-Htln", port, "echo server");
    }

    /// Waits until `ss FLAGS` in the server namespace shows a listener on `port`.
    fn wait_listening(&self, ss_flags: &str, port: u16, what: &str) {
        let filter = format!("sport = :{port}");
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                !self
                    .server_exec(&["ss", ss_flags, &filter])
                    .stdout
                    .is_empty()
            },
            || format!("{what} on port {port} never listened"),
        );
    }

    /// A knockd.conf with an `[options]` section for this lab (log under the lab directory,
    /// listening on the server's veth) followed by `doors`.
    pub fn knockd_conf(&self, doors: &[String]) -> String {
        let mut conf = format!(
            "[options]\n    LogFile = {}\n    Interface = {SERVER_IF}\n\n",
            self.dir.path().join("knockd.log").display()
        );
        for door in doors {
            conf.push_str(door);
            conf.push('\n');
        }
        conf
    }

    /// Writes `conf` and starts knockd in the foreground in the server namespace; returns
    /// once it listens.
    pub fn start_knockd(&mut self, conf: &str) {
        let path = self.dir.path().join("knockd.conf");
        std::fs::write(&path, conf).expect("write knockd.conf");
        let path = path.to_string_lossy().into_owned();
        let out = self.server_spawn(&["knockd", "-c", &path, "-v", "-D"], "knockd.out");
        self.knockd_out = Some(out.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.contains(&format!("listening on {SERVER_IF}")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "knockd did not start:\n{text}\nconfig:\n{conf}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What knockd printed so far (config, filter, stages, commands), for assertion messages.
    pub fn knockd_output(&self) -> String {
        self.knockd_out
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Whether a TCP connection from the client namespace to the server's `port` succeeds.
    pub fn client_can_connect(&self, port: u16) -> bool {
        let target = format!("TCP4:{}:{port},connect-timeout=1", self.server_ip);
        self.client_cmd("socat")
            .args(["-u", "/dev/null", &target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Host names the client namespace resolves through its own /etc/hosts (`ip netns exec`
    /// bind-mounts /etc/netns/NAME/hosts over /etc/hosts).
    pub fn client_hosts(&mut self, entries: &[(&str, &str)]) {
        let parent = Path::new("/etc/netns");
        self.created_etc_netns = !parent.exists();
        let dir = parent.join(&self.client_ns);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<client>");
        self.netns_etc = Some(dir.clone());
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, ip) in entries {
            text.push_str(&format!("{ip} {name}\n"));
        }
        std::fs::write(dir.join("hosts"), text).expect("write the client's hosts file");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        // Everything else that runs in the namespaces: knockd's command children, socat forks.
        let namespaces: Vec<&String> = [&self.server_ns, &self.client_ns]
            .into_iter()
            .chain(self.container_ns.as_ref())
            .collect();
        for ns in &namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        for ns in &namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(dir) = &self.netns_etc {
            let _ = std::fs::remove_dir_all(dir);
            if self.created_etc_netns {
                // Fails, as it should, while another lab still has its directory there.
                let _ = std::fs::remove_dir("/etc/netns");
            }
        }
    }
}

/// A knockd door that opens `protected` for the knocking IPv4 address only: its start command
/// inserts one ACCEPT rule for %IP% and its stop command deletes exactly that rule.
pub fn iptables_door(name: &str, ports: [u16; 2], protected: u16, seq_timeout: u64) -> String {
    let rule = format!("INPUT -s %IP% -p tcp --dport {protected} -j ACCEPT");
    format!(
        "[{name}]\n    sequence = {}:tcp,{}:tcp\n    seq_timeout = {seq_timeout}\n    \
         tcpflags = syn\n    start_command = {IPTABLES} -w -I {rule}\n    cmd_timeout = 30\n    \
         stop_command = {IPTABLES} -w -D {rule}\n",
        ports[0], ports[1]
    )
}

fn netns_cmd(ns: &str, program: &OsStr) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// Helpers for the nftables-engine tests (tests/it/nft_e2e.rs): more client addresses (a
// replayer, a guesser), IPv6 on the link, connections from a chosen source address.

impl Lab {
    /// The lab's /24 (third octet), also used for its IPv6 /64s.
    fn subnet_octet(&self) -> u8 {
        self.server_ip.octets()[2]
    }

    /// Adds `10.213.X.host/24` to the client's veth (a second knocker on the same link; the
    /// lab's `client_ip` stays the source of connections that do not choose one).
    pub fn add_client_ipv4(&self, host: u8) -> Ipv4Addr {
        let mut octets = self.client_ip.octets();
        octets[3] = host;
        let ip = Ipv4Addr::from(octets);
        run_ok(Command::new("ip").args([
            "-n",
            &self.client_ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            CLIENT_IF,
        ]));
        ip
    }

    /// `fd13:213:X::host` on the lab's link.
    pub fn ipv6(&self, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd13,
            0x213,
            u16::from(self.subnet_octet()),
            0,
            0,
            0,
            0,
            host,
        )
    }

    /// Gives the server `fd13:213:X::1/64` and the client `fd13:213:X::2/64` (no duplicate
    /// address detection, so both are usable at once); returns (server, client).
    pub fn enable_ipv6(&self) -> (Ipv6Addr, Ipv6Addr) {
        let (server, client) = (self.ipv6(1), self.ipv6(2));
        for (ns, dev, ip) in [
            (&self.server_ns, SERVER_IF, server),
            (&self.client_ns, CLIENT_IF, client),
        ] {
            run_ok(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                dev,
                "nodad",
            ]));
        }
        client_neighbours_ready(self, server);
        (server, client)
    }

    /// Adds `fd13:213:X::host/64` to the client's veth, deprecated (preferred_lft 0) so that
    /// the kernel never picks it as a source by itself: only connections that bind to it use it.
    pub fn add_client_ipv6(&self, host: u16) -> Ipv6Addr {
        let ip = self.ipv6(host);
        run_ok(Command::new("ip").args([
            "-n",
            &self.client_ns,
            "addr",
            "add",
            &format!("{ip}/64"),
            "dev",
            CLIENT_IF,
            "nodad",
            "preferred_lft",
            "0",
        ]));
        ip
    }

    /// Whether a TCP connection from the client namespace, with source address `from`, to
    /// `to:port` succeeds within a second.
    pub fn client_can_connect_from(&self, from: IpAddr, to: IpAddr, port: u16) -> bool {
        let target = match (from, to) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                format!("TCP4:{to}:{port},bind={from},connect-timeout=1")
            }
            (IpAddr::V6(from), IpAddr::V6(to)) => {
                format!("TCP6:[{to}]:{port},bind=[{from}],connect-timeout=1")
            }
            _ => panic!("{from} and {to} are not of one family"),
        };
        self.client_cmd("socat")
            .args(["-u", "/dev/null", &target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// An IPv6-only echo server on `port` in the server namespace (next to the IPv4 one of
    /// `start_echo_server`); returns once it listens.
    pub fn start_echo_server6(&mut self, port: u16) {
        let listen = format!("TCP6-LISTEN:{port},reuseaddr,fork,ipv6only=1");
        self.server_spawn(
            &["socat", &listen, "EXEC:cat"],
            &format!("echo6-{port}.log"),
        );
        self.wait_listening("-Htln6", port, "IPv6 echo server");
    }

    /// Whether the process `pid` still runs (exists and is not a zombie).
    pub fn process_alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    }
}

/// Waits (bounded) until the client reaches the server's IPv6 address: a connection to port 1
/// (no listener, not a knock port) is refused by the server's TCP stack.
fn client_neighbours_ready(lab: &Lab, server: Ipv6Addr) {
    let target = format!("TCP6:[{server}]:1,connect-timeout=1");
    for _ in 0..50 {
        let out = lab
            .client_cmd("socat")
            .args(["-u", "/dev/null", &target])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("refused")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the client never reached {server}");
}

// A container behind the server, published as Docker does it (tests/it/nft_e2e/docker.rs).

/// The container's link, the same in every lab (it exists only between the lab's server
/// and container namespaces).
const CONTAINER_HOST_IP: &str = "10.213.251.1";
const CONTAINER_IP: &str = "10.213.251.2";

impl Lab {
    /// A namespace behind the server standing for a container: a veth to the server, which
    /// forwards to it; returns its address.
    pub fn add_container(&mut self) -> Ipv4Addr {
        let ns = format!("{}-k", self.server_ns.trim_end_matches("-s"));
        run_ok(Command::new("ip").args(["netns", "add", &ns]));
        self.container_ns = Some(ns.clone());
        let s = self.server_ns.clone();
        run_ok(Command::new("ip").args([
            "-n", &s, "link", "add", "ktbr0", "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]));
        run_ok(Command::new("ip").args([
            "-n",
            &s,
            "addr",
            "add",
            &format!("{CONTAINER_HOST_IP}/24"),
            "dev",
            "ktbr0",
        ]));
        run_ok(Command::new("ip").args([
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{CONTAINER_IP}/24"),
            "dev",
            "eth0",
        ]));
        for (n, dev) in [(&s, "ktbr0"), (&ns, "eth0"), (&ns, "lo")] {
            run_ok(Command::new("ip").args(["-n", n, "link", "set", dev, "up"]));
        }
        run_ok(Command::new("ip").args([
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            CONTAINER_HOST_IP,
        ]));
        run_ok(netns_cmd(&s, OsStr::new("sysctl")).args(["-qw", "net.ipv4.ip_forward=1"]));
        CONTAINER_IP.parse().unwrap()
    }

    /// An echo server on `port` in the container.
    pub fn start_container_echo_server(&mut self, port: u16) {
        let ns = self.container_ns.clone().expect("add_container first");
        let log = std::fs::File::create(self.dir.path().join("container-echo.log")).unwrap();
        let child = netns_cmd(&ns, OsStr::new("socat"))
            .args([&format!("TCP4-LISTEN:{port},reuseaddr,fork"), "EXEC:cat"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                !netns_cmd(&ns, OsStr::new("ss"))
                    .args(["-Htln", &format!("sport = :{port}")])
                    .output()
                    .unwrap()
                    .stdout
                    .is_empty()
            },
            || format!("the container's echo server on port {port} never listened"),
        );
    }

    /// What Docker does to publish the container's `container_port` on the server's
    /// `host_port`: a DNAT in prerouting and, in its own forward chain (policy drop), an
    /// accept for the container (Docker's rules, in an nft table of their own).
    pub fn publish_like_docker(&self, host_port: u16, container_port: u16) {
        let rules = format!(
            "table ip docker_lab {{\n\
             \tchain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n\
             \t\tfib daddr type local tcp dport {host_port} dnat to {CONTAINER_IP}:{container_port}\n\t}}\n\
             \tchain forward {{ type filter hook forward priority filter; policy drop;\n\
             \t\tct state established,related accept\n\
             \t\tip daddr {CONTAINER_IP} tcp dport {container_port} accept\n\t}}\n\
             }}\n"
        );
        let path = self.dir.path().join("docker.nft");
        std::fs::write(&path, rules).unwrap();
        run_ok(
            netns_cmd(&self.server_ns, OsStr::new("nft"))
                .arg("-f")
                .arg(&path),
        );
    }
}
