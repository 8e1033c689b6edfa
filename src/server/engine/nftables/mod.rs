//! The nftables engine: every door lives in the kernel, in one table per server.
//!
//! The daemon replaces the doors (set elements) once per window in one `nft -f` transaction
//! that keeps every other set's contents; the doors' elements carry their own timeouts, so none
//! outlives its window when the daemon dies, and the protected port's drop never depends on the
//! daemon at all.

pub mod design;
pub mod metrics;
pub mod report;
pub mod ruleset;
pub mod status;
pub mod unban;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::metrics::MetricsInput;
use self::ruleset::{
    added_doors_transaction, base_ruleset, base_settings, doors_transaction, live_doors,
    remove_doors_transaction, rotation_transaction, NftDoor, NftParams, NftUser, ATTACK_SET,
    STATE_SET,
};
use self::ruleset::{
    grants_set, opened_counter, revoke_transaction, slot_of, Family, MAX_SLOT, SERVER_SLOT,
};
use self::status::{
    keyed_sources, named_counters, parse_status_value, set_elements, Counters, NftStatus,
};
use crate::core::window::Window;
use crate::error::UserError;
use crate::log::Log;
use crate::server::config::ServerConfig;
use crate::server::doors::{door_valid_until, ActiveDoor, DoorUser};
use crate::server::engine::Engine;
use crate::server::paths::table_name;
use crate::server::signals::StopSignal;
use serde_json::Value;

/// The ruleset parameters of a server's config.
pub fn params(config: &ServerConfig) -> NftParams {
    NftParams {
        table: table_name(&config.name),
        port: config.port,
        open_seconds: config.open_seconds,
        seq_timeout: config.seq_timeout,
        limits: config.nft_settings(),
        users: 0,
    }
}

/// A door in the kernel: valid from the start of the window before its own to the end of the
/// one after (the daemon's previous/current/next doors, one step of clock skew either way).
pub fn nft_door(door: &ActiveDoor, server_open_seconds: u64, slot: u16) -> NftDoor {
    let period = door.window.period;
    let until = door_valid_until(door.window);
    let user = door.user.as_deref();
    NftDoor {
        counter: door.window.counter,
        ports: door.ports.0,
        valid_from: door.window.counter.saturating_sub(1) * period,
        valid_until: user.and_then(|u| u.expires).map_or(until, |e| e.min(until)),
        user: user.map(|u| NftUser {
            name: u.name.clone(),
            tag: u.tag.clone(),
            open_seconds: u.open_seconds.unwrap_or(server_open_seconds),
        }),
        slot,
    }
}

/// Whether the input chain of a table listed by `nft -j` drops TCP to `port` (the protection that
/// must hold whatever else happened to the table).
pub fn drops_port(table: &serde_json::Value, port: u16) -> bool {
    let Some(items) = table.get("nftables").and_then(|v| v.as_array()) else {
        return false;
    };
    items
        .iter()
        .filter_map(|item| item.get("rule"))
        .any(|rule| {
            let in_input = rule.get("chain").and_then(|c| c.as_str()) == Some("input");
            let exprs = rule.get("expr").and_then(|e| e.as_array());
            in_input
                && exprs.is_some_and(|exprs| {
                    let drops = exprs.iter().any(|e| e.get("drop").is_some());
                    let matches_port = exprs.iter().any(|e| {
                        let m = e.get("match");
                        m.and_then(|m| m.get("left"))
                            .and_then(|l| l.get("payload"))
                            .and_then(|p| p.get("field"))
                            .and_then(|f| f.as_str())
                            == Some("dport")
                            && m.and_then(|m| m.get("right")).and_then(|r| r.as_u64())
                                == Some(u64::from(port))
                    });
                    drops && matches_port && exprs.len() <= 3
                })
        })
}

/// Runs `nft`: with `-f -` and a ruleset on stdin, or with plain arguments.
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: PathBuf,
}

impl Nft {
    /// The `nft` on PATH.
    pub fn on_path() -> Self {
        Self {
            program: PathBuf::from("nft"),
        }
    }

