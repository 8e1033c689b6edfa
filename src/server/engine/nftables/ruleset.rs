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
//! * `chain knock`: SYNs to public ports return first (they neither start nor
//!   cancel a knock, and no door uses a public port); `counter knocks`; trusted
//!   sources (a door opened from there within `trust_seconds`, or `never_ban`)
//!   go to `chain trusted`: a rate meter that drops but never bans, then the
//!   doors. Everyone else: bans at every prefix level (IPv4 /32 /24 /16, IPv6
//!   /64 /48 /32 by default), the attack gate, the per-source rate meter that
//!   bans, then the doors.
//! * Fail closed: a packet-path `update`/`add` into a full set fails and its
//!   rule does not match, so each meter is followed by `KEY != @SET goto
//!   untracked` (a lookup in a set whose elements carry `limit` expressions
//!   matches as in a plain set), and each ban by `goto untracked`: a source no
//!   set can hold is dropped and puts the server under attack.
//! * Under attack (`@attack` holds `tcp` for `attack_seconds` after the last
//!   knock over the global budget): untrusted knocks are dropped before the
//!   doors and still spend the global budget, so the state lasts as long as
//!   the flood.
//! * `chain doors` (replaced atomically every window): for every door, in this
//!   order: completions (`stage_<c>_{4,6}` + dport B, time bounded, single-use
//!   via size-1 owner sets) to `opened4/6` (trust the source) and `clear4/6`;
//!   cancellations (source in any stage -> `cancel4/6` -> delete from all
//!   stages), stage starts (dport A, time bounded), then wrong knocks: a SYN
//!   that neither started nor completed a door goes to `chain wrong`: meters at
//!   every prefix level (`limit rate over W/hour`, each broader level twice the
//!   budget), over -> ban; then the global budget (`limit name global_wrong`),
//!   over -> under attack. Trusted sources' wrong knocks spend only the global
//!   budget.
//! * Single use: per door `owner_<c>_f` (type nf_proto, size 1) records the
//!   owner's family from `meta nfproto`, `owner_<c>_{4,6}` (size 1) the
//!   address. A packet-path `add` of a new key into a full size-1 set fails
//!   (the rule stops there), re-adding the present key succeeds. No constant
//!   sentinels: `add @s { :: }` loads but is listed as `0x0 [invalid type]`,
//!   which breaks `nft list ruleset` dump/restore.
//! * The daemon never lists the meter sets (65,536 elements list in ~0.7 s and
//!   ~140 MB of nft): set `state` carries the settings in its comment and the
//!   installed windows as elements, and every doors transaction re-asserts all
//!   chains, so a flushed chain is repaired without reading it.
//! * Time bounds are rendered as integer unix seconds (`meta time >= 1700000000`),
//!   which nft 1.0.6 parses independently of `TZ`; date strings would be
//!   interpreted in the nft process' local time zone.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::core::names::name_hash;
use crate::core::ports::{MAX_KNOCK_PORT, MIN_KNOCK_PORT};
use crate::server::config::{Cidr, NftSettings, DEFAULT_OPEN_SECONDS, DEFAULT_SEQ_TIMEOUT};

/// TCP destination ports whose SYNs are knocks (minus the protected port).
pub const KNOCK_RANGE: RangeInclusive<u16> = MIN_KNOCK_PORT..=MAX_KNOCK_PORT;

/// Prefix of the comment carried by each door's completion rules; `status.rs`
/// reads doors back from it (the `meta time` values are listed as local-time
/// strings, which is ambiguous).
pub const DOOR_COMMENT_PREFIX: &str = "knock-totp door";

/// Set `state`: its comment lists the settings, its elements the installed windows.
pub const STATE_SET: &str = "state";
/// Set `attack`: holds `tcp` while the server is under attack.
pub const ATTACK_SET: &str = "attack";
/// The global wrong-knock budget, a named limit object.
pub const GLOBAL_LIMIT: &str = "global_wrong";

/// Named counter objects, readable with `nft -j list counters table inet T`.
pub const COUNTER_KNOCKS: &str = "knocks";
/// How the comment that lists a base table's settings begins.
pub const BASE_COMMENT_PREFIX: &str = "knock-totp base";
pub const COUNTER_OPENED: &str = "opened";
pub const COUNTER_REFUSED: &str = "refused";
pub const COUNTER_CANCELLED: &str = "cancelled";
pub const COUNTER_BANS: &str = "bans";
pub const COUNTER_DENIED: &str = "denied";
/// Knocks dropped because their source (or its network) is banned.
pub const COUNTER_BANNED: &str = "banned";
/// Untrusted knocks dropped while the server is under attack.
pub const COUNTER_ATTACKED: &str = "attacked";
/// Knocks dropped because a full set could not track their source.
pub const COUNTER_UNTRACKED: &str = "untracked";
/// Trusted sources' knocks dropped over the rate (never a ban).
pub const COUNTER_LIMITED: &str = "limited";
pub const COUNTERS: [&str; 10] = [
    COUNTER_KNOCKS,
    COUNTER_OPENED,
    COUNTER_REFUSED,
    COUNTER_CANCELLED,
    COUNTER_BANS,
    COUNTER_DENIED,
    COUNTER_BANNED,
    COUNTER_ATTACKED,
    COUNTER_UNTRACKED,
    COUNTER_LIMITED,
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
    /// Meters, bans, trust and the ports the knock range shares.
    pub limits: NftSettings,
    /// Users served (0: the single-secret server); scales the global budget.
    pub users: u32,
}

/// An address family as the rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The digit in set and chain names.
    pub fn digit(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }
    fn saddr(self) -> &'static str {
        match self {
            Family::V4 => "ip saddr",
            Family::V6 => "ip6 saddr",
        }
    }
    fn nfproto(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
    pub fn full_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    /// The source address masked to `len` bits, as a set key.
    fn key(self, len: u8) -> String {
        if len >= self.full_len() {
            return self.saddr().to_string();
        }
        let mask = match self {
            Family::V4 => Ipv4Addr::from(u32::MAX << (32 - u32::from(len))).to_string(),
            Family::V6 => Ipv6Addr::from(u128::MAX << (128 - u32::from(len))).to_string(),
        };
        format!("{} & {mask}", self.saddr())
    }
}

