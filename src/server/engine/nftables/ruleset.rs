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
//! * `chain doors` and the chains after it are the same whatever the doors: a
//!   door is elements. `starts` holds every live door's A, `pairs` maps (A . B)
//!   to the door's id, `door_grant` maps the id to the chain that grants for the
//!   door's length (its comment describes the door), each element with the
//!   door's remaining life as its timeout. A source in `staged4/6` has its A in
//!   fourteen bit sets (`abit4_0`..): `staged` rebuilds A into the packet's mark,
//!   `pairs` turns (mark . dport) into the door's id (completion), else the stage
//!   ends (`cancelled`) and the knock counts afresh: a live A stages the source
//!   (`start`), anything else goes to `chain wrong`: meters at every prefix
//!   level (`limit rate over W/hour`, each broader level twice the budget), over
//!   -> ban; then the global budget (`limit name global_wrong`), over -> under
//!   attack. Trusted sources' wrong knocks spend only the global budget.
//!   (A per-source value must be bits: a dynamic map's data cannot be replaced
//!   or deleted from the packet path on nft 1.0.6, and a lookup key cannot hold
//!   a constant.)
//! * Single use: `used` holds the ids of opened doors and `owners4/6` (id .
//!   address) who opened each: the owner may open its door again, anyone else
//!   (or the other family) is refused. Door ids are the window's low 20 bits
//!   and the holder's slot, unique among the doors the table remembers.
//! * The daemon never lists the meter sets (65,536 elements list in ~0.7 s and
//!   ~140 MB of nft): set `state` carries the settings in its comment and the
//!   installed windows as elements, and every doors transaction re-asserts all
//!   chains, so a flushed chain is repaired without reading it.
//! * Time bounds are element timeouts counted from the transaction's `now`: a
//!   door not live at `now` is left out (the repair every few seconds puts it in
//!   when it is), and one ends by itself when its window does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::core::names::name_hash;
use crate::core::ports::{MAX_KNOCK_PORT, MIN_KNOCK_PORT};
use crate::server::config::{
    Cidr, NftSettings, DEFAULT_OPEN_SECONDS, DEFAULT_SEQ_TIMEOUT, MAX_OPEN_SECONDS,
};

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
        "{BASE_COMMENT_PREFIX} v5 port={} open={} seq={} #{}",
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
    /// Names the user's counter (see `users::user_tag`).
    pub tag: String,
    /// The user's grant length (their own, or the server's).
    pub open_seconds: u64,
}

impl NftUser {
    /// The named counter of the doors the user opened.
    pub fn opened_counter(&self) -> String {
        opened_counter(&self.tag)
    }

    /// How the `users` set's comment describes the user.
    pub fn comment(&self) -> String {
        format!(
            "knock-totp user name={} tag={} open={}",
            self.name, self.tag, self.open_seconds
        )
    }

    /// Inverse of [`NftUser::comment`].
    pub fn parse_comment(text: &str) -> Option<NftUser> {
        let rest = text.strip_prefix("knock-totp user")?;
        let (mut name, mut tag, mut open) = (None, None, None);
        for kv in rest.split_whitespace() {
            match kv.split_once('=')? {
                ("name", v) => name = Some(v.to_owned()),
                ("tag", v) => tag = Some(v.to_owned()),
                ("open", v) => open = v.parse().ok(),
                _ => {}
            }
        }
        Some(NftUser {
            name: name?,
            tag: tag?,
            open_seconds: open?,
        })
    }
}

/// The named counter of the doors opened by the user tagged `tag`.
pub fn opened_counter(tag: &str) -> String {
    format!("{COUNTER_OPENED}_{tag}")
}

/// Bits of a door id that hold its holder's slot (the single secret's, or a user's).
pub const SLOT_BITS: u32 = 12;
/// The single secret's slot; users get 2 and up.
pub const SERVER_SLOT: u16 = 1;
/// Most slots (holders) one table tells apart.
pub const MAX_SLOT: u16 = (1 << SLOT_BITS) - 1;

/// A door's id in the kernel (its packets' mark while they complete it): the low 20 bits of
/// its window and its holder's slot. Unique among the doors a table remembers (a used door is
/// remembered for [`USED_DOOR_SECONDS`], far less than 2^20 windows), and never 0.
pub fn door_id(counter: u64, slot: u16) -> u32 {
    ((counter as u32 & 0xF_FFFF) << SLOT_BITS) | u32::from(slot & MAX_SLOT)
}

/// The slot of door id `id`.
pub fn slot_of(id: u32) -> u16 {
    (id & u32::from(MAX_SLOT)) as u16
}

/// How long the table remembers that a door was used, and by whom: longer than any door
/// lives (three periods of at most 120 s).
pub const USED_DOOR_SECONDS: u64 = 600;

/// Bits of a knock port (1000..=9999 needs 14): a staged source's port A is kept as one bit
/// per set, the only way nft keeps a per-source value it can overwrite from the packet path
/// (a dynamic map's data cannot be replaced or deleted there).
pub const PORT_BITS: u8 = 14;

/// Set `starts`: the port A of every live door (an element lives as long as its doors).
pub const STARTS_SET: &str = "starts";
/// Map `pairs`: (A . B) -> door id, each element living as long as its door.
pub const PAIRS_MAP: &str = "pairs";
/// Map `door_grant`: door id -> the chain that grants for that door's length; its elements'
/// comments describe the doors (`status.rs` reads doors back from them).
pub const DOOR_MAP: &str = "door_grant";
/// Set `users`: each user's slot, described by its comment.
pub const USERS_SET: &str = "users";
/// Map `user_opened`: a slot -> that user's `opened_TAG` counter.
pub const USER_COUNTER_MAP: &str = "user_opened";
/// Set `used`: the ids of the doors opened (single use).
pub const USED_SET: &str = "used";

