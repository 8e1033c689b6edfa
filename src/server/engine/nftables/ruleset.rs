//! Pure renderer for the in-kernel nftables knock engine.
//!
//! Everything here is "strings in, strings out": the caller feeds the text to
//! `nft -f -` (run it with `TZ=UTC` anyway, see below) and parses
//! `nft -j list table inet NAME` with `status.rs`.
//!
//! Design (verified in network namespaces on kernel 6.18 / nft 1.0.6):
//!
//! * `chain input` (hook input, priority `filter - 10`): protected port P first
//!   (`ct state established,related` / `@allowed4` / `@allowed6` accept, then
//!   drop), so P is never treated as a knock even when it lies in
//!   [`KNOCK_RANGE`]. Then TCP SYN-without-ACK to the knock range jumps to
//!   `knock`. Optionally the rest of the knock range is dropped.
//! * `chain knock`: SYNs to public ports go to `doors` unmetered (a banned
//!   source's straight back: it completes no door, but reaches the service);
//!   banned sources (IPv6 per /64) dropped, `counter knocks`, per-source (IPv6
//!   per /64) meter `limit rate over R/minute burst B` that bans and drops, then
//!   `jump doors`. The `counter knocks` rule's comment lists the settings the
//!   table was made with ([`base_settings`]), so a daemon started with other
//!   settings knows to load it again.
//! * `chain doors` (replaced atomically every window): for every door, in this
//!   order: completions (`stage_<c>_{4,6}` + dport B, time bounded, single-use
//!   via size-1 owner sets),
//!   cancellations (source in any stage -> `cancel4/6` -> delete from all
//!   stages), stage starts (dport A, time bounded), then wrong knocks: a SYN
//!   that reaches the end of the chain neither started nor completed a door
//!   (nor went to a public port): it goes to `chain wrong`, a second meter,
//!   `limit rate over W/hour burst WB` (`wrong4/6`), which bans the slow guesser
//!   the first one lets through.
//! * Single use: per door `owner_<c>_f` (type nf_proto, size 1) records the
//!   owner's family from `meta nfproto`, `owner_<c>_{4,6}` (size 1) the
//!   address. A packet-path `add` of a new key into a full size-1 set fails
//!   (the rule stops there), re-adding the present key succeeds. No constant
//!   sentinels: `add @s { :: }` loads but is listed as `0x0 [invalid type]`,
//!   which breaks `nft list ruleset` dump/restore.
//! * Time bounds are rendered as integer unix seconds (`meta time >= 1700000000`),
//!   which nft 1.0.6 parses independently of `TZ`; date strings would be
//!   interpreted in the nft process' local time zone.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::RangeInclusive;

use crate::core::names::name_hash;
use crate::server::config::{NftSettings, DEFAULT_OPEN_SECONDS, DEFAULT_SEQ_TIMEOUT};

/// TCP destination ports whose SYNs are knocks (minus the protected port).
pub const KNOCK_RANGE: RangeInclusive<u16> = 1000..=9999;

/// IPv6 sources are rate limited and banned per /64.
pub const V6_PREFIX_MASK: &str = "ffff:ffff:ffff:ffff::";

/// Prefix of the comment carried by each door's completion rules; `status.rs`
/// reads doors back from it (the `meta time` values are listed as local-time
/// strings, which is ambiguous).
pub const DOOR_COMMENT_PREFIX: &str = "knock-totp door";

/// Upper bound for dynamic per-source sets (allowed, banned, rate, stages).
pub const SET_SIZE: u32 = 65535;