/// A set of sources banned (or metered) at one prefix length: `banned_4_24`.
pub fn level_set(kind: &str, family: Family, len: u8) -> String {
    format!("{kind}_{}_{len}", family.digit())
}

/// The (kind, family, prefix length) of a set named by [`level_set`].
pub fn parse_level_set(name: &str) -> Option<(&str, Family, u8)> {
    let mut parts = name.rsplitn(3, '_');
    let len = parts.next()?.parse().ok()?;
    let family = match parts.next()? {
        "4" => Family::V4,
        "6" => Family::V6,
        _ => return None,
    };
    Some((parts.next()?, family, len))
}

impl NftParams {
    /// The defaults of a server config (the limits of [`NftSettings`]'s defaults).
    pub fn with_defaults(table: &str, port: u16) -> Self {
        NftParams {
            table: table.to_string(),
            port,
            open_seconds: DEFAULT_OPEN_SECONDS,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            limits: NftSettings::default(),
            users: 0,
        }
    }

    /// The parameters for a server with `users` users: K users keep 3K doors live, so the
    /// global wrong-knock budget is divided by K (see [`NftParams::global_budget`]).
    pub fn for_users(mut self, users: usize) -> Self {
        self.users = u32::try_from(users).unwrap_or(u32::MAX);
        self
    }

    /// The global wrong-knock budget: its rate as nft writes it, and its burst. With K > 1
    /// users it is a day's budget divided by K, rounded down (at least one knock a day), so K
    /// users' 3K doors give a guesser no better odds than one secret's 3.
    pub fn global_budget(&self) -> (String, u32) {
        let l = &self.limits;
        if self.users <= 1 {
            return (
                format!("{}/hour", l.global_wrong_knocks_per_hour),
                l.global_wrong_knock_burst,
            );
        }
        let per_day = l.global_wrong_knocks_per_hour.saturating_mul(24) / self.users;
        let burst = l.global_wrong_knock_burst / self.users;
        (format!("{}/day", per_day.max(1)), burst.max(1))
    }

    /// Pairs a day the global wrong-knock budget lets through (a pair is two SYNs), which
    /// bounds every guesser, however many sources it has.
    pub fn global_pairs_per_day(&self) -> u64 {
        let (rate, burst) = self.global_budget();
        let (count, unit) = rate.split_once('/').unwrap_or(("0", "day"));
        let count: u64 = count.parse().unwrap_or(0);
        let per_day = if unit == "hour" { 24 * count } else { count };
        (u64::from(burst) + per_day) / 2
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
        if self.open_seconds == 0 || self.seq_timeout == 0 {
            return Err("open_seconds and seq_timeout must be > 0".into());
        }
        self.limits.validate().map_err(|(_, message)| message)
    }

    /// The prefix lengths sources of `family` are metered at, narrowest first.
    pub fn prefixes(&self, family: Family) -> &[u8] {
        match family {
            Family::V4 => &self.limits.ipv4_prefixes,
            Family::V6 => &self.limits.ipv6_prefixes,
        }
    }

    /// A source's key: the address masked to the narrowest metered prefix.
    fn source_key(&self, family: Family) -> String {
        family.key(self.prefixes(family)[0])
    }

    /// Element timeout of the rate meter sets: long enough for the bucket to
    /// refill completely, so an expiring element never forgives a debt.
    pub fn rate_set_timeout(&self) -> u64 {
        let l = &self.limits;
        60 + (u64::from(l.burst) * 60).div_ceil(u64::from(l.rate_per_minute.max(1)))
    }

    /// The wrong-knock budget (per hour, burst) of the `level`th prefix (0: a source): each
    /// broader level gets twice the one before.
    pub fn wrong_budget(&self, level: usize) -> (u32, u32) {
        let l = &self.limits;
        let times = 1u32 << level.min(8);
        (
            l.wrong_knocks_per_hour.saturating_mul(times),
            l.wrong_knock_burst.saturating_mul(times),
        )
    }

    /// Element timeout of the wrong-knock meter sets, for the same reason.
    pub fn wrong_set_timeout(&self) -> u64 {
        let (rate, burst) = self.wrong_budget(0);
        60 + (u64::from(burst) * 3600).div_ceil(u64::from(rate.max(1)))
    }

    /// The public ports in the knock range (the protected port never reaches the knock chain).
    fn public_knock_ports(&self) -> BTreeSet<u16> {
        self.limits
            .public_ports
            .iter()
            .copied()
            .filter(|x| KNOCK_RANGE.contains(x) && *x != self.port)
            .collect()
    }

    fn never_ban(&self, family: Family) -> Vec<Cidr> {
        let mut networks: Vec<Cidr> = self
            .limits
            .never_ban
            .iter()
            .filter_map(|n| Cidr::parse(n).ok())
            .filter(|c| c.addr.is_ipv4() == (family == Family::V4))
            .collect();
        networks.sort();
        networks.dedup();
        networks
    }

    fn trusts_knockers(&self) -> bool {
        self.limits.trust_seconds > 0
    }
}

/// `{ 1, 2 }` for nft.
fn nft_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

/// The settings a base table is made with, as its `state` set's comment lists them: a table
/// whose comment differs was made from another config or version and is loaded again.
pub fn base_settings(p: &NftParams) -> String {
    let every_setting = format!("{p:?}");
    format!(
        "{BASE_COMMENT_PREFIX} v3 port={} open={} seq={} #{}",
        p.port,
        p.open_seconds,
        p.seq_timeout,
        name_hash(&every_setting)
    )
}

/// The user a door belongs to, on a server with users.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftUser {
    pub name: String,
    /// Names the user's sets and counters (see `users::user_tag`).
    pub tag: String,
    /// The user's grant length (their own, or the server's).
    pub open_seconds: u64,
}

impl NftUser {
    /// The set of addresses the user's doors let in now.
    pub fn grants_set(&self, family: Family) -> String {
        grants_set(&self.tag, family)
    }
    /// The named counter of the doors the user opened.
    pub fn opened_counter(&self) -> String {
        opened_counter(&self.tag)
    }
}

/// The grants set of the user tagged `tag`.
pub fn grants_set(tag: &str, family: Family) -> String {
    format!("grants_{tag}_{}", family.digit())
}

/// The named counter of the doors opened by the user tagged `tag`.
pub fn opened_counter(tag: &str) -> String {
    format!("{COUNTER_OPENED}_{tag}")
}