    /// Loads `ruleset` as one transaction (all of it or none of it).
    pub fn load(&self, ruleset: &str) -> anyhow::Result<()> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.missing(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(ruleset.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if output.status.success() {
            return Ok(());
        }
        // nft echoes the offending line, which holds door ports: keep only its first line.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        Err(not_root(
            UserError::runtime(format!("nft refused the ruleset: {first}")),
            &stderr,
        )
        .into())
    }

    /// Lifts `addr`'s bans and forgets its debts in the meters (every prefix level of
    /// `params`), in one transaction; returns what it removed, or `None` when the table is not
    /// in the kernel. Reads only the few sets concerned; an element that expired (or a source
    /// that knocked again) between the reading and the transaction makes nft refuse it: then
    /// it reads them again, at most three times in all.
    pub fn unban(
        &self,
        params: &NftParams,
        addr: std::net::IpAddr,
    ) -> anyhow::Result<Option<Vec<unban::Found>>> {
        const ATTEMPTS: usize = 3;
        let entries = unban::entries(params, addr);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.list_set(&params.table, STATE_SET)?.is_none() {
                return Ok(None);
            }
            let mut found = Vec::new();
            for entry in &entries {
                if let Some(listing) = self.list_set(&params.table, &entry.set)? {
                    found.extend(unban::find(entry, &listing));
                }
            }
            if found.is_empty() {
                return Ok(Some(found));
            }
            match self.load(&unban::transaction(&params.table, &found)) {
                Ok(()) => return Ok(Some(found)),
                Err(_) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The table as nft's JSON, or `None` when there is no such table.
    pub fn list_table(&self, table: &str) -> anyhow::Result<Option<String>> {
        self.list(table, &["table", "inet", table])
    }

    /// One set of the table as nft's JSON, or `None` when there is no such table or set.
    /// Cheap whatever the size of the table's other sets: nft reads only that set.
    pub fn list_set(&self, table: &str, set: &str) -> anyhow::Result<Option<Value>> {
        let Some(json) = self.list(table, &["set", "inet", table, set])? else {
            return Ok(None);
        };
        let value = serde_json::from_str(&json).map_err(|e| {
            UserError::runtime(format!("cannot read set {set} of table {table}: {e}"))
        })?;
        Ok(Some(value))
    }

    /// `nft -j list WHAT...` of `table`, or `None` when there is no such table.
    pub fn list(&self, table: &str, what: &[&str]) -> anyhow::Result<Option<String>> {
        let output = self
            .command()
            .arg("-j")
            .arg("list")
            .args(what)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.missing(e))?;
        if output.status.success() {
            return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        Err(not_root(
            UserError::runtime(format!(
                "nft cannot list table {table}: {}",
                stderr.lines().next().unwrap_or("").trim()
            )),
            &stderr,
        )
        .into())
    }

    /// The kernel's state of the table and whether it drops `port`, or `None` when the
    /// table is missing.
    pub fn status(&self, table: &str, port: u16) -> anyhow::Result<Option<(NftStatus, bool)>> {
        let Some(json) = self.list_table(table)? else {
            return Ok(None);
        };
        let unreadable = |e: String| UserError::runtime(format!("cannot read table {table}: {e}"));
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| unreadable(format!("nft JSON: {e}")))?;
        let status = parse_status_value(&value).map_err(unreadable)?;
        Ok(Some((status, drops_port(&value, port))))
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        // Door bounds are unix seconds, but keep nft's own time handling off the local zone.
        command.env("TZ", "UTC");
        command
    }

    fn missing(&self, error: std::io::Error) -> anyhow::Error {
        UserError::runtime(format!("cannot run {}: {error}", self.program.display()))
            .with_hint("install nftables (apt-get install nftables) and run as root")
            .into()
    }
}

/// `error` with a hint to run as root when nft said it was not allowed.
fn not_root(error: UserError, stderr: &str) -> UserError {
    if stderr.contains("Operation not permitted") {
        error.with_hint(
            "run as root (sudo knock-totp server ...): only root may read or change the \
             firewall; the daemon itself runs as root through its systemd unit",
        )
    } else {
        error
    }
}