/// Named counter objects, readable with `nft -j list counters table inet T`.
pub const COUNTER_KNOCKS: &str = "knocks";
/// How the comment that lists a base table's settings begins.
pub const BASE_COMMENT_PREFIX: &str = "knock-totp base";
pub const COUNTER_OPENED: &str = "opened";
pub const COUNTER_REFUSED: &str = "refused";
pub const COUNTER_CANCELLED: &str = "cancelled";
pub const COUNTER_BANS: &str = "bans";
pub const COUNTER_DENIED: &str = "denied";
pub const COUNTERS: [&str; 6] = [
    COUNTER_KNOCKS,
    COUNTER_OPENED,
    COUNTER_REFUSED,
    COUNTER_CANCELLED,
    COUNTER_BANS,
    COUNTER_DENIED,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftParams {
    /// nft table name, e.g. `knock_totp_web` (family is always `inet`).
    pub table: String,
    /// Protected TCP port.
    pub port: u16,
    /// Lifetime of an `allowed` element (new connections only; established
    /// connections are kept by conntrack).
    pub open_seconds: u64,
    /// Lifetime of a stage element (time allowed between A and B).
    pub seq_timeout: u64,
    /// Sustained knock SYNs per minute per source (IPv6: per /64).
    pub rate_per_minute: u32,
    /// Token bucket depth in packets.
    pub burst: u32,
    pub ban_seconds: u64,
    /// Sustained wrong knocks per hour per source (IPv6: per /64).
    pub wrong_per_hour: u32,
    /// Wrong knocks a source may send before `wrong_per_hour` applies.
    pub wrong_burst: u32,
    /// Drop TCP to the knock range except `public_ports` and `port`.
    pub drop_knock_range: bool,
    pub public_ports: Vec<u16>,
}

impl NftParams {
    /// The defaults of a server config (the limits of [`NftSettings`]'s defaults).
    pub fn with_defaults(table: &str, port: u16) -> Self {
        let limits = NftSettings::default();
        NftParams {
            table: table.to_string(),
            port,
            open_seconds: DEFAULT_OPEN_SECONDS,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            rate_per_minute: limits.rate_per_minute,
            burst: limits.burst,
            ban_seconds: limits.ban_seconds,
            wrong_per_hour: limits.wrong_knocks_per_hour,
            wrong_burst: limits.wrong_knock_burst,
            drop_knock_range: limits.drop_knock_range,
            public_ports: limits.public_ports,
        }
    }

    /// Checks everything the renderer interpolates into nft syntax.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.table;
        let ok_name = !t.is_empty()
            && t.len() <= 64
            && t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_name {
            return Err(format!(
                "invalid nft table name {t:?} (use [A-Za-z][A-Za-z0-9_]*)"
            ));
        }
        if self.port == 0 {
            return Err("protected port must not be 0".into());
        }
        if self.open_seconds == 0 || self.seq_timeout == 0 || self.ban_seconds == 0 {
            return Err("open_seconds, seq_timeout and ban_seconds must be > 0".into());
        }
        if self.rate_per_minute == 0 || self.burst == 0 {
            return Err("rate_per_minute and burst must be > 0".into());
        }
        if self.wrong_per_hour == 0 || self.wrong_burst == 0 {
            return Err("wrong_knocks_per_hour and wrong_knock_burst must be > 0".into());
        }
        if self.public_ports.contains(&0) {
            return Err("public port 0 is invalid".into());
        }
        Ok(())
    }

    /// Element timeout of the rate meter sets: long enough for the bucket to
    /// refill completely, so an expiring element never forgives a debt.
    pub fn rate_set_timeout(&self) -> u64 {
        let refill = (u64::from(self.burst) * 60).div_ceil(u64::from(self.rate_per_minute.max(1)));
        60 + refill
    }

    /// Element timeout of the wrong-knock meter sets, for the same reason.
    pub fn wrong_set_timeout(&self) -> u64 {
        let refill =
            (u64::from(self.wrong_burst) * 3600).div_ceil(u64::from(self.wrong_per_hour.max(1)));
        60 + refill
    }

    /// The public ports the knock chain lets through unmetered (the protected port never
    /// reaches it).
    fn public_knock_ports(&self) -> Option<String> {
        let ports: BTreeSet<u16> = self
            .public_ports
            .iter()
            .copied()
            .filter(|x| KNOCK_RANGE.contains(x) && *x != self.port)
            .collect();
        (!ports.is_empty()).then(|| {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        })
    }
}