/// `owners4`/`owners6`: (door id . the address that opened it).
pub fn owners_set(family: Family) -> String {
    format!("owners{}", family.digit())
}
/// `staged4`/`staged6`: the sources that knocked a live door's A and may knock its B.
pub fn staged_set(family: Family) -> String {
    format!("staged{}", family.digit())
}
/// `grants4`/`grants6`: (door id . the address a door let in), living as long as the grant.
pub fn grants_set(family: Family) -> String {
    format!("grants{}", family.digit())
}
/// One bit of the port A a staged source knocked.
fn port_bit_set(family: Family, bit: u8) -> String {
    format!("abit{}_{bit}", family.digit())
}
/// The chain that grants for `open` seconds.
fn grant_chain(open: u64) -> String {
    format!("grant_{open}")
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftDoor {
    /// TOTP window counter.
    pub counter: u64,
    /// Knock ports A, B.
    pub ports: [u16; 2],
    /// Unix seconds, inclusive.
    pub valid_from: u64,
    /// Unix seconds, exclusive.
    pub valid_until: u64,
    /// Whose door it is (`None` on a single-secret server).
    pub user: Option<NftUser>,
    /// The holder's slot: [`SERVER_SLOT`] for the single secret, 2.. for users.
    pub slot: u16,
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
            && (1..=MAX_SLOT).contains(&self.slot)
    }

    pub fn id(&self) -> u32 {
        door_id(self.counter, self.slot)
    }

    pub fn open_seconds(&self, p: &NftParams) -> u64 {
        self.user
            .as_ref()
            .map_or(p.open_seconds, |u| u.open_seconds)
    }

    pub fn comment(&self) -> String {
        format!(
            "{} c={} a={} b={} from={} until={} slot={}",
            DOOR_COMMENT_PREFIX,
            self.counter,
            self.ports[0],
            self.ports[1],
            self.valid_from,
            self.valid_until,
            self.slot
        )
    }

    /// Inverse of [`NftDoor::comment`] (without the user, which the slot names).
    pub fn parse_comment(s: &str) -> Option<NftDoor> {
        let rest = s.strip_prefix(DOOR_COMMENT_PREFIX)?;
        let (mut c, mut a, mut b, mut f, mut u) = (None, None, None, None, None);
        let mut slot = None;
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "c" => c = v.parse::<u64>().ok(),
                "a" => a = v.parse::<u16>().ok(),
                "b" => b = v.parse::<u16>().ok(),
                "from" => f = v.parse::<u64>().ok(),
                "until" => u = v.parse::<u64>().ok(),
                "slot" => slot = v.parse::<u16>().ok(),
                _ => {}
            }
        }
        Some(NftDoor {
            counter: c?,
            ports: [a?, b?],
            valid_from: f?,
            valid_until: u?,
            user: None,
            slot: slot?,
        })
    }
}

/// Every chain of the base table, in the order they are declared (the same whatever the
/// doors; only the `grant_N` chains are made by [`rotation_transaction`], as needed).
fn base_chains(p: &NftParams) -> Vec<String> {
    let mut chains: Vec<String> = [
        "input",
        "forward",
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
        for kind in ["opened", "clear", "staged", "start", "complete"] {
            chains.push(format!("{kind}{}", family.digit()));
        }
    }
    chains.extend(["doors", "fresh", "grant"].map(String::from));
    chains
}

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
    // The protected port published by a container (Docker DNATs it to the container, so its
    // connections take the forward hook, not input): the same grants, by original port.
    let published = format!("meta l4proto tcp ct status dnat ct original proto-dst {port}");
    rule(
        "forward",
        format!("{published} ct state established,related accept"),
    );
    for family in Family::BOTH {
        rule(
            "forward",
            format!(
                "{published} {} @allowed{} accept",
                family.saddr(),
                family.digit()
            ),
        );
    }
    rule(
        "forward",
        format!("{published} counter name {COUNTER_DENIED} drop"),
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
        door_rules(p, family, &mut rule);
    }
    // doors: a staged source's knock completes or cancels its stage; then a live door's A
    // stages the source; anything else is a wrong knock.
    for family in Family::BOTH {
        rule(
            "doors",
            format!(
                "meta nfproto {} {} @{} goto staged{}",
                family.nfproto(),
                family.saddr(),
                staged_set(family),
                family.digit()
            ),
        );
    }
    rule("doors", "goto fresh".into());
    for family in Family::BOTH {
        rule(
            "fresh",
            format!(
                "tcp dport @{STARTS_SET} meta nfproto {} goto start{}",
                family.nfproto(),
                family.digit()
            ),
        );
    }
    rule("fresh", "goto wrong".into());
    // grant: the chain of the door's grant length (a door gone since: refused).
    rule("grant", format!("meta mark vmap @{DOOR_MAP}"));
    for family in Family::BOTH {
        rule(
            "grant",
            format!(
                "meta nfproto {} counter name {COUNTER_REFUSED} goto clear{}",
                family.nfproto(),
                family.digit()
            ),
        );
    }
    s
}