/// What names a door's sets: its window and, on a server with users, its user's tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DoorKey {
    pub tag: Option<String>,
    pub counter: u64,
}

impl std::fmt::Display for DoorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{tag}_{}", self.counter),
            None => write!(f, "{}", self.counter),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftDoor {
    /// TOTP window counter; names the door's sets.
    pub counter: u64,
    /// Knock ports A, B.
    pub ports: [u16; 2],
    /// Unix seconds, inclusive.
    pub valid_from: u64,
    /// Unix seconds, exclusive.
    pub valid_until: u64,
    /// Whose door it is (`None` on a single-secret server).
    pub user: Option<NftUser>,
}

impl NftDoor {
    /// A door is rendered only if A != B, both are knock ports other than the
    /// protected port and the public ports, and its time interval is non-empty.
    /// Others are skipped (an A == B door would be opened by repeating one port;
    /// a public port is knocked by every client of its service).
    pub fn is_renderable(&self, p: &NftParams) -> bool {
        let [a, b] = self.ports;
        let public = p.public_knock_ports();
        a != b
            && [a, b]
                .iter()
                .all(|x| KNOCK_RANGE.contains(x) && *x != p.port && !public.contains(x))
            && self.valid_from < self.valid_until
            && u32::try_from(self.counter).is_ok()
    }

    pub fn key(&self) -> DoorKey {
        DoorKey {
            tag: self.user.as_ref().map(|u| u.tag.clone()),
            counter: self.counter,
        }
    }

    pub fn comment(&self) -> String {
        let mut comment = format!(
            "{} c={} a={} b={} from={} until={}",
            DOOR_COMMENT_PREFIX,
            self.counter,
            self.ports[0],
            self.ports[1],
            self.valid_from,
            self.valid_until
        );
        if let Some(user) = &self.user {
            let _ = write!(
                comment,
                " user={} tag={} open={}",
                user.name, user.tag, user.open_seconds
            );
        }
        comment
    }

    /// Inverse of [`NftDoor::comment`].
    pub fn parse_comment(s: &str) -> Option<NftDoor> {
        let rest = s.strip_prefix(DOOR_COMMENT_PREFIX)?;
        let (mut c, mut a, mut b, mut f, mut u) = (None, None, None, None, None);
        let (mut name, mut tag, mut open) = (None, None, None);
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "c" => c = v.parse::<u64>().ok(),
                "a" => a = v.parse::<u16>().ok(),
                "b" => b = v.parse::<u16>().ok(),
                "from" => f = v.parse::<u64>().ok(),
                "until" => u = v.parse::<u64>().ok(),
                "user" => name = Some(v.to_owned()),
                "tag" => tag = Some(v.to_owned()),
                "open" => open = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let user = match (name, tag, open) {
            (Some(name), Some(tag), Some(open_seconds)) => Some(NftUser {
                name,
                tag,
                open_seconds,
            }),
            _ => None,
        };
        Some(NftDoor {
            counter: c?,
            ports: [a?, b?],
            valid_from: f?,
            valid_until: u?,
            user,
        })
    }
}

pub fn stage_set(key: &DoorKey, fam: u8) -> String {
    format!("stage_{key}_{fam}")
}
pub fn owner_set(key: &DoorKey, fam: u8) -> String {
    format!("owner_{key}_{fam}")
}
/// Family of the door's owner (`meta nfproto`), size 1: the first completion
/// fixes it, so a completion from the other family fails to add.
fn owner_fam_set(key: &DoorKey) -> String {
    format!("owner_{key}_f")
}