/// The settings a base table is made with, as its comment lists them: a table whose comment
/// differs was made from another config and is loaded again.
pub fn base_settings(p: &NftParams) -> String {
    let public: Vec<String> = p.public_ports.iter().map(u16::to_string).collect();
    let with_public = |public: &str| {
        format!(
            "{BASE_COMMENT_PREFIX} v2 port={} open={} seq={} rate={}/{} ban={} wrong={}/{} drop={} public={public}",
            p.port,
            p.open_seconds,
            p.seq_timeout,
            p.rate_per_minute,
            p.burst,
            p.ban_seconds,
            p.wrong_per_hour,
            p.wrong_burst,
            p.drop_knock_range,
        )
    };
    let listed = with_public(&public.join(","));
    if listed.len() <= NFT_COMMENT_MAX {
        listed
    } else {
        with_public(&format!(
            "{} ports #{}",
            public.len(),
            name_hash(&public.join(","))
        ))
    }
}

/// The longest comment nft takes.
const NFT_COMMENT_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftDoor {
    /// TOTP window counter; names the door's sets.
    pub counter: u64,
    /// Knock ports A, B.
    pub ports: [u16; 2],
    /// Unix seconds, inclusive.
    pub valid_from: u64,
    /// Unix seconds, exclusive.
    pub valid_until: u64,
}

impl NftDoor {
    /// A door is rendered only if A != B, both are knock ports other than the
    /// protected port, and its time interval is non-empty. Others are skipped
    /// (an A == B door would be opened by repeating one port).
    pub fn is_renderable(&self, p: &NftParams) -> bool {
        let [a, b] = self.ports;
        a != b
            && KNOCK_RANGE.contains(&a)
            && KNOCK_RANGE.contains(&b)
            && a != p.port
            && b != p.port
            && self.valid_from < self.valid_until
    }

    pub fn comment(&self) -> String {
        format!(
            "{} c={} a={} b={} from={} until={}",
            DOOR_COMMENT_PREFIX,
            self.counter,
            self.ports[0],
            self.ports[1],
            self.valid_from,
            self.valid_until
        )
    }

    /// Inverse of [`NftDoor::comment`].
    pub fn parse_comment(s: &str) -> Option<NftDoor> {
        let rest = s.strip_prefix(DOOR_COMMENT_PREFIX)?;
        let (mut c, mut a, mut b, mut f, mut u) = (None, None, None, None, None);
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "c" => c = v.parse::<u64>().ok(),
                "a" => a = v.parse::<u16>().ok(),
                "b" => b = v.parse::<u16>().ok(),
                "from" => f = v.parse::<u64>().ok(),
                "until" => u = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        Some(NftDoor {
            counter: c?,
            ports: [a?, b?],
            valid_from: f?,
            valid_until: u?,
        })
    }
}

fn stage_set(c: u64, fam: u8) -> String {
    format!("stage_{c}_{fam}")
}
fn owner_set(c: u64, fam: u8) -> String {
    format!("owner_{c}_{fam}")
}
/// Family of the door's owner (`meta nfproto`), size 1: the first completion
/// fixes it, so a completion from the other family fails to add.
fn owner_fam_set(c: u64) -> String {
    format!("owner_{c}_f")
}

/// Set definitions (as used by `add set`) of one door.
fn door_set_defs(p: &NftParams, c: u64) -> [(String, String); 5] {
    let stage = |ty: &str| {
        format!(
            "{{ type {ty}; size {SET_SIZE}; flags dynamic,timeout; timeout {}s; }}",
            p.seq_timeout
        )
    };
    let owner = |ty: &str| format!("{{ type {ty}; size 1; flags dynamic; }}");
    [
        (stage_set(c, 4), stage("ipv4_addr")),
        (stage_set(c, 6), stage("ipv6_addr")),
        (owner_fam_set(c), owner("nf_proto")),
        (owner_set(c, 4), owner("ipv4_addr")),
        (owner_set(c, 6), owner("ipv6_addr")),
    ]
}