/// The door rules of one family: a staged source's port A comes back from its bit sets into
/// the packet's mark, `pairs` turns (A . B) into the door's id, and the door's single use is
/// two sets keyed by that id. Every rule is the same whatever the number of doors: a rotation
/// changes only set elements.
fn door_rules(p: &NftParams, family: Family, rule: &mut impl FnMut(&str, String)) {
    let (d, saddr) = (family.digit(), family.saddr());
    let staged = staged_set(family);
    let (staged_chain, start, complete) = (
        format!("staged{d}"),
        format!("start{d}"),
        format!("complete{d}"),
    );
    rule(&staged_chain, "meta mark set 0x0".into());
    for bit in 0..PORT_BITS {
        rule(
            &staged_chain,
            format!(
                "{saddr} @{} meta mark set meta mark | {:#x}",
                port_bit_set(family, bit),
                1u32 << bit
            ),
        );
    }
    rule(
        &staged_chain,
        format!("meta mark set meta mark . tcp dport map @{PAIRS_MAP} goto {complete}"),
    );
    // Any other knock ends the stage: a live door's A stages the source afresh (its stage
    // is kept and rewritten, not deleted and added again: the kernel cannot add back at once
    // an element a packet just deleted), anything else deletes it and is a wrong knock.
    rule(
        &staged_chain,
        format!("tcp dport @{STARTS_SET} counter name {COUNTER_CANCELLED} goto {start}"),
    );
    rule(
        &staged_chain,
        format!("counter name {COUNTER_CANCELLED} delete @{staged} {{ {saddr} }}"),
    );
    rule(&staged_chain, "goto wrong".into());
    // Each bit is either kept or deleted, never deleted and added back in one packet.
    for bit in 0..PORT_BITS {
        let (mask, set) = (1u32 << bit, port_bit_set(family, bit));
        rule(
            &start,
            format!("tcp dport & {mask:#x} != 0 update @{set} {{ {saddr} }}"),
        );
        rule(
            &start,
            format!("tcp dport & {mask:#x} == 0 delete @{set} {{ {saddr} }}"),
        );
    }
    rule(&start, format!("update @{staged} {{ {saddr} }} return"));
    // The stage could not be kept (a full set, or a source whose stage ended microseconds
    // ago): this knock stages nothing, and opens nothing. Not an attack: nothing is evaded.
    rule(&start, format!("counter name {COUNTER_UNTRACKED} drop"));
    let owners = owners_set(family);
    rule(
        &complete,
        format!("meta mark . {saddr} @{owners} goto grant"),
    );
    rule(
        &complete,
        format!("meta mark @{USED_SET} counter name {COUNTER_REFUSED} goto clear{d}"),
    );
    rule(
        &complete,
        format!(
            "add @{USED_SET} {{ meta mark }} add @{owners} {{ meta mark . {saddr} }} goto grant"
        ),
    );
    rule(
        &complete,
        format!("counter name {COUNTER_REFUSED} goto clear{d}"),
    );
    rule(
        &format!("clear{d}"),
        format!("delete @{staged} {{ {saddr} }}"),
    );
    let _ = p;
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
        "\tset {STATE_SET} {{ type mark; size 16; flags timeout; comment \"{}\"; }}",
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
        dyn_set(&mut s, &staged_set(family), family, p.seq_timeout);
        for bit in 0..PORT_BITS {
            dyn_set(&mut s, &port_bit_set(family, bit), family, p.seq_timeout);
        }
        let keyed = |s: &mut String, name: String, timeout: u64| {
            let _ = writeln!(
                s,
                "\tset {name} {{ type mark . {}; size {}; flags dynamic,timeout; timeout {timeout}s; }}",
                family.addr_type(),
                l.tracked_sources
            );
        };
        keyed(&mut s, owners_set(family), USED_DOOR_SECONDS);
        keyed(&mut s, grants_set(family), MAX_OPEN_SECONDS);
    }
    let _ = writeln!(
        s,
        "\tset {USED_SET} {{ type mark; size {}; flags dynamic,timeout; timeout {USED_DOOR_SECONDS}s; }}",
        l.tracked_sources
    );
    let _ = writeln!(
        s,
        "\tset {STARTS_SET} {{ type inet_service; flags timeout; }}"
    );
    let _ = writeln!(
        s,
        "\tmap {PAIRS_MAP} {{ type mark . inet_service : mark; flags timeout; }}"
    );
    let _ = writeln!(
        s,
        "\tmap {DOOR_MAP} {{ type mark : verdict; flags timeout; }}"
    );
    let _ = writeln!(s, "\tset {USERS_SET} {{ type mark; }}");
    let _ = writeln!(s, "\tmap {USER_COUNTER_MAP} {{ type mark : counter; }}");
    for chain in base_chains(p).iter().map(String::as_str) {
        let hook = match chain {
            "input" | "forward" => {
                format!("\t\ttype filter hook {chain} priority filter - 10; policy accept;\n")
            }
            _ => String::new(),
        };
        let _ = writeln!(s, "\tchain {chain} {{\n{hook}\t}}");
    }
    s.push_str("}\n");
    // No doors yet: `starts` and `pairs` are empty, so every knock is a wrong one.
    s.push_str(&base_rules(p));
    s
}

/// Doors actually rendered: renderable, one door for each id and for each pair. Two
/// holders' doors with the same pair (about 4 in a million pairs of doors, so a few at a time
/// among 1,000 users') are one door in the kernel: the one from the older window (then the
/// lower slot, then the first listed), and whoever knocks it first uses it; the other's client
/// finds it used and knocks its next window's pair. Oldest first, a door in the kernel stays
/// the one chosen for as long as it lives, so a boundary adds the newer door's pair to nothing.
pub fn effective_doors(p: &NftParams, doors: &[NftDoor]) -> Vec<NftDoor> {
    let mut order: Vec<usize> = (0..doors.len())
        .filter(|&i| doors[i].is_renderable(p))
        .collect();
    order.sort_by_key(|&i| (doors[i].valid_from, doors[i].slot));
    let (mut ids, mut pairs) = (BTreeSet::new(), BTreeSet::new());
    let mut chosen = vec![false; doors.len()];
    for i in order {
        chosen[i] = ids.insert(doors[i].id()) && pairs.insert(doors[i].ports);
    }
    doors
        .iter()
        .zip(chosen)
        .filter(|(_, chosen)| *chosen)
        .map(|(d, _)| d.clone())
        .collect()
}

fn flush_chains<'a>(s: &mut String, t: &str, chains: impl IntoIterator<Item = &'a str>) {
    for chain in chains {
        let _ = writeln!(s, "flush chain inet {t} {chain}");
    }
}

/// The `state` set's elements: the windows whose doors are in place, each living as long as
/// its last door.
fn record_windows(s: &mut String, t: &str, doors: &[NftDoor], now: Duration) {
    let mut windows: BTreeMap<u64, u64> = BTreeMap::new();
    for d in doors {
        let until = windows.entry(d.counter).or_default();
        *until = (*until).max(d.valid_until);
    }
    if !windows.is_empty() {
        let elements = windows
            .iter()
            .map(|(counter, until)| format!("{counter} timeout {}", timeout(*until, now)));
        let _ = writeln!(s, "add element inet {t} {STATE_SET} {}", nft_list(elements));
    }
}