/// Set definitions (as used by `add set`) of one door.
fn door_set_defs(p: &NftParams, c: &DoorKey) -> [(String, String); 5] {
    let stage = |ty: &str| {
        format!(
            "{{ type {ty}; size {}; flags dynamic,timeout; timeout {}s; }}",
            p.limits.tracked_sources, p.seq_timeout
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

/// Every chain of the base table, in the order they are declared. The door
/// chains (`doors`, `clear4`, `clear6`) are filled by [`doors_transaction`].
fn base_chains(p: &NftParams) -> Vec<String> {
    let mut chains: Vec<String> = [
        "input",
        "knock",
        "trusted",
        "wrong",
        "budget",
        "attacked",
        "untracked",
    ]
    .map(String::from)
    .to_vec();
    for family in Family::BOTH {
        for &len in p.prefixes(family) {
            chains.push(level_set("ban", family, len));
        }
        chains.push(format!("opened{}", family.digit()));
        chains.push(format!("cancel{}", family.digit()));
    }
    chains
}

const DOOR_CHAINS: [&str; 3] = ["doors", "clear4", "clear6"];

/// The rules of every base chain, as `add rule` commands.
fn base_rules(p: &NftParams) -> String {
    let t = &p.table;
    let l = &p.limits;
    let (lo, hi) = (KNOCK_RANGE.start(), KNOCK_RANGE.end());
    let port = p.port;
    let mut s = String::new();
    let mut rule = |chain: &str, text: String| {
        let _ = writeln!(s, "add rule inet {t} {chain} {text}");
    };
    let public = p.public_knock_ports();

    rule(
        "input",
        format!("tcp dport {port} ct state established,related accept"),
    );
    rule(
        "input",
        format!("tcp dport {port} ip saddr @allowed4 accept"),
    );
    rule(
        "input",
        format!("tcp dport {port} ip6 saddr @allowed6 accept"),
    );
    rule(
        "input",
        format!("tcp dport {port} counter name {COUNTER_DENIED} drop"),
    );
    rule(
        "input",
        format!("tcp dport {lo}-{hi} tcp flags & (syn | ack) == syn jump knock"),
    );
    if l.drop_knock_range {
        rule(
            "input",
            format!("tcp dport {lo}-{hi} ct state established,related accept"),
        );
        if public.is_empty() {
            rule("input", format!("tcp dport {lo}-{hi} drop"));
        } else {
            rule(
                "input",
                format!(
                    "tcp dport {lo}-{hi} tcp dport != {} drop",
                    nft_list(&public)
                ),
            );
        }
    }

    // knock: public ports, the count, trust, bans, the attack gate, the rate meter.
    if !public.is_empty() {
        rule("knock", format!("tcp dport {} return", nft_list(&public)));
    }
    rule("knock", format!("counter name {COUNTER_KNOCKS}"));
    let trust_checks = trust_checks(p);
    for check in &trust_checks {
        rule("knock", format!("{check} goto trusted"));
    }
    for family in Family::BOTH {
        for &len in p.prefixes(family) {
            rule(
                "knock",
                format!(
                    "{} @{} counter name {COUNTER_BANNED} drop",
                    family.key(len),
                    level_set("banned", family, len)
                ),
            );
        }
    }
    rule("knock", format!("meta l4proto @{ATTACK_SET} goto attacked"));
    let rate = format!(
        "limit rate over {}/minute burst {} packets",
        l.rate_per_minute, l.burst
    );
    for family in Family::BOTH {
        let (d, key) = (family.digit(), p.source_key(family));
        let ban = level_set("ban", family, p.prefixes(family)[0]);
        rule(
            "knock",
            format!(
                "meta nfproto {} update @rate{d} {{ {key} {rate} }} goto {ban}",
                family.nfproto()
            ),
        );
        rule("knock", format!("{key} != @rate{d} goto untracked"));
    }
    rule("knock", "goto doors".into());

    // trusted: metered, never banned, through while under attack.
    for family in Family::BOTH {
        let (d, key) = (family.digit(), p.source_key(family));
        rule(
            "trusted",
            format!(
                "meta nfproto {} update @trate{d} {{ {key} {rate} }} counter name {COUNTER_LIMITED} drop",
                family.nfproto()
            ),
        );
        rule(
            "trusted",
            format!("{key} != @trate{d} counter name {COUNTER_UNTRACKED} drop"),
        );
    }
    rule("trusted", "goto doors".into());

    // wrong: meters at every prefix level, then the global budget.
    for check in &trust_checks {
        rule("wrong", format!("{check} goto budget"));
    }
    for family in Family::BOTH {
        for (level, &len) in p.prefixes(family).iter().enumerate() {
            let (per_hour, burst) = p.wrong_budget(level);
            let (key, meter) = (family.key(len), level_set("wrong", family, len));
            rule(
                "wrong",
                format!(
                    "meta nfproto {} update @{meter} {{ {key} limit rate over {per_hour}/hour burst {burst} packets }} goto {}",
                    family.nfproto(),
                    level_set("ban", family, len)
                ),
            );
            rule("wrong", format!("{key} != @{meter} goto untracked"));
        }
    }
    rule("wrong", "goto budget".into());
    rule(
        "budget",
        format!("limit name {GLOBAL_LIMIT} update @{ATTACK_SET} {{ meta l4proto }}"),
    );
    rule(
        "attacked",
        format!("limit name {GLOBAL_LIMIT} update @{ATTACK_SET} {{ meta l4proto }}"),
    );
    rule("attacked", format!("counter name {COUNTER_ATTACKED} drop"));
    rule(
        "untracked",
        format!("update @{ATTACK_SET} {{ meta l4proto }} counter name {COUNTER_UNTRACKED} drop"),
    );
    for family in Family::BOTH {
        let d = family.digit();
        for &len in p.prefixes(family) {
            let chain = level_set("ban", family, len);
            rule(
                &chain,
                format!(
                    "add @{} {{ {} }} counter name {COUNTER_BANS} drop",
                    level_set("banned", family, len),
                    family.key(len)
                ),
            );
            // The ban set is full: drop all the same, and say so.
            rule(&chain, "goto untracked".into());
        }
        if p.trusts_knockers() {
            rule(
                &format!("opened{d}"),
                format!("update @trusted{d} {{ {} }}", p.source_key(family)),
            );
        }
        rule(&format!("opened{d}"), format!("goto clear{d}"));
        rule(
            &format!("cancel{d}"),
            format!("counter name {COUNTER_CANCELLED} goto clear{d}"),
        );
    }
    s
}

/// The matches that make a source trusted: it opened a door recently, or it is in `never_ban`.
fn trust_checks(p: &NftParams) -> Vec<String> {
    let mut checks = Vec::new();
    for family in Family::BOTH {
        let d = family.digit();
        if p.trusts_knockers() {
            checks.push(format!("{} @trusted{d}", p.source_key(family)));
        }
        if !p.never_ban(family).is_empty() {
            checks.push(format!("{} @never_ban{d}", family.saddr()));
        }
    }
    checks
}

/// Full base table. Wipes and recreates the table (`add table` + `delete
/// table` + definition), so loading it is idempotent; it also empties
/// `allowed*`, `banned*` and `trusted*` (established connections survive
/// through conntrack). Load it at daemon start or when `NftParams` change;
/// per-window updates use [`doors_transaction`].
pub fn base_ruleset(p: &NftParams) -> String {
    let t = &p.table;
    let l = &p.limits;
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "delete table inet {t}");
    let _ = writeln!(s, "table inet {t} {{");
    for c in COUNTERS {
        let _ = writeln!(s, "\tcounter {c} {{ }}");
    }
    let (global_rate, global_burst) = p.global_budget();
    let _ = writeln!(
        s,
        "\tlimit {GLOBAL_LIMIT} {{ rate over {global_rate} burst {global_burst} packets }}"
    );
    let _ = writeln!(
        s,
        "\tset {STATE_SET} {{ type mark; size 16; comment \"{}\"; }}",
        base_settings(p)
    );
    let _ = writeln!(
        s,
        "\tset {ATTACK_SET} {{ type inet_proto; size 1; flags dynamic,timeout; timeout {}s; }}",
        l.attack_seconds
    );
    let dyn_set = |s: &mut String, name: &str, family: Family, timeout: u64| {
        let _ = writeln!(
            s,
            "\tset {name} {{ type {}; size {}; flags dynamic,timeout; timeout {timeout}s; }}",
            family.addr_type(),
            l.tracked_sources
        );
    };
    for family in Family::BOTH {
        let d = family.digit();
        dyn_set(&mut s, &format!("allowed{d}"), family, p.open_seconds);
        for &len in p.prefixes(family) {
            dyn_set(
                &mut s,
                &level_set("banned", family, len),
                family,
                l.ban_seconds,
            );
            dyn_set(
                &mut s,
                &level_set("wrong", family, len),
                family,
                p.wrong_set_timeout(),
            );
        }
        dyn_set(&mut s, &format!("rate{d}"), family, p.rate_set_timeout());
        dyn_set(&mut s, &format!("trate{d}"), family, p.rate_set_timeout());
        if p.trusts_knockers() {
            dyn_set(&mut s, &format!("trusted{d}"), family, l.trust_seconds);
        }
        let never_ban = p.never_ban(family);
        if !never_ban.is_empty() {
            let _ = writeln!(
                s,
                "\tset never_ban{d} {{ type {}; flags interval; auto-merge; elements = {}; }}",
                family.addr_type(),
                nft_list(&never_ban)
            );
        }
    }
    let hook = "\t\ttype filter hook input priority filter - 10; policy accept;\n";
    for chain in base_chains(p).iter().map(String::as_str).chain(DOOR_CHAINS) {
        let _ = writeln!(
            s,
            "\tchain {chain} {{\n{}\t}}",
            if chain == "input" { hook } else { "" }
        );
    }
    s.push_str("}\n");
    s.push_str(&base_rules(p));
    // No doors yet: every knock is a wrong one.
    let _ = writeln!(s, "add rule inet {t} doors goto wrong");
    s
}

/// Doors actually rendered: renderable, first occurrence of each key.
pub fn effective_doors(p: &NftParams, doors: &[NftDoor]) -> Vec<NftDoor> {
    let mut seen = BTreeSet::new();
    doors
        .iter()
        .filter(|d| d.is_renderable(p))
        .filter(|d| seen.insert(d.key()))
        .cloned()
        .collect()
}

fn flush_chains<'a>(s: &mut String, t: &str, chains: impl IntoIterator<Item = &'a str>) {
    for chain in chains {
        let _ = writeln!(s, "flush chain inet {t} {chain}");
    }
}

/// Deletes the sets of each door in `gone`. Each set is `add`ed first so
/// the transaction does not fail when `previous` was stale (nft 1.0.6 has no
/// `destroy`). Must come after the chains referencing them were flushed.
fn delete_door_sets<'a>(s: &mut String, p: &NftParams, gone: impl Iterator<Item = &'a DoorKey>) {
    let t = &p.table;
    for key in gone {
        for (name, def) in door_set_defs(p, key) {
            let _ = writeln!(s, "add set inet {t} {name} {def}");
            let _ = writeln!(s, "delete set inet {t} {name}");
        }
    }
}