/// The nftables engine of one server.
pub struct NftEngine {
    pub params: NftParams,
    pub nft: Nft,
    pub log: Log,
    /// How many doors are in the kernel now.
    installed: usize,
    /// The doors last put in place, to restore them with the table.
    last_doors: Vec<NftDoor>,
    /// What the last doors transaction left in the kernel; None when unknown (a table
    /// loaded afresh, a failed load, a revocation, the doors removed).
    in_kernel: Option<InKernel>,
    /// Whether the table was under attack at the last look (to log each change once).
    under_attack: bool,
    /// Each user's slot (by tag), which their door ids carry. A slot is never given to
    /// another user while the daemon runs (the table remembers used doors by id).
    slots: BTreeMap<String, u16>,
    next_slot: u16,
    /// The users' opened counters at the last look, by tag.
    opened_seen: BTreeMap<String, u64>,
    /// The grants seen at the last look: (slot, address) -> the unix second it ends.
    grants_seen: BTreeMap<(u16, IpAddr), u64>,
    /// The server's name (the metrics' `server` label).
    server: String,
    /// The metrics file (`server --metrics-file`), if any.
    metrics: Option<MetricsFile>,
    /// The unix second the doors of a window were last put in place.
    last_rotation: u64,
}

/// Where the metrics go, and what was last written there.
struct MetricsFile {
    path: PathBuf,
    /// The text last written (an unchanged text is not written again).
    written: Option<String>,
    /// Whether the last attempt failed (to log a failure once, and the recovery).
    failing: bool,
}

/// Most lines one look at the openings logs (a burst of logins must not flood the journal).
const OPENING_LINES: usize = 5;

impl NftEngine {
    pub fn new(config: &ServerConfig, users: usize, log: Log) -> Self {
        Self {
            params: params(config).for_users(users),
            nft: Nft::on_path(),
            log,
            installed: 0,
            last_doors: Vec::new(),
            in_kernel: None,
            under_attack: false,
            slots: BTreeMap::new(),
            next_slot: SERVER_SLOT + 1,
            opened_seen: BTreeMap::new(),
            grants_seen: BTreeMap::new(),
            server: config.name.clone(),
            metrics: None,
            last_rotation: 0,
        }
    }

    /// Makes sure the base table is in the kernel with the config's settings, reading only its
    /// small `state` set (never the meters, whose size an attacker controls); loads it when it
    /// is missing or was made otherwise (the first start, someone deleted it, another config or
    /// version). Returns whether it had to load it. Rules of a table that is in place are
    /// re-asserted by every doors transaction.
    fn ensure_base(&mut self, first: bool) -> anyhow::Result<bool> {
        let state = self.nft.list_set(&self.params.table, STATE_SET)?;
        let settings = base_settings(&self.params);
        let found = state.as_ref().map(|value| {
            let set = set_elements(value);
            (set.comment, set.numbers)
        });
        match found {
            Some((Some(comment), windows)) if comment == settings => {
                let _ = (first, windows);
                Ok(false)
            }
            Some((comment, _)) if first => {
                // The boot's base file, or a table of an earlier config or version.
                self.log.note(format!(
                    "table inet {} was made with other settings ({}): loading it with the \
                     config's ({settings}); grants, trust and bans start afresh",
                    self.params.table,
                    comment.as_deref().unwrap_or("none listed"),
                ));
                self.nft.load(&base_ruleset(&self.params))?;
                self.installed = 0;
                self.in_kernel = None;
                Ok(true)
            }
            found => {
                if !first || found.is_some() {
                    self.log.alarm(format!(
                        "TABLE inet {} WAS {}: restoring it (the port was not protected by it)",
                        self.params.table,
                        if found.is_some() { "ALTERED" } else { "GONE" }
                    ));
                }
                self.nft.load(&base_ruleset(&self.params))?;
                self.installed = 0;
                self.in_kernel = None;
                Ok(true)
            }
        }
    }