/// Empties the door maps and sets that a doors transaction fills.
fn flush_doors(s: &mut String, t: &str) {
    for set in [STARTS_SET, USERS_SET, STATE_SET] {
        let _ = writeln!(s, "flush set inet {t} {set}");
    }
    for map in [PAIRS_MAP, DOOR_MAP, USER_COUNTER_MAP] {
        let _ = writeln!(s, "flush map inet {t} {map}");
    }
}

/// An element timeout that ends at the unix second `until`, to the millisecond: a door's
/// elements leave the kernel at its end by themselves, whichever transaction put them there.
fn timeout(until: u64, now: Duration) -> String {
    let ms = (u128::from(until) * 1000).saturating_sub(now.as_millis());
    format!("{ms}ms")
}

/// Whether `d` is live at `now`: only live doors are put in the kernel.
fn live_at(d: &NftDoor, now: Duration) -> bool {
    let now = now.as_secs();
    d.valid_from <= now && now < d.valid_until
}

/// One `nft -f` transaction that re-asserts every base chain's rules (a flushed chain comes
/// back without the table being read) and puts `doors` in place: what the daemon loads every
/// few seconds. See [`rotation_transaction`] for the doors alone.
pub fn doors_transaction(p: &NftParams, doors: &[NftDoor], now: Duration) -> String {
    let mut s = String::new();
    let chains = base_chains(p);
    flush_chains(&mut s, &p.table, chains.iter().map(String::as_str));
    s.push_str(&base_rules(p));
    s.push_str(&rotation_transaction(p, doors, now));
    s
}

/// The doors of `doors` that [`rotation_transaction`] puts in the kernel at `now`.
pub fn live_doors(p: &NftParams, doors: &[NftDoor], now: Duration) -> Vec<NftDoor> {
    effective_doors(p, doors)
        .into_iter()
        .filter(|d| live_at(d, now))
        .collect()
}

/// One `nft -f` transaction that puts `doors` in place, as elements only: their A ports,
/// their pairs, their grant chains and their users, every element living until its door
/// ends; what the daemon loads at a window boundary when [`added_doors_transaction`] cannot
/// serve. Doors not live at `now` and doors that are not [`NftDoor::is_renderable`] are
/// skipped. Stages, owners, grants, meters and counters are untouched.
pub fn rotation_transaction(p: &NftParams, doors: &[NftDoor], now: Duration) -> String {
    let t = &p.table;
    let doors = live_doors(p, doors, now);
    let mut s = String::new();
    let opens: BTreeSet<u64> = doors.iter().map(|d| d.open_seconds(p)).collect();
    for open in &opens {
        let chain = grant_chain(*open);
        let _ = writeln!(s, "add chain inet {t} {chain}");
        let _ = writeln!(s, "flush chain inet {t} {chain}");
        s.push_str(&grant_rules(t, &chain, *open));
    }
    flush_doors(&mut s, t);
    add_doors(&mut s, p, &doors, &doors, now);
    s
}

/// The transaction that takes the kernel from `in_kernel` (what the last transaction put
/// there, as [`live_doors`] gave it) to `doors` by adding elements, or None when that cannot
/// be exact: a door in the kernel that `doors` no longer has (a revoked user, a clock that
/// jumped), a user in the kernel with no door now (expired), or a new grant chain or user.
/// A transaction that deletes nothing is about four times as fast: every deletion makes the
/// kernel wait for an RCU grace period before `nft` exits. Doors that end leave by their
/// elements' timeouts.
///
/// Two small deletions replace an element that the new doors must change, in the same
/// transaction (packets see the old element or the new one, never none): a start that a new
/// door outlives (kernels before 6.10 ignore a new timeout on an add), and the pair of a door
/// that just ended, now another holder's door (its element may outlive its end by the few ms
/// of the load that put it there, and a map refuses a second value). Each is first added as
/// it was, so that its delete cannot fail when the element has just timed out.
pub fn added_doors_transaction(
    p: &NftParams,
    in_kernel: &[NftDoor],
    doors: &[NftDoor],
    now: Duration,
) -> Option<String> {
    let doors = live_doors(p, doors, now);
    let wanted: BTreeSet<&NftDoor> = doors.iter().collect();
    let kept: BTreeSet<&NftDoor> = in_kernel.iter().filter(|d| live_at(d, now)).collect();
    let ended = in_kernel.iter().filter(|d| !live_at(d, now));
    // A door that ended by the wall clock but not by the kernel's: the clock jumped. A user
    // in the kernel without a door now (expired): the refill takes them out of the users maps,
    // which hold their counter (revoked next).
    let slots_now: BTreeSet<u16> = doors.iter().map(|d| d.slot).collect();
    if ended.clone().any(|d| d.valid_until > now.as_secs())
        || !kept.is_subset(&wanted)
        || in_kernel.iter().any(|d| !slots_now.contains(&d.slot))
    {
        return None;
    }
    let opens: BTreeSet<u64> = kept.iter().map(|d| d.open_seconds(p)).collect();
    let slots: BTreeSet<u16> = kept.iter().map(|d| d.slot).collect();
    let new: Vec<NftDoor> = doors
        .iter()
        .filter(|d| !kept.contains(d))
        .cloned()
        .collect();
    let serves = new
        .iter()
        .all(|d| opens.contains(&d.open_seconds(p)) && slots.contains(&d.slot));
    if !serves {
        return None;
    }
    let t = &p.table;
    let mut s = String::new();
    let kernel_starts = start_ends(in_kernel.iter());
    let grown: Vec<u16> = start_ends(doors.iter())
        .into_iter()
        .filter(|(a, until)| kernel_starts.get(a).is_some_and(|end| end < until))
        .map(|(a, _)| a)
        .collect();
    if !grown.is_empty() {
        let grown = nft_list(grown);
        let _ = writeln!(s, "add element inet {t} {STARTS_SET} {grown}");
        let _ = writeln!(s, "delete element inet {t} {STARTS_SET} {grown}");
    }
    // Only an ended door can have a new door's pair: `doors` has one door per pair, kept ones
    // among them.
    let new_pairs: BTreeSet<[u16; 2]> = new.iter().map(|d| d.ports).collect();
    let taken: Vec<&NftDoor> = in_kernel
        .iter()
        .filter(|d| new_pairs.contains(&d.ports))
        .collect();
    if !taken.is_empty() {
        let as_it_was = taken
            .iter()
            .map(|d| format!("{} . {} : {}", d.ports[0], d.ports[1], d.id()));
        let keys = taken
            .iter()
            .map(|d| format!("{} . {}", d.ports[0], d.ports[1]));
        let _ = writeln!(
            s,
            "add element inet {t} {PAIRS_MAP} {}",
            nft_list(as_it_was)
        );
        let _ = writeln!(s, "delete element inet {t} {PAIRS_MAP} {}", nft_list(keys));
    }
    add_doors(&mut s, p, &new, &doors, now);
    Some(s)
}