/// The definition of a user's grants set (as used by `add set`).
fn grants_set_def(p: &NftParams, family: Family) -> String {
    format!(
        "{{ type {}; size {}; flags dynamic,timeout; timeout {}s; }}",
        family.addr_type(),
        p.limits.tracked_sources,
        crate::server::config::MAX_OPEN_SECONDS
    )
}

/// Creates each user's grants sets and counter (no-ops when present).
fn declare_users(s: &mut String, p: &NftParams, users: &BTreeSet<&NftUser>) {
    let t = &p.table;
    for user in users {
        for family in Family::BOTH {
            let _ = writeln!(
                s,
                "add set inet {t} {} {}",
                user.grants_set(family),
                grants_set_def(p, family)
            );
        }
        let _ = writeln!(s, "add counter inet {t} {}", user.opened_counter());
    }
}

/// Deletes the grants sets and counter of the users tagged `tags` (nothing may refer to them
/// any more), first deleting from `allowed4`/`allowed6` the `revoked` addresses.
pub fn revoke_users_transaction(p: &NftParams, tags: &[String], revoked: &[IpAddr]) -> String {
    let t = &p.table;
    let mut s = String::new();
    for addr in revoked {
        let d = if addr.is_ipv4() { 4 } else { 6 };
        // Added first, so a grant that has just expired does not fail the transaction.
        let _ = writeln!(s, "add element inet {t} allowed{d} {{ {addr} timeout 1s }}");
        let _ = writeln!(s, "delete element inet {t} allowed{d} {{ {addr} }}");
    }
    for tag in tags {
        for family in Family::BOTH {
            let name = grants_set(tag, family);
            let _ = writeln!(s, "add set inet {t} {name} {}", grants_set_def(p, family));
            let _ = writeln!(s, "delete set inet {t} {name}");
        }
        let counter = opened_counter(tag);
        let _ = writeln!(s, "add counter inet {t} {counter}");
        let _ = writeln!(s, "delete counter inet {t} {counter}");
    }
    s
}

/// The `state` set's elements: the windows whose doors are in place.
fn record_windows(s: &mut String, t: &str, keys: &[DoorKey]) {
    let counters: BTreeSet<u64> = keys.iter().map(|k| k.counter).collect();
    let _ = writeln!(s, "flush set inet {t} {STATE_SET}");
    if !counters.is_empty() {
        let _ = writeln!(s, "add element inet {t} {STATE_SET} {}", nft_list(counters));
    }
}