/// Full base table. Wipes and recreates the table (`add table` + `delete
/// table` + definition), so loading it is idempotent; it also empties
/// `allowed*`/`banned*` (established connections survive through conntrack).
/// Load it at daemon start or when `NftParams` change; per-window updates use
/// [`doors_transaction`].
pub fn base_ruleset(p: &NftParams) -> String {
    let t = &p.table;
    let (lo, hi) = (KNOCK_RANGE.start(), KNOCK_RANGE.end());
    let m = V6_PREFIX_MASK;
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "delete table inet {t}");
    let _ = writeln!(s, "table inet {t} {{");
    for c in COUNTERS {
        let _ = writeln!(s, "\tcounter {c} {{ }}");
    }
    let dyn_set = |s: &mut String, name: &str, ty: &str, timeout: u64| {
        let _ = writeln!(
            s,
            "\tset {name} {{ type {ty}; size {SET_SIZE}; flags dynamic,timeout; timeout {timeout}s; }}"
        );
    };
    dyn_set(&mut s, "allowed4", "ipv4_addr", p.open_seconds);
    dyn_set(&mut s, "allowed6", "ipv6_addr", p.open_seconds);
    dyn_set(&mut s, "banned4", "ipv4_addr", p.ban_seconds);
    dyn_set(&mut s, "banned6", "ipv6_addr", p.ban_seconds); // keys are /64 prefixes
    dyn_set(&mut s, "rate4", "ipv4_addr", p.rate_set_timeout());
    dyn_set(&mut s, "rate6", "ipv6_addr", p.rate_set_timeout()); // keys are /64 prefixes
    dyn_set(&mut s, "wrong4", "ipv4_addr", p.wrong_set_timeout());
    dyn_set(&mut s, "wrong6", "ipv6_addr", p.wrong_set_timeout()); // keys are /64 prefixes

    let port = p.port;
    s.push_str("\tchain input {\n");
    s.push_str("\t\ttype filter hook input priority filter - 10; policy accept;\n");
    let _ = writeln!(
        s,
        "\t\ttcp dport {port} ct state established,related accept"
    );
    let _ = writeln!(s, "\t\ttcp dport {port} ip saddr @allowed4 accept");
    let _ = writeln!(s, "\t\ttcp dport {port} ip6 saddr @allowed6 accept");
    let _ = writeln!(s, "\t\ttcp dport {port} counter name {COUNTER_DENIED} drop");
    let _ = writeln!(
        s,
        "\t\ttcp dport {lo}-{hi} tcp flags & (syn | ack) == syn jump knock"
    );
    if p.drop_knock_range {
        let _ = writeln!(
            s,
            "\t\ttcp dport {lo}-{hi} ct state established,related accept"
        );
        match p.public_knock_ports() {
            None => {
                let _ = writeln!(s, "\t\ttcp dport {lo}-{hi} drop");
            }
            Some(public) => {
                let _ = writeln!(s, "\t\ttcp dport {lo}-{hi} tcp dport != {public} drop");
            }
        }
    }
    s.push_str("\t}\n");

    let rate = format!(
        "limit rate over {}/minute burst {} packets",
        p.rate_per_minute, p.burst
    );
    s.push_str("\tchain knock {\n");
    let public = p.public_knock_ports();
    if let Some(public) = &public {
        let _ = writeln!(s, "\t\ttcp dport {public} ip saddr @banned4 return");
        let _ = writeln!(s, "\t\ttcp dport {public} ip6 saddr & {m} @banned6 return");
    }
    s.push_str("\t\tip saddr @banned4 drop\n");
    let _ = writeln!(s, "\t\tip6 saddr & {m} @banned6 drop");
    if let Some(public) = &public {
        let _ = writeln!(s, "\t\ttcp dport {public} goto doors");
    }
    let _ = writeln!(
        s,
        "\t\tcounter name {COUNTER_KNOCKS} comment \"{}\"",
        base_settings(p)
    );
    let _ = writeln!(
        s,
        "\t\tmeta nfproto ipv4 update @rate4 {{ ip saddr {rate} }} add @banned4 {{ ip saddr }} counter name {COUNTER_BANS} drop"
    );
    let _ = writeln!(
        s,
        "\t\tmeta nfproto ipv6 update @rate6 {{ ip6 saddr & {m} {rate} }} add @banned6 {{ ip6 saddr & {m} }} counter name {COUNTER_BANS} drop"
    );
    s.push_str("\t\tjump doors\n");
    s.push_str("\t}\n");
    s.push_str("\tchain doors {\n\t}\n");
    let wrong = format!(
        "limit rate over {}/hour burst {} packets",
        p.wrong_per_hour, p.wrong_burst
    );
    s.push_str("\tchain wrong {\n");
    let _ = writeln!(
        s,
        "\t\tmeta nfproto ipv4 update @wrong4 {{ ip saddr {wrong} }} add @banned4 {{ ip saddr }} counter name {COUNTER_BANS} drop"
    );
    let _ = writeln!(
        s,
        "\t\tmeta nfproto ipv6 update @wrong6 {{ ip6 saddr & {m} {wrong} }} add @banned6 {{ ip6 saddr & {m} }} counter name {COUNTER_BANS} drop"
    );
    s.push_str("\t}\n");
    let _ = writeln!(
        s,
        "\tchain cancel4 {{\n\t\tcounter name {COUNTER_CANCELLED} goto clear4\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain cancel6 {{\n\t\tcounter name {COUNTER_CANCELLED} goto clear6\n\t}}"
    );
    s.push_str("\tchain clear4 {\n\t}\n");
    s.push_str("\tchain clear6 {\n\t}\n");
    s.push_str("}\n");
    s
}