    /// Every grant now: (door id, address) and the unix second it ends.
    fn grants(&self, now: u64) -> anyhow::Result<Vec<(u32, IpAddr, u64)>> {
        let mut grants = Vec::new();
        for family in Family::BOTH {
            if let Some(listing) = self.nft.list_set(&self.params.table, &grants_set(family))? {
                for (id, source) in keyed_sources(&listing) {
                    grants.push((id, source.addr, now + source.seconds_left.unwrap_or(0)));
                }
            }
        }
        Ok(grants)
    }

    /// The users of the doors in place: slot -> name and tag.
    fn users_served(&self) -> BTreeMap<u16, (String, String)> {
        self.last_doors
            .iter()
            .filter_map(|d| {
                d.user
                    .as_ref()
                    .map(|u| (d.slot, (u.name.clone(), u.tag.clone())))
            })
            .collect()
    }

    /// The table's named counters (`nft -j list counters`: cheap, no set is listed), or
    /// `None` when the table is not in the kernel.
    fn read_counters(&self) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
        let table = &self.params.table;
        let Some(json) = self
            .nft
            .list(table, &["counters", "table", "inet", table])?
        else {
            return Ok(None);
        };
        let value: Value = serde_json::from_str(&json)
            .map_err(|e| UserError::runtime(format!("cannot read the counters of {table}: {e}")))?;
        Ok(Some(named_counters(&value)))
    }

    /// Logs who opened a door since the last look, and from where (never the ports): reads
    /// the counters, and the grants only when a user's count went up.
    fn watch_openings(&mut self) -> anyhow::Result<()> {
        if self.users_served().is_empty() {
            return Ok(());
        }
        match self.read_counters()? {
            Some(counters) => self.note_openings(&counters),
            None => Ok(()),
        }
    }

    /// `watch_openings` with the counters read.
    fn note_openings(&mut self, counters: &BTreeMap<String, u64>) -> anyhow::Result<()> {
        let users = self.users_served();
        if users.is_empty() {
            return Ok(());
        }
        let mut changed = false;
        for (_, tag) in users.values() {
            let count = counters.get(&opened_counter(tag)).copied().unwrap_or(0);
            if self.opened_seen.insert(tag.clone(), count) != Some(count) {
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let now = crate::clock::wall_clock()?.as_secs();
        let mut seen = BTreeMap::new();
        let mut lines = Vec::new();
        for (id, addr, until) in self.grants(now)? {
            let slot = slot_of(id);
            let key = (slot, addr);
            let newer = self
                .grants_seen
                .get(&key)
                .is_none_or(|seen_until| until > *seen_until);
            if newer {
                if let Some((name, _)) = users.get(&slot) {
                    lines.push(format!(
                        "door opened: user {name} from {addr} (grant {} s)",
                        until.saturating_sub(now)
                    ));
                }
            }
            let entry = seen.entry(key).or_insert(until);
            *entry = (*entry).max(until);
        }
        self.grants_seen = seen;
        let more = lines.len().saturating_sub(OPENING_LINES);
        for line in lines.into_iter().take(OPENING_LINES) {
            self.log.note(line);
        }
        if more > 0 {
            self.log.note(format!(
                "and {more} more doors opened (server --status lists the grants)"
            ));
        }
        Ok(())
    }

    /// Writes the metrics file from `counters` when its text changed; a failure is logged
    /// once (and the recovery), never an error of the doors.
    fn write_metrics(&mut self, counters: &BTreeMap<String, u64>) {
        let mut users: Vec<(String, u64)> = self
            .users_served()
            .into_values()
            .map(|(name, tag)| {
                let opened = counters.get(&opened_counter(&tag)).copied().unwrap_or(0);
                (name, opened)
            })
            .collect();
        users.sort();
        let text = metrics::render(&MetricsInput {
            server: self.server.clone(),
            counters: Counters::from_named(counters),
            users,
            under_attack: self.under_attack,
            doors: self.installed,
            last_rotation: self.last_rotation,
        });
        let Some(file) = self.metrics.as_mut() else {
            return;
        };
        if file.written.as_deref() == Some(text.as_str()) {
            return;
        }
        let result = crate::fsutil::write_atomically(&file.path, text.as_bytes(), 0o644);
        let failed = result.as_ref().err().map(|e| format!("{e:#}"));
        let was_failing = std::mem::replace(&mut file.failing, failed.is_some());
        let shown = file.path.display().to_string();
        match failed {
            None => {
                file.written = Some(text);
                if was_failing {
                    self.log.note(format!("metrics: {shown} written again"));
                }
            }
            Some(error) if !was_failing => self.log.alarm(format!(
                "metrics: {error} (the metrics file stays as it was until a write succeeds; \
                 the doors are not concerned)"
            )),
            Some(_) => {}
        }
    }

    /// Reads the counters and writes the metrics file, when there is one (after a rotation,
    /// or at a stop: a failure is logged, never an error of the doors).
    fn refresh_metrics(&mut self) {
        if self.metrics.is_none() {
            return;
        }
        match self.read_counters() {
            Ok(Some(counters)) => self.write_metrics(&counters),
            Ok(None) => {}
            Err(e) => self.log.alarm(format!("metrics: {e:#}")),
        }
    }

    /// The slot of a door's holder: the single secret's, or the user's (given at first sight).
    fn slot_for(&mut self, door: &ActiveDoor) -> anyhow::Result<u16> {
        let Some(user) = &door.user else {
            return Ok(SERVER_SLOT);
        };
        if let Some(slot) = self.slots.get(&user.tag) {
            return Ok(*slot);
        }
        if self.next_slot > MAX_SLOT {
            return Err(UserError::runtime(format!(
                "table inet {}: no slot left for user {} ({} users were served since the \
                 daemon started)",
                self.params.table,
                user.name,
                MAX_SLOT - SERVER_SLOT
            ))
            .with_hint("restart the daemon, which numbers the users afresh")
            .into());
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(user.tag.clone(), slot);
        Ok(slot)
    }

    fn nft_doors(&mut self, doors: &[ActiveDoor]) -> anyhow::Result<Vec<NftDoor>> {
        let mut nft_doors = Vec::with_capacity(doors.len());
        for door in doors {
            let slot = self.slot_for(door)?;
            nft_doors.push(nft_door(door, self.params.open_seconds, slot));
        }
        Ok(nft_doors)
    }

    /// Logs once when the server comes under attack and once when the attack is over.
    fn watch_attack(&mut self) -> anyhow::Result<()> {
        let attacked = self
            .nft
            .list_set(&self.params.table, ATTACK_SET)?
            .is_some_and(|value| !set_elements(&value).is_empty());
        if attacked != self.under_attack {
            self.under_attack = attacked;
            if attacked {
                self.log.alarm(format!(
                    "UNDER ATTACK: table inet {} counts more wrong knocks than the global budget \
                     (or more sources than its sets hold): only trusted sources reach a door until \
                     the rate falls (server --status shows the counters)",
                    self.params.table
                ));
            } else {
                self.log.note(format!(
                    "table inet {}: the attack is over; every source may knock again",
                    self.params.table
                ));
            }
        }
        Ok(())
    }

    /// Replaces the doors in the kernel with `doors` (one transaction, which also re-asserts
    /// every chain when `reassert`); returns how many were put in place (doors that knock the
    /// protected port or a public port are skipped, and doors not live now). Without
    /// `reassert`, adds the new doors alone when that is exact (see [`added_doors_transaction`]).
    fn load_doors(&mut self, doors: Vec<NftDoor>, reassert: bool) -> anyhow::Result<usize> {
        let now = crate::clock::wall_clock()?;
        let steady = Instant::now();
        let added = self
            .in_kernel
            .take()
            .filter(|k| !reassert && k.clock_held(now, steady))
            .and_then(|k| added_doors_transaction(&self.params, &k.doors, &doors, now));
        let transaction = match added {
            Some(added) => added,
            None if reassert => doors_transaction(&self.params, &doors, now),
            None => rotation_transaction(&self.params, &doors, now),
        };
        self.nft.load(&transaction)?;
        let live = live_doors(&self.params, &doors, now);
        self.installed = live.len();
        self.in_kernel = Some(InKernel {
            doors: live,
            wall: now,
            steady,
        });
        self.last_doors = doors;
        Ok(self.installed)
    }
}

/// The doors a transaction put in the kernel, and when (by both clocks).
struct InKernel {
    doors: Vec<NftDoor>,
    wall: Duration,
    steady: Instant,
}

impl InKernel {
    /// Whether the wall clock moved with the monotonic one since then (within a second):
    /// element timeouts run on the monotonic clock, doors' bounds on the wall clock.
    fn clock_held(&self, wall: Duration, steady: Instant) -> bool {
        let by_wall = wall.as_secs_f64() - self.wall.as_secs_f64();
        let by_steady = steady.duration_since(self.steady).as_secs_f64();
        (by_wall - by_steady).abs() <= 1.0
    }
}

impl Engine for NftEngine {
    fn preflight(&mut self, dry_run: bool) -> anyhow::Result<()> {
        self.params
            .validate()
            .map_err(|e| UserError::usage(format!("nftables engine: {e}")))?;
        let output = self
            .nft
            .command()
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) if output.status.success() => Ok(()),
            _ if dry_run => {
                self.log
                    .alarm("nft is not available (dry run: going on)".to_string());
                Ok(())
            }
            Ok(output) => Err(UserError::runtime(format!(
                "nft --version failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
            .into()),
            Err(e) => Err(self.nft.missing(e)),
        }
    }

    fn apply(
        &mut self,
        window: Window,
        doors: &[ActiveDoor],
        _stop: &mut StopSignal,
        first: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        self.ensure_base(first)?;
        let doors = self.nft_doors(doors)?;
        let wanted = doors.len();
        // A base table loaded just now has every chain; otherwise the repair every few
        // seconds re-asserts them, and the boundary's transaction is the doors alone.
        let in_place = self.load_doors(doors, first)?;
        self.last_rotation = crate::clock::wall_clock()?.as_secs();
        let skipped = wanted - in_place;
        self.log.note(format!(
            "window {}: {} doors in table inet {}{}, {} ms",
            window.counter,
            in_place,
            self.params.table,
            if skipped > 0 {
                format!(" ({skipped} skipped: a knock port is the protected port or a public one)")
            } else {
                String::new()
            },
            started.elapsed().as_millis()
        ));
        self.refresh_metrics();
        Ok(())
    }

    fn dry_run(&mut self, window: Window, doors: &[ActiveDoor]) -> anyhow::Result<()> {
        let doors = self.nft_doors(doors)?;
        let now = crate::clock::wall_clock()?;
        print!(
            "# dry run: window {}\n# would make sure table inet {} is in place:\n{}\
             # would load in one transaction (nft -f -):\n{}",
            window.counter,
            self.params.table,
            base_ruleset(&self.params),
            doors_transaction(&self.params, &doors, now)
        );
        Ok(())
    }

    fn stopping(&self) -> &'static str {
        "removing the doors (the port stays closed)"
    }

    /// A deleted table or a flushed chain is restored within seconds, doors included, not at
    /// the next boundary: the repair's doors transaction re-asserts every chain's rules
    /// (with `restore`). Then writes the metrics file when anything in it changed (one read
    /// of the counters serves both the openings' log and the metrics).
    fn repair(&mut self, restore: bool) -> anyhow::Result<()> {
        if restore {
            self.ensure_base(false)?;
            self.load_doors(self.last_doors.clone(), true)?;
        }
        self.watch_attack()?;
        if self.metrics.is_none() {
            return self.watch_openings();
        }
        let Some(counters) = self.read_counters()? else {
            return Ok(());
        };
        self.note_openings(&counters)?;
        self.write_metrics(&counters);
        Ok(())
    }

    /// Checks that the file can go there: a file name in an existing directory. Whether the
    /// daemon may write it shows at the first rotation (logged, never an error of the doors).
    fn write_metrics_to(&mut self, path: &Path) -> anyhow::Result<()> {
        let shown = path.display();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let bad = |why: String| -> anyhow::Error {
            UserError::usage(format!("--metrics-file {shown}: {why}"))
                .with_hint(
                    "give a file in node_exporter's textfile directory, e.g. \
                     /var/lib/prometheus/node-exporter/knock-totp.prom",
                )
                .into()
        };
        if path.file_name().is_none() {
            return Err(bad("not a file name".into()));
        }
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(bad("is a directory".into()));
        }
        if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(bad(format!("directory {} does not exist", dir.display())));
        }
        self.metrics = Some(MetricsFile {
            path: path.to_path_buf(),
            written: None,
            failing: false,
        });
        Ok(())
    }

    /// Deletes the users' grants sets and counters, and their addresses from the protected
    /// port's `allowed` sets, except an address another user's live grant also holds (behind
    /// one NAT, say): that grant stays.
    fn revoke(&mut self, users: &[Arc<DoorUser>]) -> anyhow::Result<()> {
        // Who else holds a grant, as fresh as the counters say.
        self.watch_openings()?;
        let now = crate::clock::wall_clock()?.as_secs();
        let tags: Vec<String> = users.iter().map(|u| u.tag.clone()).collect();
        let slots: Vec<u16> = tags
            .iter()
            .filter_map(|t| self.slots.get(t).copied())
            .collect();
        let grants = self.grants(now)?;
        let kept: std::collections::BTreeSet<IpAddr> = grants
            .iter()
            .filter(|(id, _, until)| !slots.contains(&slot_of(*id)) && *until > now)
            .map(|(_, addr, _)| *addr)
            .collect();
        let revoked: Vec<(u32, IpAddr)> = grants
            .iter()
            .filter(|(id, _, _)| slots.contains(&slot_of(*id)))
            .map(|(id, addr, _)| (*id, *addr))
            .collect();
        let mut addresses: Vec<IpAddr> = revoked
            .iter()
            .map(|(_, addr)| *addr)
            .filter(|addr| !kept.contains(addr))
            .collect();
        addresses.sort();
        addresses.dedup();
        self.grants_seen
            .retain(|(slot, _), _| !slots.contains(slot));
        for tag in &tags {
            self.opened_seen.remove(tag);
        }
        self.in_kernel = None;
        self.nft.load(&revoke_transaction(
            &self.params,
            &revoked,
            &addresses,
            &tags,
        ))
    }

    /// Removes every door; the table, its grants and the protected port's drop stay.
    fn shut_down(&mut self) -> anyhow::Result<()> {
        self.nft.load(&remove_doors_transaction(&self.params))?;
        self.log.note(format!(
            "removed {} doors; port {} stays closed",
            self.installed, self.params.port
        ));
        self.installed = 0;
        self.in_kernel = None;
        self.refresh_metrics();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::PortPair;

    #[test]
    fn table_names_are_what_nft_accepts() {
        assert_eq!(table_name("web"), "knock_totp_web");
        assert_eq!(table_name("web-01.example"), "knock_totp_web_01_example");
    }

    #[test]
    fn a_door_lives_from_the_window_before_its_own_to_the_one_after() {
        let door = nft_door(
            &ActiveDoor {
                window: Window::at(1_740_012_930, 30),
                ports: PortPair([4000, 4180]),
                user: None,
            },
            30,
            SERVER_SLOT,
        );
        assert_eq!(door.counter, 58_000_431);
        assert_eq!(door.valid_from, 58_000_430 * 30);
        assert_eq!(door.valid_until, 58_000_433 * 30);
        assert!(door.valid_from <= 1_740_012_930 && 1_740_012_930 < door.valid_until);
    }

    #[test]
    fn the_protected_ports_drop_is_recognised_in_nfts_json() {
        let drop = r#"{"nftables":[{"rule":{"family":"inet","table":"t","chain":"input","handle":5,
            "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},
            {"counter":"denied"},{"drop":null}]}}]}"#;
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert!(drops_port(&json(drop), 22));
        assert!(!drops_port(&json(drop), 2222));
        let accept = drop.replace(r#"{"drop":null}"#, r#"{"accept":null}"#);
        assert!(!drops_port(&json(&accept), 22));
        let elsewhere = drop.replace(r#""chain":"input""#, r#""chain":"doors""#);
        assert!(!drops_port(&json(&elsewhere), 22));
        assert!(!drops_port(&json("{}"), 22));
    }
}