/// One `nft -f` transaction that re-asserts every base chain's rules and
/// replaces the door rules. Per-door sets are created with `add set` (no-op
/// when present, so stages and owners of doors that stay survive); sets of
/// doors in `previous` but not in `doors` are deleted. The contents of
/// every other set and the counters are untouched. Doors that are not
/// [`NftDoor::is_renderable`] are skipped.
pub fn doors_transaction(p: &NftParams, doors: &[NftDoor], previous: &[DoorKey]) -> String {
    let t = &p.table;
    let doors = effective_doors(p, doors);
    let mut s = String::new();
    let chains = base_chains(p);
    flush_chains(
        &mut s,
        t,
        chains.iter().map(String::as_str).chain(DOOR_CHAINS),
    );
    s.push_str(&base_rules(p));
    let users: BTreeSet<&NftUser> = doors.iter().filter_map(|d| d.user.as_ref()).collect();
    declare_users(&mut s, p, &users);
    for d in &doors {
        for (name, def) in door_set_defs(p, &d.key()) {
            let _ = writeln!(s, "add set inet {t} {name} {def}");
        }
    }
    let time = |d: &NftDoor| {
        format!(
            "meta time >= {} meta time < {}",
            d.valid_from, d.valid_until
        )
    };
    // 1. completions: staged for this door and the knock is its B.
    for d in &doors {
        let (key, b, tm, cm) = (d.key(), d.ports[1], time(d), d.comment());
        let of = owner_fam_set(&key);
        let open = d.user.as_ref().map_or(p.open_seconds, |u| u.open_seconds);
        for family in Family::BOTH {
            let (f, saddr) = (family.digit(), family.saddr());
            let (stage, owner) = (stage_set(&key, f), owner_set(&key, f));
            let attribution = match &d.user {
                Some(user) => format!(
                    " update @{} {{ {saddr} timeout {open}s }} counter name {}",
                    user.grants_set(family),
                    user.opened_counter()
                ),
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "add rule inet {t} doors {tm} tcp dport {b} {saddr} @{stage} add @{of} {{ meta nfproto }} add @{owner} {{ {saddr} }} update @allowed{f} {{ {saddr} timeout {open}s }}{attribution} counter name {COUNTER_OPENED} goto opened{f} comment \"{cm}\""
            );
            let _ = writeln!(
                s,
                "add rule inet {t} doors {tm} tcp dport {b} {saddr} @{stage} counter name {COUNTER_REFUSED} goto clear{f}"
            );
        }
    }
    // 2. cancellations: any other knock while staged clears all stages.
    for d in &doors {
        let key = d.key();
        for family in Family::BOTH {
            let f = family.digit();
            let _ = writeln!(
                s,
                "add rule inet {t} doors {} @{} jump cancel{f}",
                family.saddr(),
                stage_set(&key, f)
            );
        }
    }
    // 3. stage starts.
    for d in &doors {
        let (key, a, tm) = (d.key(), d.ports[0], time(d));
        for family in Family::BOTH {
            let f = family.digit();
            let _ = writeln!(
                s,
                "add rule inet {t} doors {tm} tcp dport {a} meta nfproto {} add @{} {{ {} }}",
                family.nfproto(),
                stage_set(&key, f),
                family.saddr()
            );
        }
    }
    // 4. wrong knocks: what did not start a door (nor completed one: that went to clear).
    let starts: BTreeSet<(u16, u64, u64)> = doors
        .iter()
        .map(|d| (d.ports[0], d.valid_from, d.valid_until))
        .collect();
    for (a, from, until) in starts {
        let _ = writeln!(
            s,
            "add rule inet {t} doors meta time >= {from} meta time < {until} tcp dport {a} return"
        );
    }
    let _ = writeln!(s, "add rule inet {t} doors goto wrong");
    for d in &doors {
        let key = d.key();
        for family in Family::BOTH {
            let f = family.digit();
            let _ = writeln!(
                s,
                "add rule inet {t} clear{f} delete @{} {{ {} }}",
                stage_set(&key, f),
                family.saddr()
            );
        }
    }
    let keep: BTreeSet<DoorKey> = doors.iter().map(NftDoor::key).collect();
    let gone: BTreeSet<&DoorKey> = previous.iter().filter(|k| !keep.contains(k)).collect();
    delete_door_sets(&mut s, p, gone.into_iter());
    record_windows(&mut s, t, &keep.into_iter().collect::<Vec<_>>());
    s
}