/// Doors actually rendered: renderable, first occurrence of each counter.
pub fn effective_doors(p: &NftParams, doors: &[NftDoor]) -> Vec<NftDoor> {
    let mut seen = BTreeSet::new();
    doors
        .iter()
        .filter(|d| d.is_renderable(p))
        .filter(|d| seen.insert(d.counter))
        .copied()
        .collect()
}

fn flush_door_chains(s: &mut String, t: &str) {
    for ch in ["doors", "clear4", "clear6"] {
        let _ = writeln!(s, "flush chain inet {t} {ch}");
    }
}

/// Deletes the sets of each counter in `gone`. Each set is `add`ed first so
/// the transaction does not fail when `previous` was stale (nft 1.0.6 has no
/// `destroy`). Must come after the chains referencing them were flushed.
fn delete_door_sets(s: &mut String, p: &NftParams, gone: impl Iterator<Item = u64>) {
    let t = &p.table;
    for c in gone {
        for (name, def) in door_set_defs(p, c) {
            let _ = writeln!(s, "add set inet {t} {name} {def}");
            let _ = writeln!(s, "delete set inet {t} {name}");
        }
    }
}

/// One `nft -f` transaction replacing only the door rules. Per-door sets are
/// created with `add set` (no-op when present, so stages and owners of doors
/// that stay survive); sets of counters in `previous` but not in `doors` are
/// deleted. `allowed*`, `banned*`, `rate*` and counters are untouched.
/// Doors that are not [`NftDoor::is_renderable`] are skipped.
pub fn doors_transaction(p: &NftParams, doors: &[NftDoor], previous: &[u64]) -> String {
    let t = &p.table;
    let doors = effective_doors(p, doors);
    let mut s = String::new();
    flush_door_chains(&mut s, t);
    for d in &doors {
        for (name, def) in door_set_defs(p, d.counter) {
            let _ = writeln!(s, "add set inet {t} {name} {def}");
        }
    }
    let open = p.open_seconds;
    let time = |d: &NftDoor| {
        format!(
            "meta time >= {} meta time < {}",
            d.valid_from, d.valid_until
        )
    };
    // 1. completions: staged for this door and the knock is its B.
    for d in &doors {
        let (c, b, tm, cm) = (d.counter, d.ports[1], time(d), d.comment());
        let (s4, s6, o4, o6) = (
            stage_set(c, 4),
            stage_set(c, 6),
            owner_set(c, 4),
            owner_set(c, 6),
        );
        let of = owner_fam_set(c);
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {b} ip saddr @{s4} add @{of} {{ meta nfproto }} add @{o4} {{ ip saddr }} update @allowed4 {{ ip saddr timeout {open}s }} counter name {COUNTER_OPENED} goto clear4 comment \"{cm}\""
        );
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {b} ip saddr @{s4} counter name {COUNTER_REFUSED} goto clear4"
        );
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {b} ip6 saddr @{s6} add @{of} {{ meta nfproto }} add @{o6} {{ ip6 saddr }} update @allowed6 {{ ip6 saddr timeout {open}s }} counter name {COUNTER_OPENED} goto clear6 comment \"{cm}\""
        );
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {b} ip6 saddr @{s6} counter name {COUNTER_REFUSED} goto clear6"
        );
    }
    // 2. cancellations: any other knock while staged clears all stages.
    for d in &doors {
        let c = d.counter;
        let _ = writeln!(
            s,
            "add rule inet {t} doors ip saddr @{} jump cancel4",
            stage_set(c, 4)
        );
        let _ = writeln!(
            s,
            "add rule inet {t} doors ip6 saddr @{} jump cancel6",
            stage_set(c, 6)
        );
    }
    // 3. stage starts.
    for d in &doors {
        let (c, a, tm) = (d.counter, d.ports[0], time(d));
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {a} meta nfproto ipv4 add @{} {{ ip saddr }}",
            stage_set(c, 4)
        );
        let _ = writeln!(
            s,
            "add rule inet {t} doors {tm} tcp dport {a} meta nfproto ipv6 add @{} {{ ip6 saddr }}",
            stage_set(c, 6)
        );
    }
    // 4. wrong knocks: what did not start a door (nor completed one: that went to clear).
    for d in &doors {
        let _ = writeln!(
            s,
            "add rule inet {t} doors {} tcp dport {} return",
            time(d),
            d.ports[0]
        );
    }
    if let Some(public) = p.public_knock_ports() {
        let _ = writeln!(s, "add rule inet {t} doors tcp dport {public} return");
    }
    let _ = writeln!(s, "add rule inet {t} doors goto wrong");
    for d in &doors {
        let c = d.counter;
        let _ = writeln!(
            s,
            "add rule inet {t} clear4 delete @{} {{ ip saddr }}",
            stage_set(c, 4)
        );
        let _ = writeln!(
            s,
            "add rule inet {t} clear6 delete @{} {{ ip6 saddr }}",
            stage_set(c, 6)
        );
    }
    let keep: BTreeSet<u64> = doors.iter().map(|d| d.counter).collect();
    let gone: BTreeSet<u64> = previous
        .iter()
        .copied()
        .filter(|c| !keep.contains(c))
        .collect();
    delete_door_sets(&mut s, p, gone.into_iter());
    s
}