/// Each A port of `doors` with the end of the last of its doors: how long its start lives.
fn start_ends<'a>(doors: impl Iterator<Item = &'a NftDoor>) -> BTreeMap<u16, u64> {
    let mut ends: BTreeMap<u16, u64> = BTreeMap::new();
    for d in doors {
        let until = ends.entry(d.ports[0]).or_default();
        *until = (*until).max(d.valid_until);
    }
    ends
}

/// Adds the elements of `new`, whose users and windows are among `all`'s.
fn add_doors(s: &mut String, p: &NftParams, new: &[NftDoor], all: &[NftDoor], now: Duration) {
    let t = &p.table;
    let mut users: BTreeMap<u16, &NftUser> = BTreeMap::new();
    for d in new {
        if let Some(user) = &d.user {
            users.insert(d.slot, user);
        }
    }
    for user in users.values() {
        let _ = writeln!(s, "add counter inet {t} {}", user.opened_counter());
    }
    // A start lives until the last door of `all` with its A port ends, not only the new ones.
    let new_starts: BTreeSet<u16> = new.iter().map(|d| d.ports[0]).collect();
    let mut starts = start_ends(all.iter());
    starts.retain(|a, _| new_starts.contains(a));
    if !starts.is_empty() {
        let elements = starts
            .iter()
            .map(|(a, until)| format!("{a} timeout {}", timeout(*until, now)));
        let _ = writeln!(
            s,
            "add element inet {t} {STARTS_SET} {}",
            nft_list(elements)
        );
        let pairs = new.iter().map(|d| {
            format!(
                "{} . {} timeout {} : {}",
                d.ports[0],
                d.ports[1],
                timeout(d.valid_until, now),
                d.id()
            )
        });
        let _ = writeln!(s, "add element inet {t} {PAIRS_MAP} {}", nft_list(pairs));
        let grants = new.iter().map(|d| {
            format!(
                "{} timeout {} comment \"{}\" : goto {}",
                d.id(),
                timeout(d.valid_until, now),
                d.comment(),
                grant_chain(d.open_seconds(p))
            )
        });
        let _ = writeln!(s, "add element inet {t} {DOOR_MAP} {}", nft_list(grants));
    }
    if !users.is_empty() {
        let described = users
            .iter()
            .map(|(slot, u)| format!("{slot} comment \"{}\"", u.comment()));
        let _ = writeln!(
            s,
            "add element inet {t} {USERS_SET} {}",
            nft_list(described)
        );
        let counters = users
            .iter()
            .map(|(slot, u)| format!("{slot} : \"{}\"", u.opened_counter()));
        let _ = writeln!(
            s,
            "add element inet {t} {USER_COUNTER_MAP} {}",
            nft_list(counters)
        );
    }
    let windows: BTreeSet<u64> = new.iter().map(|d| d.counter).collect();
    let of_windows: Vec<NftDoor> = all
        .iter()
        .filter(|d| windows.contains(&d.counter))
        .cloned()
        .collect();
    record_windows(s, t, &of_windows, now);
}

/// The rules of `chain`, which grants `open` seconds to the source of a completed door (the
/// packet's mark is the door's id).
fn grant_rules(t: &str, chain: &str, open: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "add rule inet {t} {chain} counter name meta mark & {:#x} map @{USER_COUNTER_MAP}",
        MAX_SLOT
    );
    for family in Family::BOTH {
        let (d, saddr) = (family.digit(), family.saddr());
        let _ = writeln!(
            s,
            "add rule inet {t} {chain} meta nfproto {} update @allowed{d} {{ {saddr} timeout {open}s }} update @{} {{ meta mark . {saddr} timeout {open}s }} counter name {COUNTER_OPENED} goto opened{d}",
            family.nfproto(),
            grants_set(family)
        );
    }
    s
}

/// Removes every door (e.g. on SIGTERM): no knock completes or starts any more. The table,
/// `allowed*`, `banned*` and the protected-port drop stay (fail closed).
pub fn remove_doors_transaction(p: &NftParams) -> String {
    let mut s = String::new();
    flush_doors(&mut s, &p.table);
    s
}

/// Takes `grants` (door id, address) out of the grants sets and `addresses` out of the
/// protected port's `allowed` sets, and deletes the counters of the users tagged `tags`
/// (their doors are already gone).
pub fn revoke_transaction(
    p: &NftParams,
    grants: &[(u32, IpAddr)],
    addresses: &[IpAddr],
    tags: &[String],
) -> String {
    let t = &p.table;
    let mut s = String::new();
    let family = |addr: &IpAddr| {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    };
    // Each element is added first, so one that has just expired does not fail the whole.
    for (id, addr) in grants {
        let set = grants_set(family(addr));
        let _ = writeln!(
            s,
            "add element inet {t} {set} {{ {id} . {addr} timeout 1s }}"
        );
        let _ = writeln!(s, "delete element inet {t} {set} {{ {id} . {addr} }}");
    }
    for addr in addresses {
        let d = family(addr).digit();
        let _ = writeln!(s, "add element inet {t} allowed{d} {{ {addr} timeout 1s }}");
        let _ = writeln!(s, "delete element inet {t} allowed{d} {{ {addr} }}");
    }
    for tag in tags {
        let counter = opened_counter(tag);
        let _ = writeln!(s, "add counter inet {t} {counter}");
        let _ = writeln!(s, "delete counter inet {t} {counter}");
    }
    s
}