/// Removes every door (e.g. on SIGTERM): flushes the door chains and deletes
/// the per-door sets of `previous`. The table, `allowed*`, `banned*` and the
/// protected-port drop stay (fail closed).
pub fn remove_doors_transaction(p: &NftParams, previous: &[DoorKey]) -> String {
    let mut s = String::new();
    flush_chains(&mut s, &p.table, DOOR_CHAINS);
    let _ = writeln!(s, "add rule inet {} doors goto wrong", p.table);
    let gone: BTreeSet<&DoorKey> = previous.iter().collect();
    delete_door_sets(&mut s, p, gone.into_iter());
    record_windows(&mut s, &p.table, &[]);
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
    fn key(counter: u64) -> DoorKey {
        DoorKey { tag: None, counter }
    }
    fn door(c: u64, a: u16, b: u16) -> NftDoor {
        NftDoor {
            counter: c,
            ports: [a, b],
            valid_from: c * 30,
            valid_until: c * 30 + 30,
            user: None,
        }
    }
    /// The rules of `chain` in a rendered text, in order.
    fn rules<'a>(text: &'a str, chain: &str) -> Vec<&'a str> {
        let prefix = format!("add rule inet knock_totp_web {chain} ");
        text.lines()
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .collect()
    }
    fn position(rules: &[&str], needle: &str) -> usize {
        rules
            .iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no rule with {needle:?} in {rules:#?}"))
    }

    #[test]
    fn the_global_budget_shrinks_with_users_so_the_odds_stay_within_one_secrets() {
        use crate::core::ports::guessing_odds;
        let one = params();
        assert_eq!(one.global_budget(), ("240/hour".to_owned(), 480));
        let single = guessing_odds(one.global_pairs_per_day(), 3);
        for users in [2usize, 3, 10, 100, 1000, crate::server::users::MAX_USERS] {
            let p = params().for_users(users);
            let odds = guessing_odds(p.global_pairs_per_day(), 3 * users as u64);
            assert!(odds <= single * 1.001, "{users} users: {odds} > {single}");
            assert!(base_ruleset(&p).contains(&format!(
                "limit global_wrong {{ rate over {} burst {} packets }}",
                p.global_budget().0,
                p.global_budget().1
            )));
        }
        assert_eq!(
            params().for_users(1000).global_budget(),
            ("5/day".to_owned(), 1)
        );
    }

    #[test]
    fn base_settings_fit_an_nft_comment_and_tell_configs_apart() {
        let mut p = params();
        let plain = base_settings(&p);
        assert!(plain.starts_with(BASE_COMMENT_PREFIX) && plain.len() <= 128);
        assert!(base_ruleset(&p).contains(&format!("comment \"{plain}\"")));
        p.limits.wrong_knock_burst += 1;
        assert_ne!(base_settings(&p), plain);
        let mut q = params();
        q.limits.public_ports = (1000..1100).collect();
        assert!(base_settings(&q).len() <= 128);
        assert_ne!(base_settings(&q), plain);
        let mut r = params();
        r.limits.never_ban = vec!["192.0.2.0/24".into()];
        assert_ne!(base_settings(&r), plain);
    }

    #[test]
    fn public_ports_return_before_anything_and_no_door_uses_them() {
        let mut p = params();
        p.limits.public_ports = vec![8080, 22, 2222];
        let base = base_ruleset(&p);
        let knock = rules(&base, "knock");
        // 22 is outside the knock range and 2222 the protected port: neither is a knock.
        assert_eq!(knock[0], "tcp dport { 8080 } return", "{knock:#?}");
        assert_eq!(knock[1], "counter name knocks");
        assert!(!door(7, 8080, 4180).is_renderable(&p));
        assert!(!door(7, 4180, 8080).is_renderable(&p));
        assert!(door(7, 4180, 8081).is_renderable(&p));
        let tx = doors_transaction(&p, &[door(7, 4000, 8080)], &[]);
        assert!(!tx.contains("stage_7_4"));
    }

    #[test]
    fn every_meter_is_followed_by_its_fail_closed_check() {
        let text = base_ruleset(&params());
        for chain in ["knock", "wrong", "trusted"] {
            let chain_rules = rules(&text, chain);
            for (i, rule) in chain_rules.iter().enumerate() {
                let Some(rest) = rule.split(" update @").nth(1) else {
                    continue;
                };
                let set = rest.split_whitespace().next().unwrap();
                let next = chain_rules[i + 1];
                assert!(
                    next.contains(&format!("!= @{set} ")) && next.ends_with("drop")
                        || next.ends_with("goto untracked"),
                    "{chain}: {rule} is followed by {next}"
                );
            }
        }
        for family in Family::BOTH {
            for &len in params().prefixes(family) {
                let ban = rules(&text, &level_set("ban", family, len));
                assert_eq!(ban.len(), 2);
                assert!(ban[0].starts_with(&format!("add @{} ", level_set("banned", family, len))));
                assert_eq!(ban[1], "goto untracked", "a full ban set still drops");
            }
        }
        let untracked = rules(&text, "untracked");
        assert_eq!(
            untracked,
            ["update @attack { meta l4proto } counter name untracked drop"]
        );
    }

    #[test]
    fn untrusted_knocks_meet_bans_at_every_level_then_the_attack_gate_then_the_rate() {
        let text = base_ruleset(&params());
        let knock = rules(&text, "knock");
        let trusted = position(&knock, "@trusted4 goto trusted");
        let bans = [
            "ip saddr @banned_4_32 counter name banned drop",
            "ip saddr & 255.255.255.0 @banned_4_24 counter name banned drop",
            "ip saddr & 255.255.0.0 @banned_4_16 counter name banned drop",
            "ip6 saddr & ffff:ffff:ffff:ffff:: @banned_6_64 counter name banned drop",
            "ip6 saddr & ffff:ffff:ffff:: @banned_6_48 counter name banned drop",
            "ip6 saddr & ffff:ffff:: @banned_6_32 counter name banned drop",
        ];
        let gate = position(&knock, "meta l4proto @attack goto attacked");
        for ban in bans {
            let at = position(&knock, ban);
            assert!(trusted < at && at < gate, "{ban}");
        }
        let rate = position(
            &knock,
            "meta nfproto ipv4 update @rate4 { ip saddr limit rate over 60/minute burst 40 packets } goto ban_4_32",
        );
        assert!(gate < rate);
        assert_eq!(knock.last(), Some(&"goto doors"));
        assert!(text.contains("limit global_wrong { rate over 240/hour burst 480 packets }"));
        assert_eq!(
            rules(&text, "attacked"),
            [
                "limit name global_wrong update @attack { meta l4proto }",
                "counter name attacked drop"
            ]
        );
    }

    #[test]
    fn broader_prefixes_get_twice_the_wrong_budget_of_the_level_before() {
        let text = base_ruleset(&params());
        let wrong = rules(&text, "wrong");
        for (key, set, budget) in [
            ("ip saddr", "wrong_4_32", "20/hour burst 40"),
            ("ip saddr & 255.255.255.0", "wrong_4_24", "40/hour burst 80"),
            ("ip saddr & 255.255.0.0", "wrong_4_16", "80/hour burst 160"),
            (
                "ip6 saddr & ffff:ffff:ffff:ffff::",
                "wrong_6_64",
                "20/hour burst 40",
            ),
            ("ip6 saddr & ffff:ffff::", "wrong_6_32", "80/hour burst 160"),
        ] {
            let level = set.rsplit('_').next().unwrap();
            let meter = format!(
                "update @{set} {{ {key} limit rate over {budget} packets }} goto ban_{}_{level}",
                &set[6..7]
            );
            position(&wrong, &meter);
        }
        // Trusted sources spend only the global budget.
        assert!(wrong[0].ends_with("@trusted4 goto budget"), "{wrong:#?}");
        assert_eq!(wrong.last(), Some(&"goto budget"));
    }

    #[test]
    fn trust_comes_from_an_opened_door_or_never_ban_and_can_be_off() {
        let mut p = params();
        p.limits.never_ban = vec!["192.0.2.7/24".into(), "2001:db8::1/48".into()];
        let text = base_ruleset(&p);
        assert!(text.contains("set never_ban4 { type ipv4_addr; flags interval; auto-merge; elements = { 192.0.2.0/24 }; }"));
        assert!(text.contains("elements = { 2001:db8::/48 }"));
        let knock = rules(&text, "knock");
        position(&knock, "ip saddr @never_ban4 goto trusted");
        position(
            &knock,
            "ip6 saddr & ffff:ffff:ffff:ffff:: @trusted6 goto trusted",
        );
        assert_eq!(
            rules(&text, "opened4"),
            ["update @trusted4 { ip saddr }", "goto clear4"]
        );
        assert!(text.contains(
            "set trusted4 { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 604800s; }"
        ));
        p.limits.trust_seconds = 0;
        p.limits.never_ban.clear();
        let off = base_ruleset(&p);
        assert!(!off.contains("trusted4") && !off.contains("goto trusted"));
        assert_eq!(rules(&off, "opened4"), ["goto clear4"]);
    }

    #[test]
    fn prefix_lists_choose_the_levels() {
        let mut p = params();
        p.limits.ipv4_prefixes = vec![32];
        p.limits.ipv6_prefixes = vec![128, 56];
        let text = base_ruleset(&p);
        assert!(!text.contains("banned_4_24") && text.contains("banned_6_56"));
        assert!(text.contains("update @rate6 { ip6 saddr limit rate"));
        assert!(text.contains("ip6 saddr & ffff:ffff:ffff:ff00:: @banned_6_56"));
        assert_eq!(
            parse_level_set("banned_6_56"),
            Some(("banned", Family::V6, 56))
        );
        assert_eq!(parse_level_set("allowed4"), None);
    }

    #[test]
    fn validate_rejects_bad_names_and_limits() {
        assert!(params().validate().is_ok());
        for bad in ["", "1abc", "a b", "a;b", "a\"b", "a}"] {
            let mut p = params();
            p.table = bad.into();
            assert!(p.validate().is_err(), "{bad}");
        }
        let mut p = params();
        p.limits.burst = 0;
        assert!(p.validate().is_err());
        for prefixes in [vec![], vec![24, 32], vec![33], vec![0], vec![32, 32]] {
            let mut p = params();
            p.limits.ipv4_prefixes = prefixes.clone();
            assert!(p.validate().is_err(), "{prefixes:?}");
        }
        let mut p = params();
        p.limits.never_ban = vec!["10.0.0.0/33".into()];
        assert!(p.validate().unwrap_err().contains("never_ban"));
    }

    #[test]
    fn base_has_protected_port_before_knocks() {
        let s = base_ruleset(&params());
        assert!(s.starts_with("add table inet knock_totp_web\ndelete table inet knock_totp_web\n"));
        let input = rules(&s, "input");
        let est = position(&input, "tcp dport 2222 ct state established,related accept");
        let drop = position(&input, "tcp dport 2222 counter name denied drop");
        let knock = position(&input, "jump knock");
        assert!(est < drop && drop < knock);
        assert!(s.contains("priority filter - 10"));
        assert!(s.contains(
            "set allowed4 { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 30s; }"
        ));
        for c in COUNTERS {
            assert!(s.contains(&format!("counter {c} {{ }}")));
        }
        assert!(!s.contains("tcp dport 1000-9999 drop"));
        assert_eq!(rules(&s, "doors"), ["goto wrong"]);
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn drop_knock_range_excludes_public_ports() {
        let mut p = params();
        p.limits.drop_knock_range = true;
        p.limits.public_ports = vec![8443, 8080, 443, 2222, 8080];
        let s = base_ruleset(&p);
        let input = rules(&s, "input");
        let knock = position(&input, "jump knock");
        let drop = position(
            &input,
            "tcp dport 1000-9999 tcp dport != { 8080, 8443 } drop",
        );
        assert!(knock < drop);
        p.limits.public_ports.clear();
        assert!(base_ruleset(&p).contains("input tcp dport 1000-9999 drop\n"));
    }

    #[test]
    fn a_doors_transaction_reasserts_every_chain_and_records_its_windows() {
        let p = params();
        let base = base_ruleset(&p);
        let tx = doors_transaction(&p, &[door(10, 1111, 2345)], &[]);
        for chain in base_chains(&p)
            .iter()
            .map(String::as_str)
            .chain(DOOR_CHAINS)
        {
            let flush = tx
                .find(&format!("flush chain inet knock_totp_web {chain}\n"))
                .unwrap_or_else(|| panic!("{chain} is not flushed"));
            assert!(flush < tx.find("add rule").unwrap());
            if !DOOR_CHAINS.contains(&chain) {
                assert_eq!(rules(&tx, chain), rules(&base, chain), "{chain}");
            }
        }
        assert!(tx.ends_with(
            "flush set inet knock_totp_web state\nadd element inet knock_totp_web state { 10 }\n"
        ));
        assert!(!tx.contains("delete table") && !tx.contains("flush set inet knock_totp_web rate"));
    }

    #[test]
    fn doors_order_and_sets() {
        let p = params();
        let ds = [door(10, 1111, 2345), door(11, 3333, 4444)];
        let s = doors_transaction(&p, &ds, &[]);
        assert!(s.contains(
            "add set inet knock_totp_web stage_10_4 { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 10s; }"
        ));
        assert!(s.contains(
            "add set inet knock_totp_web owner_11_6 { type ipv6_addr; size 1; flags dynamic; }"
        ));
        assert!(s.contains("meta time >= 300 meta time < 330 tcp dport 2345 ip saddr @stage_10_4 add @owner_10_f { meta nfproto } add @owner_10_4 { ip saddr } update @allowed4 { ip saddr timeout 30s } counter name opened goto opened4"));
        assert!(s.contains(
            "ip6 saddr @stage_11_6 add @owner_11_f { meta nfproto } add @owner_11_6 { ip6 saddr }"
        ));
        let doors = rules(&s, "doors");
        let last_completion = doors
            .iter()
            .rposition(|r| r.contains("counter name refused"))
            .unwrap();
        let first_cancel = position(&doors, "jump cancel");
        let last_cancel = doors
            .iter()
            .rposition(|r| r.contains("jump cancel"))
            .unwrap();
        let first_start = position(&doors, "tcp dport 1111 meta nfproto ipv4 add @stage_10_4");
        assert!(last_completion < first_cancel && last_cancel < first_start);
        assert_eq!(doors.last(), Some(&"goto wrong"));
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
                user: None,
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
            &[key(10), key(11)],
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
        let s = remove_doors_transaction(&params(), &[key(7), key(8)]);
        assert!(!s.contains("delete table") && !s.contains("allowed"));
        assert!(s.contains("flush chain inet knock_totp_web doors"));
        assert!(s.contains("add rule inet knock_totp_web doors goto wrong"));
        assert!(s.contains("delete set inet knock_totp_web owner_8_6"));
        assert!(s.ends_with("flush set inet knock_totp_web state\n"));
        assert_eq!(s.matches("delete set").count(), 10);
    }

    #[test]
    fn comment_roundtrip() {
        let d = NftDoor {
            counter: 58_000_123,
            ports: [1234, 9876],
            valid_from: 1_740_000_000,
            valid_until: 1_740_000_030,
            user: None,
        };
        assert_eq!(NftDoor::parse_comment(&d.comment()), Some(d.clone()));
        assert!(
            d.comment().len() < 128,
            "nft comments are limited to 128 bytes"
        );
        assert_eq!(NftDoor::parse_comment("something else"), None);
        assert_eq!(NftDoor::parse_comment("knock-totp door c=1 a=2"), None);
    }

    #[test]
    fn meter_timeouts_cover_the_refill() {
        let p = params();
        assert_eq!(p.rate_set_timeout(), 60 + 40);
        assert_eq!(p.wrong_set_timeout(), 60 + 7200);
    }
}