/// Removes every door (e.g. on SIGTERM): flushes the door chains and deletes
/// the per-door sets of `previous`. The table, `allowed*`, `banned*` and the
/// protected-port drop stay (fail closed).
pub fn remove_doors_transaction(p: &NftParams, previous: &[u64]) -> String {
    let mut s = String::new();
    flush_door_chains(&mut s, &p.table);
    let gone: BTreeSet<u64> = previous.iter().copied().collect();
    delete_door_sets(&mut s, p, gone.into_iter());
    s
}

/// Deletes the whole table (uninstall). Idempotent.
pub fn delete_table(p: &NftParams) -> String {
    format!("add table inet {0}\ndelete table inet {0}\n", p.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NftParams {
        NftParams::with_defaults("knock_totp_web", 2222)
    }
    fn door(c: u64, a: u16, b: u16) -> NftDoor {
        NftDoor {
            counter: c,
            ports: [a, b],
            valid_from: c * 30,
            valid_until: c * 30 + 30,
        }
    }

    #[test]
    fn base_settings_fit_an_nft_comment_and_tell_configs_apart() {
        let mut p = params();
        let plain = base_settings(&p);
        assert!(plain.starts_with(BASE_COMMENT_PREFIX) && plain.len() <= NFT_COMMENT_MAX);
        assert!(base_ruleset(&p).contains(&format!("comment \"{plain}\"")));
        p.wrong_burst += 1;
        assert_ne!(base_settings(&p), plain);
        p.public_ports = (1000..1100).collect();
        let many = base_settings(&p);
        assert!(
            many.len() <= NFT_COMMENT_MAX && many.contains("public=100 ports #"),
            "{many}"
        );
        p.public_ports.pop();
        assert_ne!(base_settings(&p), many);
    }

    #[test]
    fn public_ports_skip_the_meters_and_a_wrong_knock_is_metered() {
        let mut p = params();
        p.public_ports = vec![8080, 22, 2222];
        let base = base_ruleset(&p);
        // 22 is outside the knock range and 2222 the protected port: neither is a knock.
        assert!(
            base.contains("\t\ttcp dport { 8080 } ip saddr @banned4 return\n"),
            "{base}"
        );
        let goto = base.find("tcp dport { 8080 } goto doors").unwrap();
        assert!(goto < base.find("counter name knocks").unwrap());
        assert!(goto > base.find("ip saddr @banned4 drop").unwrap());
        let doors = [NftDoor {
            counter: 7,
            ports: [4000, 4180],
            valid_from: 100,
            valid_until: 190,
        }];
        let tx = doors_transaction(&p, &doors, &[]);
        let start = tx
            .find("tcp dport 4000 meta nfproto ipv4 add @stage_7_4")
            .unwrap();
        let started = tx
            .find("doors meta time >= 100 meta time < 190 tcp dport 4000 return")
            .unwrap();
        let public = tx.find("doors tcp dport { 8080 } return").unwrap();
        let meter = tx
            .find("add rule inet knock_totp_web doors goto wrong")
            .unwrap();
        assert!(
            start < started && started < public && public < meter,
            "{tx}"
        );
        assert!(base.contains(
            "\tchain wrong {\n\t\tmeta nfproto ipv4 update @wrong4 { ip saddr limit rate over \
             20/hour burst 40 packets } add @banned4 { ip saddr } counter name bans drop\n"
        ));
    }

    #[test]
    fn validate_rejects_bad_names() {
        assert!(params().validate().is_ok());
        for bad in ["", "1abc", "a b", "a;b", "a\"b", "a}"] {
            let mut p = params();
            p.table = bad.into();
            assert!(p.validate().is_err(), "{bad}");
        }
        let mut p = params();
        p.burst = 0;
        assert!(p.validate().is_err());
    }

    #[test]
    fn base_has_protected_port_before_knocks() {
        let s = base_ruleset(&params());
        assert!(s.starts_with("add table inet knock_totp_web\ndelete table inet knock_totp_web\n"));
        let drop = s.find("tcp dport 2222 counter name denied drop").unwrap();
        let est = s
            .find("tcp dport 2222 ct state established,related accept")
            .unwrap();
        let knock = s.find("jump knock").unwrap();
        assert!(est < drop && drop < knock);
        assert!(s.contains("priority filter - 10"));
        assert!(s.contains("limit rate over 60/minute burst 40 packets"));
        assert!(s.contains("ip6 saddr & ffff:ffff:ffff:ffff:: @banned6 drop"));
        assert!(s.contains(
            "set allowed4 { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 30s; }"
        ));
        for c in COUNTERS {
            assert!(s.contains(&format!("counter {c} {{ }}")));
        }
        assert!(!s.contains("tcp dport 1000-9999 drop"));
        // balanced braces
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn drop_knock_range_excludes_public_ports() {
        let mut p = params();
        p.drop_knock_range = true;
        p.public_ports = vec![8443, 8080, 443, 2222, 8080];
        let s = base_ruleset(&p);
        assert!(s.contains("tcp dport 1000-9999 tcp dport != { 8080, 8443 } drop"));
        let knock = s.find("jump knock").unwrap();
        let drop = s.find("tcp dport != { 8080").unwrap();
        assert!(knock < drop);
        p.public_ports.clear();
        assert!(base_ruleset(&p).contains("\t\ttcp dport 1000-9999 drop\n"));
    }

    #[test]
    fn doors_order_and_sets() {
        let p = params();
        let ds = [door(10, 1111, 2345), door(11, 3333, 4444)];
        let s = doors_transaction(&p, &ds, &[]);
        assert!(s.starts_with("flush chain inet knock_totp_web doors\n"));
        assert!(s.contains(
            "add set inet knock_totp_web stage_10_4 { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 10s; }"
        ));
        assert!(s.contains(
            "add set inet knock_totp_web owner_11_6 { type ipv6_addr; size 1; flags dynamic; }"
        ));
        assert!(s.contains("meta time >= 300 meta time < 330 tcp dport 2345 ip saddr @stage_10_4 add @owner_10_f { meta nfproto } add @owner_10_4 { ip saddr } update @allowed4 { ip saddr timeout 30s } counter name opened goto clear4"));
        assert!(s.contains(
            "ip6 saddr @stage_11_6 add @owner_11_f { meta nfproto } add @owner_11_6 { ip6 saddr }"
        ));
        assert!(s.contains(
            "add set inet knock_totp_web owner_11_f { type nf_proto; size 1; flags dynamic; }"
        ));
        let last_completion = s.rfind("counter name refused").unwrap();
        let first_cancel = s.find("jump cancel").unwrap();
        let last_cancel = s.rfind("jump cancel").unwrap();
        let first_start = s
            .find("tcp dport 1111 meta nfproto ipv4 add @stage_10_4")
            .unwrap();
        assert!(last_completion < first_cancel && last_cancel < first_start);
        assert!(s.contains("add rule inet knock_totp_web clear6 delete @stage_11_6 { ip6 saddr }"));
        assert!(!s.contains("delete set"));
    }

    #[test]
    fn doors_skip_bad_and_duplicates() {
        let p = params();
        let ds = [
            door(1, 1500, 1500), // A == B
            door(2, 2222, 1600), // protected port
            door(3, 999, 1600),  // out of range
            NftDoor {
                counter: 4,
                ports: [1200, 1300],
                valid_from: 10,
                valid_until: 10,
            },
            door(5, 1200, 1300),
            door(5, 1400, 1500), // duplicate counter
        ];
        let eff = effective_doors(&p, &ds);
        assert_eq!(eff, vec![door(5, 1200, 1300)]);
        let s = doors_transaction(&p, &ds, &[]);
        assert!(!s.contains("stage_1_") && !s.contains("stage_2_") && !s.contains("stage_3_"));
        assert!(!s.contains("stage_4_") && !s.contains("1400"));
    }

    #[test]
    fn doors_delete_only_gone_sets_after_flush() {
        let p = params();
        let s = doors_transaction(
            &p,
            &[door(11, 1111, 2222 + 1), door(12, 3000, 4000)],
            &[10, 11],
        );
        for n in [
            "stage_10_4",
            "stage_10_6",
            "owner_10_f",
            "owner_10_4",
            "owner_10_6",
        ] {
            let del = s
                .find(&format!("delete set inet knock_totp_web {n}\n"))
                .unwrap();
            let add = s
                .find(&format!("add set inet knock_totp_web {n} "))
                .unwrap();
            assert!(add < del);
            assert!(s.find("flush chain inet knock_totp_web clear6").unwrap() < add);
        }
        assert!(!s.contains("delete set inet knock_totp_web stage_11"));
        assert!(!s.contains("delete set inet knock_totp_web stage_12"));
    }

    #[test]
    fn remove_doors_keeps_table() {
        let s = remove_doors_transaction(&params(), &[7, 8]);
        assert!(!s.contains("delete table") && !s.contains("allowed"));
        assert!(s.contains("flush chain inet knock_totp_web doors"));
        assert!(s.contains("delete set inet knock_totp_web owner_8_6"));
        assert_eq!(s.matches("delete set").count(), 10);
    }

    #[test]
    fn comment_roundtrip() {
        let d = NftDoor {
            counter: 58_000_123,
            ports: [1234, 9876],
            valid_from: 1_740_000_000,
            valid_until: 1_740_000_030,
        };
        assert_eq!(NftDoor::parse_comment(&d.comment()), Some(d));
        assert!(
            d.comment().len() < 128,
            "nft comments are limited to 128 bytes"
        );
        assert_eq!(NftDoor::parse_comment("something else"), None);
        assert_eq!(NftDoor::parse_comment("knock-totp door c=1 a=2"), None);
    }

    #[test]
    fn rate_timeout_covers_refill() {
        let p = params();
        assert_eq!(p.rate_set_timeout(), 60 + 40);
    }
}