/// Deletes the whole table (uninstall). Idempotent.
pub fn delete_table(p: &NftParams) -> String {
    format!("add table inet {0}\ndelete table inet {0}\n", p.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unix time `secs`, as the transactions take it.
    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn params() -> NftParams {
        NftParams::with_defaults("knock_totp_web", 2222)
    }
    fn door(c: u64, a: u16, b: u16) -> NftDoor {
        NftDoor {
            counter: c,
            ports: [a, b],
            valid_from: c * 30,
            valid_until: c * 30 + 30,
            user: None,
            slot: SERVER_SLOT,
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
        let tx = doors_transaction(&p, &[door(7, 4000, 8080)], at(7 * 30));
        assert!(!tx.contains("add element inet knock_totp_web pairs"));
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
        // No door yet: `starts` and `pairs` are empty, so every knock ends in `wrong`.
        assert!(!s.contains("add element"));
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
        let tx = doors_transaction(&p, &[door(10, 1111, 2345)], at(305));
        for chain in base_chains(&p) {
            let flush = tx
                .find(&format!("flush chain inet knock_totp_web {chain}\n"))
                .unwrap_or_else(|| panic!("{chain} is not flushed"));
            assert!(flush < tx.find("add rule").unwrap());
            assert_eq!(rules(&tx, &chain), rules(&base, &chain), "{chain}");
        }
        assert!(tx.contains("flush set inet knock_totp_web state\n"));
        assert!(tx.ends_with("add element inet knock_totp_web state { 10 timeout 25000ms }\n"));
        assert!(!tx.contains("delete table") && !tx.contains("flush set inet knock_totp_web rate"));
    }

    /// A boundary's transaction is the doors' elements (and the grant chains they use) only.
    #[test]
    fn a_rotation_transaction_touches_no_base_chain() {
        let p = params();
        let tx = rotation_transaction(&p, &[door(10, 1111, 2345)], at(305));
        for line in tx.lines() {
            let touches_rules = line.starts_with("add rule") || line.starts_with("flush chain");
            assert!(!touches_rules || line.contains(" grant_30"), "{line}");
        }
        assert!(tx.contains("add element inet knock_totp_web pairs"));
        assert!(doors_transaction(&p, &[door(10, 1111, 2345)], at(305)).ends_with(&tx));
    }

    /// Whatever the number of doors, the rules are the same: a door is elements only.
    #[test]
    fn doors_are_elements_and_the_rules_do_not_grow_with_them() {
        let p = params();
        let one = doors_transaction(&p, &[door(10, 1111, 2345)], at(305));
        let many: Vec<NftDoor> = (0..3000u16)
            .map(|i| NftDoor {
                slot: 2 + i / 3,
                ..door(9 + u64::from(i % 3), 1000 + i * 3, 1001 + i * 3 + 1)
            })
            .collect();
        let big = doors_transaction(&p, &many, at(305));
        let rule_lines = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("add rule") && !l.contains(" grant_"))
                .count()
        };
        assert_eq!(rule_lines(&one), rule_lines(&big));
        assert!(one.contains(&format!(
            "add element inet knock_totp_web pairs {{ 1111 . 2345 timeout 25000ms : {} }}",
            door_id(10, SERVER_SLOT)
        )));
        assert!(one.contains("add element inet knock_totp_web starts { 1111 timeout 25000ms }"));
        assert!(one.contains(&format!(
            "add element inet knock_totp_web door_grant {{ {} timeout 25000ms comment \"{}\" : goto grant_30 }}",
            door_id(10, SERVER_SLOT),
            door(10, 1111, 2345).comment()
        )));
        assert!(one.contains(
            "add rule inet knock_totp_web grant_30 meta nfproto ipv4 update @allowed4 { ip saddr timeout 30s } update @grants4 { meta mark . ip saddr timeout 30s } counter name opened goto opened4"
        ));
    }

    /// A staged source's knock first tries to complete (A comes back from its bits), then
    /// cancels the stage; only then may it start a new one; anything else is wrong.
    #[test]
    fn completion_then_cancel_then_start_then_wrong() {
        let base = base_ruleset(&params());
        assert_eq!(
            rules(&base, "doors"),
            [
                "meta nfproto ipv4 ip saddr @staged4 goto staged4",
                "meta nfproto ipv6 ip6 saddr @staged6 goto staged6",
                "goto fresh"
            ]
        );
        let staged = rules(&base, "staged4");
        assert_eq!(staged[0], "meta mark set 0x0");
        assert_eq!(staged[1], "ip saddr @abit4_0 meta mark set meta mark | 0x1");
        assert_eq!(
            staged[1 + usize::from(PORT_BITS)..],
            [
                "meta mark set meta mark . tcp dport map @pairs goto complete4",
                "tcp dport @starts counter name cancelled goto start4",
                "counter name cancelled delete @staged4 { ip saddr }",
                "goto wrong"
            ]
        );
        assert_eq!(
            rules(&base, "fresh"),
            [
                "tcp dport @starts meta nfproto ipv4 goto start4",
                "tcp dport @starts meta nfproto ipv6 goto start6",
                "goto wrong"
            ]
        );
        let start = rules(&base, "start6");
        assert_eq!(start.len(), 2 * usize::from(PORT_BITS) + 2);
        // No packet deletes an element and adds it back (the kernel would refuse the add).
        for bit in 0..PORT_BITS {
            let mask = 1u32 << bit;
            assert_eq!(
                start[2 * usize::from(bit)],
                format!("tcp dport & {mask:#x} != 0 update @abit6_{bit} {{ ip6 saddr }}")
            );
            assert_eq!(
                start[2 * usize::from(bit) + 1],
                format!("tcp dport & {mask:#x} == 0 delete @abit6_{bit} {{ ip6 saddr }}")
            );
        }
        assert_eq!(
            start[start.len() - 2],
            "update @staged6 { ip6 saddr } return"
        );
        assert_eq!(start[start.len() - 1], "counter name untracked drop");
        assert_eq!(
            rules(&base, "complete4"),
            [
                "meta mark . ip saddr @owners4 goto grant",
                "meta mark @used counter name refused goto clear4",
                "add @used { meta mark } add @owners4 { meta mark . ip saddr } goto grant",
                "counter name refused goto clear4"
            ]
        );
        assert_eq!(rules(&base, "grant")[0], "meta mark vmap @door_grant");
    }

    #[test]
    fn doors_skip_bad_duplicate_and_not_live_ones() {
        let p = params();
        let ds = [
            door(1, 1500, 1500), // A == B
            door(2, 2222, 1600), // protected port
            door(3, 999, 1600),  // out of range
            NftDoor {
                valid_until: 10,
                valid_from: 10,
                ..door(4, 1200, 1300)
            },
            door(5, 1200, 1300),
            door(5, 1400, 1500), // duplicate id
            NftDoor {
                slot: 2,
                ..door(5, 1200, 1300) // another holder's door with the same pair
            },
            door(9, 1700, 1800), // not live yet at 155
        ];
        let eff = effective_doors(&p, &ds);
        assert_eq!(eff, vec![door(5, 1200, 1300), door(9, 1700, 1800)]);
        // A shared pair goes to the older window's door, wherever it is listed.
        let newer = door(6, 1200, 1300);
        let older = door(5, 1200, 1300);
        assert_eq!(
            effective_doors(&p, &[newer.clone(), older.clone()]),
            std::slice::from_ref(&older)
        );
        assert_eq!(effective_doors(&p, &[older.clone(), newer]), [older]);
        let s = doors_transaction(&p, &ds, at(155));
        assert!(s.contains("pairs { 1200 . 1300 timeout 25000ms "), "{s}");
        for port in ["1500", "1600", "1400", "1700"] {
            assert!(!s.contains(port), "{port}: {s}");
        }
    }

    #[test]
    fn users_get_their_grant_length_counter_and_description() {
        let p = params();
        let alice = NftUser {
            name: "alice".into(),
            tag: "a1a1a1".into(),
            open_seconds: 60,
        };
        let d = NftDoor {
            user: Some(alice.clone()),
            slot: 2,
            ..door(10, 1111, 2345)
        };
        let s = doors_transaction(&p, &[d], at(305));
        assert!(s.contains("add counter inet knock_totp_web opened_a1a1a1"));
        assert!(s.contains(": goto grant_60 }"));
        assert!(s.contains(&format!(
            "add element inet knock_totp_web users {{ 2 comment \"{}\" }}",
            alice.comment()
        )));
        assert!(s.contains("add element inet knock_totp_web user_opened { 2 : \"opened_a1a1a1\" }"));
        assert_eq!(NftUser::parse_comment(&alice.comment()), Some(alice));
        assert_eq!(slot_of(door_id(10, 2)), 2);
        assert_ne!(door_id(10, 2), door_id(11, 2));
        assert_ne!(door_id(0, SERVER_SLOT), 0);
    }

    /// A door as the server makes it: from the window before its own to the one after.
    fn three_window_door(c: u64, a: u16, b: u16) -> NftDoor {
        NftDoor {
            valid_from: (c - 1) * 30,
            valid_until: (c + 2) * 30,
            ..door(c, a, b)
        }
    }

    /// Windows 10..=12's doors in the kernel at 331 s (window 11), as the engine records them.
    fn in_kernel_at_331() -> Vec<NftDoor> {
        let doors: Vec<NftDoor> = [(10, 1100, 2100), (11, 1200, 2200), (12, 1300, 2300)]
            .map(|(c, a, b)| three_window_door(c, a, b))
            .into();
        live_doors(&params(), &doors, at(331))
    }

    /// At a boundary the next window's door is added and nothing is deleted: the ended door's
    /// elements time out by themselves, at its end to the millisecond.
    #[test]
    fn a_boundary_adds_the_new_windows_door_alone() {
        let p = params();
        let next: Vec<NftDoor> = [(11, 1200, 2200), (12, 1300, 2300), (13, 1400, 2400)]
            .map(|(c, a, b)| three_window_door(c, a, b))
            .into();
        let now = Duration::from_millis(360_004);
        let tx = added_doors_transaction(&p, &in_kernel_at_331(), &next, now).expect("add-only");
        for word in [
            "flush",
            "delete",
            "add rule",
            "add chain",
            "1200",
            "1300",
            "1100",
        ] {
            assert!(!tx.contains(word), "{word}: {tx}");
        }
        let door13 = three_window_door(13, 1400, 2400);
        assert_eq!(
            tx,
            format!(
                "add element inet knock_totp_web starts {{ 1400 timeout 89996ms }}\n\
                 add element inet knock_totp_web pairs {{ 1400 . 2400 timeout 89996ms : {id} }}\n\
                 add element inet knock_totp_web door_grant {{ {id} timeout 89996ms comment \"{}\" : goto grant_30 }}\n\
                 add element inet knock_totp_web state {{ 13 timeout 89996ms }}\n",
                door13.comment(),
                id = door13.id(),
            )
        );
        // The same doors again (a repeated boundary): nothing to add.
        let again = live_doors(&p, &next, now);
        let tx = added_doors_transaction(&p, &again, &next, now).expect("add-only");
        assert!(tx.is_empty(), "{tx}");
    }

    /// Whatever adding alone cannot make exact is left to the full rotation transaction.
    #[test]
    fn adding_alone_refuses_what_needs_a_deletion_of_a_door() {
        let p = params();
        let kernel = in_kernel_at_331();
        let next = |last: NftDoor| {
            vec![
                three_window_door(11, 1200, 2200),
                three_window_door(12, 1300, 2300),
                last,
            ]
        };
        let now = at(361);
        let ok = next(three_window_door(13, 1400, 2400));
        assert!(added_doors_transaction(&p, &kernel, &ok, now).is_some());
        // Window 12's door is gone (its user was revoked): it must be deleted.
        let revoked = [
            three_window_door(11, 1200, 2200),
            three_window_door(13, 1400, 2400),
        ];
        assert_eq!(added_doors_transaction(&p, &kernel, &revoked, now), None);
        // A user the kernel does not have yet, and a grant length without its chain.
        let alice = NftUser {
            name: "alice".into(),
            tag: "a1a1a1".into(),
            open_seconds: 60,
        };
        let new_user = next(NftDoor {
            user: Some(alice),
            slot: 2,
            ..three_window_door(13, 1400, 2400)
        });
        assert_eq!(added_doors_transaction(&p, &kernel, &new_user, now), None);
        // A user whose doors ended at their expiry, with no door now: their users-map
        // elements (which hold their counter) go with a refill.
        let expired = NftDoor {
            slot: 2,
            valid_until: 360,
            ..three_window_door(12, 1700, 2700)
        };
        let kernel_with_expired: Vec<NftDoor> = kernel.iter().cloned().chain([expired]).collect();
        assert_eq!(
            added_doors_transaction(&p, &kernel_with_expired, &ok, now),
            None
        );
        // The clock went back a window: the kernel holds a door not live any more.
        assert_eq!(added_doors_transaction(&p, &kernel, &ok, at(299)), None);
    }

    /// A new door whose A port is live: that start is deleted and added again with the new
    /// door's end (an add alone would keep the old end on older kernels); a start the new door
    /// does not outlive keeps the end of its last door.
    #[test]
    fn a_new_door_on_a_live_start_makes_that_start_live_until_its_end() {
        let p = params();
        let now = Duration::from_millis(360_004);
        let shares_a = |a: u16| {
            vec![
                three_window_door(11, 1200, 2200),
                three_window_door(12, 1300, 2300),
                three_window_door(13, a, 2400),
            ]
        };
        let tx = added_doors_transaction(&p, &in_kernel_at_331(), &shares_a(1300), now)
            .expect("add and grow the start");
        let lines: Vec<&str> = tx.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "add element inet knock_totp_web starts { 1300 }",
                "delete element inet knock_totp_web starts { 1300 }",
                "add element inet knock_totp_web starts { 1300 timeout 89996ms }",
            ],
            "{tx}"
        );
        assert!(!tx.contains("1200") && !tx.contains("flush"), "{tx}");

        // The new door has the pair of window 10's door, which ended at 360 s: its pair and
        // start may still be in the kernel (by the ms of the load that put them there), so
        // both are replaced.
        let ended_pair = shares_a(1100)
            .into_iter()
            .map(|d| NftDoor {
                ports: if d.counter == 13 {
                    [1100, 2100]
                } else {
                    d.ports
                },
                ..d
            })
            .collect::<Vec<_>>();
        let tx = added_doors_transaction(&p, &in_kernel_at_331(), &ended_pair, now)
            .expect("replace the ended door's elements");
        let id10 = three_window_door(10, 1100, 2100).id();
        let lines: Vec<&str> = tx.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "add element inet knock_totp_web starts { 1100 }",
                "delete element inet knock_totp_web starts { 1100 }",
                &format!("add element inet knock_totp_web pairs {{ 1100 . 2100 : {id10} }}"),
                "delete element inet knock_totp_web pairs { 1100 . 2100 }",
                "add element inet knock_totp_web starts { 1100 timeout 89996ms }",
            ],
            "{tx}"
        );

        // Another holder's new door with a live door's pair is that door, even listed first
        // (holders come in config order): nothing to add for it.
        let shared_pair = vec![
            NftDoor {
                slot: 2,
                ..three_window_door(13, 1200, 2200)
            },
            three_window_door(11, 1200, 2200),
            three_window_door(12, 1300, 2300),
            three_window_door(13, 1400, 2400),
        ];
        let tx =
            added_doors_transaction(&p, &in_kernel_at_331(), &shared_pair, now).expect("add-only");
        assert!(!tx.contains("1200") && !tx.contains("delete"), "{tx}");
        assert!(tx.contains("1400 . 2400"), "{tx}");

        // An older door on the live start 1300 (window 12's, made to end at 480 s) outlives
        // the new one (ending at 450 s): the start keeps 480 s and nothing is deleted.
        let mut kernel = in_kernel_at_331();
        kernel[2].valid_until = 480;
        let mut next = shares_a(1300);
        next[1].valid_until = 480;
        let kernel = live_doors(&p, &kernel, at(331));
        let tx = added_doors_transaction(&p, &kernel, &next, now).expect("add-only");
        assert!(!tx.contains("delete"), "{tx}");
        assert!(
            tx.starts_with("add element inet knock_totp_web starts { 1300 timeout 119996ms }\n"),
            "{tx}"
        );
    }

    #[test]
    fn remove_doors_keeps_table() {
        let s = remove_doors_transaction(&params());
        assert!(!s.contains("delete table") && !s.contains("allowed"));
        assert!(s.contains("flush map inet knock_totp_web pairs"));
        assert!(s.contains("flush set inet knock_totp_web starts"));
        assert!(s.contains("flush set inet knock_totp_web state\n"));
    }

    #[test]
    fn comment_roundtrip() {
        let d = NftDoor {
            counter: 58_000_123,
            ports: [1234, 9876],
            valid_from: 1_740_000_000,
            valid_until: 1_740_000_030,
            user: None,
            slot: MAX_SLOT,
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
