//! Parses `nft -j list table inet NAME` (nft 1.0.6 JSON schema 1) into the
//! engine status: doors (read from rule comments, not from the `meta time`
//! strings, which nft prints in the local time zone of the nft process),
//! their owners and staged sources, allowed and banned sources with seconds
//! left, and the named counters.
//!
//! Also accepts the output of `nft -j list counters table inet NAME` (then only
//! `counters` is filled).

use super::ruleset::{
    grants_set, opened_counter, owner_set, parse_level_set, stage_set, DoorKey, Family, NftDoor,
    NftUser, ATTACK_SET, COUNTER_ATTACKED, COUNTER_BANNED, COUNTER_BANS, COUNTER_CANCELLED,
    COUNTER_DENIED, COUNTER_KNOCKS, COUNTER_LIMITED, COUNTER_OPENED, COUNTER_REFUSED,
    COUNTER_UNTRACKED, STATE_SET,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedSource {
    pub addr: IpAddr,
    /// 32/128 for single addresses; 64 for IPv6 bans (keys are /64 prefixes).
    pub prefix_len: u8,
    /// `None` for elements without timeout.
    pub seconds_left: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorStatus {
    pub door: NftDoor,
    /// Source that completed the door first (single use), if any.
    pub owner: Option<IpAddr>,
    /// Sources that knocked A and are waiting for B.
    pub staged: Vec<TimedSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub knocks: u64,
    pub opened: u64,
    /// Completions refused because another source owns the door (replays).
    pub refused: u64,
    pub cancelled: u64,
    pub bans: u64,
    /// SYNs to the protected port dropped.
    pub denied: u64,
    /// Knocks dropped because their source or its network was banned.
    pub banned: u64,
    /// Untrusted knocks dropped while the server was under attack.
    pub attacked: u64,
    /// Knocks dropped because a full set could not track their source.
    pub untracked: u64,
    /// Trusted sources' knocks dropped over the rate.
    pub limited: u64,
}

/// One user of a server with users, as the kernel holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    pub user: NftUser,
    /// The addresses the user's doors let in now.
    pub grants: Vec<TimedSource>,
    /// Doors the user opened (since the user's counter was made).
    pub opened: u64,
}

impl UserStatus {
    /// Seconds since the user's latest live grant began (a grant lasts `open_seconds`).
    pub fn last_opened_ago(&self) -> Option<u64> {
        self.grants
            .iter()
            .filter_map(|g| g.seconds_left)
            .max()
            .map(|left| self.user.open_seconds.saturating_sub(left))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftStatus {
    /// The users whose doors are in the table (none on a single-secret server).
    pub users: Vec<UserStatus>,
    /// Sorted by counter.
    pub doors: Vec<DoorStatus>,
    pub allowed: Vec<TimedSource>,
    /// Banned sources and networks (`prefix_len` says which).
    pub banned: Vec<TimedSource>,
    /// Sources that opened a door recently (never banned, through while under attack).
    pub trusted: Vec<TimedSource>,
    /// `Some(seconds left)` while the server is under attack.
    pub attack_seconds_left: Option<u64>,
    pub counters: Counters,
    /// The settings the base table was made with (its `knock-totp base` comment).
    pub base_settings: Option<String>,
    /// The windows whose doors the daemon last put in place (the `state` set's elements;
    /// empty in the bare base table and after the daemon removed its doors).
    pub windows: Vec<u64>,
}

impl NftStatus {
    /// Doors whose time interval contains `now` (unix seconds).
    pub fn active_doors(&self, now: u64) -> impl Iterator<Item = &DoorStatus> {
        self.doors
            .iter()
            .filter(move |d| d.door.valid_from <= now && now < d.door.valid_until)
    }
    /// Counters of all installed doors (the `previous` argument of the
    /// renderer's transactions, e.g. after a daemon restart).
    pub fn installed_counters(&self) -> Vec<u64> {
        self.doors.iter().map(|d| d.door.counter).collect()
    }
}

pub fn parse_status(json: &str) -> Result<NftStatus, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft JSON: {e}"))?;
    parse_status_value(&v)
}

pub fn parse_status_value(v: &Value) -> Result<NftStatus, String> {
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft JSON: missing \"nftables\" array")?;
    let mut st = NftStatus::default();
    let mut doors: BTreeMap<DoorKey, NftDoor> = BTreeMap::new();
    let mut sets: BTreeMap<String, Vec<TimedSource>> = BTreeMap::new();
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    for item in items {
        if let Some(c) = item.get("counter") {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let packets = c.get("packets").and_then(Value::as_u64).unwrap_or(0);
            counters.insert(name.to_owned(), packets);
            let slot = match name {
                COUNTER_KNOCKS => &mut st.counters.knocks,
                COUNTER_OPENED => &mut st.counters.opened,
                COUNTER_REFUSED => &mut st.counters.refused,
                COUNTER_CANCELLED => &mut st.counters.cancelled,
                COUNTER_BANS => &mut st.counters.bans,
                COUNTER_DENIED => &mut st.counters.denied,
                COUNTER_BANNED => &mut st.counters.banned,
                COUNTER_ATTACKED => &mut st.counters.attacked,
                COUNTER_UNTRACKED => &mut st.counters.untracked,
                COUNTER_LIMITED => &mut st.counters.limited,
                _ => continue,
            };
            *slot = packets;
        } else if let Some(s) = item.get("set") {
            let Some(name) = s.get("name").and_then(Value::as_str) else {
                continue;
            };
            if name == STATE_SET {
                st.base_settings = s.get("comment").and_then(Value::as_str).map(str::to_owned);
                st.windows = s
                    .get("elem")
                    .and_then(Value::as_array)
                    .map(|elems| elems.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                continue;
            }
            if name == ATTACK_SET {
                st.attack_seconds_left = s
                    .get("elem")
                    .and_then(Value::as_array)
                    .and_then(|elems| elems.first())
                    .map(|e| {
                        e.get("elem")
                            .and_then(|e| e.get("expires"))
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    });
                continue;
            }
            let elems = match s.get("elem").and_then(Value::as_array) {
                Some(a) => a.iter().filter_map(parse_elem).collect(),
                None => Vec::new(),
            };
            sets.insert(name.to_string(), elems);
        } else if let Some(r) = item.get("rule") {
            let comment = r.get("comment").and_then(Value::as_str).unwrap_or("");
            if let Some(d) = NftDoor::parse_comment(comment) {
                doors.entry(d.key()).or_insert(d);
            }
        }
    }
    let take =
        |sets: &mut BTreeMap<String, Vec<TimedSource>>, n: &str| sets.remove(n).unwrap_or_default();
    st.allowed = take(&mut sets, "allowed4");
    st.allowed.extend(take(&mut sets, "allowed6"));
    let levels: Vec<(String, u8)> = sets
        .keys()
        .filter_map(|name| match parse_level_set(name) {
            Some(("banned", _, len)) => Some((name.clone(), len)),
            _ => None,
        })
        .collect();
    for (name, len) in levels {
        st.banned
            .extend(take(&mut sets, &name).into_iter().map(|mut s| {
                s.prefix_len = len;
                s
            }));
    }
    st.trusted = take(&mut sets, "trusted4");
    st.trusted.extend(take(&mut sets, "trusted6"));
    let mut users: BTreeMap<String, NftUser> = BTreeMap::new();
    for (key, door) in doors {
        if let Some(user) = &door.user {
            users
                .entry(user.tag.clone())
                .or_insert_with(|| user.clone());
        }
        let mut staged = take(&mut sets, &stage_set(&key, 4));
        staged.extend(take(&mut sets, &stage_set(&key, 6)));
        let owner = take(&mut sets, &owner_set(&key, 4))
            .into_iter()
            .chain(take(&mut sets, &owner_set(&key, 6)))
            .map(|s| s.addr)
            .next();
        st.doors.push(DoorStatus {
            door,
            owner,
            staged,
        });
    }
    st.doors
        .sort_by_key(|d| (d.door.counter, d.door.user.clone()));
    for (tag, user) in users {
        let mut grants = Vec::new();
        for family in Family::BOTH {
            grants.extend(take(&mut sets, &grants_set(&tag, family)));
        }
        st.users.push(UserStatus {
            opened: counters.get(&opened_counter(&tag)).copied().unwrap_or(0),
            user,
            grants,
        });
    }
    st.users.sort_by(|a, b| a.user.name.cmp(&b.user.name));
    Ok(st)
}

/// What `nft -j list set` shows of one set: its comment and its elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetListing {
    pub comment: Option<String>,
    /// Numeric elements (the `state` set's windows).
    pub numbers: Vec<u64>,
    /// How many elements it holds.
    pub len: usize,
}

impl SetListing {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The first set of a `nft -j list set` answer.
pub fn set_elements(value: &Value) -> SetListing {
    let set = value
        .get("nftables")
        .and_then(Value::as_array)
        .and_then(|items| items.iter().find_map(|item| item.get("set")));
    let Some(set) = set else {
        return SetListing::default();
    };
    let elems = set
        .get("elem")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    SetListing {
        comment: set
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        numbers: elems.iter().filter_map(Value::as_u64).collect(),
        len: elems.len(),
    }
}

/// The address elements of the first set of a `nft -j list set` answer.
pub fn set_sources(value: &Value) -> Vec<TimedSource> {
    value
        .get("nftables")
        .and_then(Value::as_array)
        .and_then(|items| items.iter().find_map(|item| item.get("set")))
        .and_then(|set| set.get("elem"))
        .and_then(Value::as_array)
        .map(|elems| elems.iter().filter_map(parse_elem).collect())
        .unwrap_or_default()
}

/// Every named counter of a `nft -j list counters` (or `list table`) answer: name, packets.
pub fn named_counters(value: &Value) -> BTreeMap<String, u64> {
    value
        .get("nftables")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("counter"))
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_owned(),
                        c.get("packets").and_then(Value::as_u64).unwrap_or(0),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `"10.0.0.1"` or `{"elem": {"val": "10.0.0.1", "expires": 25, "timeout": 30}}`.
pub(super) fn parse_elem(e: &Value) -> Option<TimedSource> {
    let (val, expires) = match e {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => {
            let inner = o.get("elem")?;
            (
                inner.get("val")?.as_str()?,
                inner.get("expires").and_then(Value::as_u64),
            )
        }
        _ => return None,
    };
    let addr: IpAddr = val.parse().ok()?;
    let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
    Some(TimedSource {
        addr,
        prefix_len,
        seconds_left: expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured by lab.sh (`nft -j list table inet knock_totp_lab`, kernel
    /// 6.18, nft 1.0.6): doors 900 (10.213.0.35 staged), 901 (owned by
    /// 10.213.0.33), 902 (owned by fd13:213:0:4::10); 10.213.0.34 and
    /// fd13:213:0:5::/64 banned.
    const SAMPLE: &str = r#"{"nftables": [
{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},
{"table":{"family":"inet","name":"knock_totp_lab","handle":5}},
{"counter":{"family":"inet","name":"knocks","table":"knock_totp_lab","handle":8,"packets":87,"bytes":6080}},
{"counter":{"family":"inet","name":"opened","table":"knock_totp_lab","handle":9,"packets":2,"bytes":140}},
{"counter":{"family":"inet","name":"refused","table":"knock_totp_lab","handle":10,"packets":0,"bytes":0}},
{"counter":{"family":"inet","name":"cancelled","table":"knock_totp_lab","handle":11,"packets":0,"bytes":0}},
{"counter":{"family":"inet","name":"bans","table":"knock_totp_lab","handle":12,"packets":2,"bytes":140}},
{"counter":{"family":"inet","name":"denied","table":"knock_totp_lab","handle":13,"packets":0,"bytes":0}},
{"set":{"family":"inet","name":"allowed4","table":"knock_totp_lab","type":"ipv4_addr","handle":14,"size":65535,"flags":["timeout"],"timeout":30,"elem":[{"elem":{"val":"10.213.0.33","expires":29}}]}},
{"set":{"family":"inet","name":"allowed6","table":"knock_totp_lab","type":"ipv6_addr","handle":15,"size":65535,"flags":["timeout"],"timeout":30,"elem":[{"elem":{"val":"fd13:213:0:4::10","expires":29}}]}},
{"set":{"family":"inet","name":"banned_4_32","table":"knock_totp_lab","type":"ipv4_addr","handle":16,"size":65535,"flags":["timeout"],"timeout":3600,"elem":[{"elem":{"val":"10.213.0.34","expires":3599}}]}},
{"set":{"family":"inet","name":"banned_6_64","table":"knock_totp_lab","type":"ipv6_addr","handle":17,"size":65535,"flags":["timeout"],"timeout":3600,"elem":[{"elem":{"val":"fd13:213:0:5::","expires":3599}}]}},
{"set":{"family":"inet","name":"rate4","table":"knock_totp_lab","type":"ipv4_addr","handle":18,"size":65535,"flags":["timeout"],"timeout":100,"elem":[{"elem":{"val":"10.213.0.33","expires":99,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}},{"elem":{"val":"10.213.0.34","expires":99,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}},{"elem":{"val":"10.213.0.35","expires":99,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}}]}},
{"set":{"family":"inet","name":"rate6","table":"knock_totp_lab","type":"ipv6_addr","handle":19,"size":65535,"flags":["timeout"],"timeout":100,"elem":[{"elem":{"val":"fd13:213:0:4::","expires":99,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}},{"elem":{"val":"fd13:213:0:5::","expires":99,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}}]}},
{"set":{"family":"inet","name":"stage_900_4","table":"knock_totp_lab","type":"ipv4_addr","handle":33,"size":65535,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"10.213.0.35","expires":9}}]}},
{"set":{"family":"inet","name":"stage_900_6","table":"knock_totp_lab","type":"ipv6_addr","handle":34,"size":65535,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"owner_900_f","table":"knock_totp_lab","type":"nf_proto","handle":35,"size":1}},
{"set":{"family":"inet","name":"owner_900_4","table":"knock_totp_lab","type":"ipv4_addr","handle":36,"size":1}},
{"set":{"family":"inet","name":"owner_900_6","table":"knock_totp_lab","type":"ipv6_addr","handle":37,"size":1}},
{"set":{"family":"inet","name":"stage_901_4","table":"knock_totp_lab","type":"ipv4_addr","handle":38,"size":65535,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"stage_901_6","table":"knock_totp_lab","type":"ipv6_addr","handle":39,"size":65535,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"owner_901_f","table":"knock_totp_lab","type":"nf_proto","handle":40,"size":1,"elem":["ipv4"]}},
{"set":{"family":"inet","name":"owner_901_4","table":"knock_totp_lab","type":"ipv4_addr","handle":41,"size":1,"elem":["10.213.0.33"]}},
{"set":{"family":"inet","name":"owner_901_6","table":"knock_totp_lab","type":"ipv6_addr","handle":42,"size":1}},
{"set":{"family":"inet","name":"stage_902_4","table":"knock_totp_lab","type":"ipv4_addr","handle":43,"size":65535,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"stage_902_6","table":"knock_totp_lab","type":"ipv6_addr","handle":44,"size":65535,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"owner_902_f","table":"knock_totp_lab","type":"nf_proto","handle":45,"size":1,"elem":["ipv6"]}},
{"set":{"family":"inet","name":"owner_902_4","table":"knock_totp_lab","type":"ipv4_addr","handle":46,"size":1}},
{"set":{"family":"inet","name":"owner_902_6","table":"knock_totp_lab","type":"ipv6_addr","handle":47,"size":1,"elem":["fd13:213:0:4::10"]}},
{"set":{"family":"inet","name":"banned_4_16","table":"knock_totp_lab","type":"ipv4_addr","handle":80,"size":65536,"flags":["timeout"],"timeout":3600,"elem":[{"elem":{"val":"10.9.0.0","expires":3000}}]}},
{"set":{"family":"inet","name":"trusted4","table":"knock_totp_lab","type":"ipv4_addr","handle":81,"size":65536,"flags":["timeout"],"timeout":604800,"elem":[{"elem":{"val":"10.213.0.33","expires":604790}}]}},
{"set":{"family":"inet","name":"state","table":"knock_totp_lab","type":"mark","handle":82,"comment":"knock-totp base v3 port=2222 open=30 seq=10 #abcdef","size":16,"elem":[900,901,902]}},
{"set":{"family":"inet","name":"attack","table":"knock_totp_lab","type":"inet_proto","handle":83,"size":1,"flags":["timeout"],"timeout":300,"elem":[{"elem":{"val":"tcp","expires":120}}]}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"input","handle":1,"type":"filter","hook":"input","prio":-10,"policy":"accept"}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"knock","handle":2}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"doors","handle":3}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"cancel4","handle":4}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"cancel6","handle":5}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"clear4","handle":6}},
{"chain":{"family":"inet","table":"knock_totp_lab","name":"clear6","handle":7}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"input","handle":20,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2222}},{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"input","handle":21,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2222}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@allowed4"}},{"accept":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"input","handle":22,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2222}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@allowed6"}},{"accept":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"input","handle":23,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2222}},{"counter":"denied"},{"drop":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"input","handle":24,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[1000,9999]}}},{"match":{"op":"==","left":{"&":[{"payload":{"protocol":"tcp","field":"flags"}},["syn","ack"]]},"right":"syn"}},{"jump":{"target":"knock"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":25,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@banned4"}},{"drop":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":26,"expr":[{"match":{"op":"==","left":{"&":[{"payload":{"protocol":"ip6","field":"saddr"}},"ffff:ffff:ffff:ffff::"]},"right":"@banned6"}},{"drop":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":27,"expr":[{"counter":"knocks"}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":28,"expr":[{"set":{"op":"update","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@rate4","stmt":[{"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}]}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@banned4"}},{"counter":"bans"},{"drop":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":29,"expr":[{"set":{"op":"update","elem":{"&":[{"payload":{"protocol":"ip6","field":"saddr"}},"ffff:ffff:ffff:ffff::"]},"set":"@rate6","stmt":[{"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}]}},{"set":{"op":"add","elem":{"&":[{"payload":{"protocol":"ip6","field":"saddr"}},"ffff:ffff:ffff:ffff::"]},"set":"@banned6"}},{"counter":"bans"},{"drop":null}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"knock","handle":30,"expr":[{"jump":{"target":"doors"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":48,"comment":"knock-totp door c=900 a=2109 b=7834 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":7834}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_900_4"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_900_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@owner_900_4"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":30}},"set":"@allowed4"}},{"counter":"opened"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":49,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":7834}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_900_4"}},{"counter":"refused"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":50,"comment":"knock-totp door c=900 a=2109 b=7834 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":7834}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_900_6"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_900_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@owner_900_6"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":30}},"set":"@allowed6"}},{"counter":"opened"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":51,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":7834}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_900_6"}},{"counter":"refused"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":52,"comment":"knock-totp door c=901 a=3188 b=5134 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":5134}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_901_4"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_901_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@owner_901_4"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":30}},"set":"@allowed4"}},{"counter":"opened"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":53,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":5134}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_901_4"}},{"counter":"refused"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":54,"comment":"knock-totp door c=901 a=3188 b=5134 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":5134}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_901_6"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_901_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@owner_901_6"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":30}},"set":"@allowed6"}},{"counter":"opened"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":55,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":5134}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_901_6"}},{"counter":"refused"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":56,"comment":"knock-totp door c=902 a=2270 b=3148 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3148}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_902_4"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_902_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@owner_902_4"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":30}},"set":"@allowed4"}},{"counter":"opened"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":57,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3148}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_902_4"}},{"counter":"refused"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":58,"comment":"knock-totp door c=902 a=2270 b=3148 from=1795663547 until=1795667207","expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3148}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_902_6"}},{"set":{"op":"add","elem":{"meta":{"key":"nfproto"}},"set":"@owner_902_f"}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@owner_902_6"}},{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":30}},"set":"@allowed6"}},{"counter":"opened"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":59,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3148}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_902_6"}},{"counter":"refused"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":60,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_900_4"}},{"jump":{"target":"cancel4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":61,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_900_6"}},{"jump":{"target":"cancel6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":62,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_901_4"}},{"jump":{"target":"cancel4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":63,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_901_6"}},{"jump":{"target":"cancel6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":64,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@stage_902_4"}},{"jump":{"target":"cancel4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":65,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"@stage_902_6"}},{"jump":{"target":"cancel6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":66,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2109}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_900_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":67,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2109}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_900_6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":68,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3188}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_901_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":69,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":3188}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_901_6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":70,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2270}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_902_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"doors","handle":71,"expr":[{"match":{"op":">=","left":{"meta":{"key":"time"}},"right":"2026-11-26 03:25:47"}},{"match":{"op":"<","left":{"meta":{"key":"time"}},"right":"2026-11-26 04:26:47"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":2270}},{"set":{"op":"add","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_902_6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"cancel4","handle":31,"expr":[{"counter":"cancelled"},{"goto":{"target":"clear4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"cancel6","handle":32,"expr":[{"counter":"cancelled"},{"goto":{"target":"clear6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear4","handle":72,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_900_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear4","handle":74,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_901_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear4","handle":76,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@stage_902_4"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear6","handle":73,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_900_6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear6","handle":75,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_901_6"}}]}},
{"rule":{"family":"inet","table":"knock_totp_lab","chain":"clear6","handle":77,"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip6","field":"saddr"}},"set":"@stage_902_6"}}]}}
]}"#;

    #[test]
    fn parses_captured_sample() {
        let st = parse_status(SAMPLE).unwrap();
        let counters: Vec<u64> = st.doors.iter().map(|d| d.door.counter).collect();
        assert_eq!(counters, vec![900, 901, 902]);
        assert!(st.doors.iter().all(|d| d.door.ports[0] != d.door.ports[1]));
        let d900 = &st.doors[0];
        assert_eq!(d900.owner, None);
        assert_eq!(d900.staged.len(), 1);
        assert_eq!(
            d900.staged[0].addr,
            "10.213.0.35".parse::<IpAddr>().unwrap()
        );
        assert!(d900.staged[0].seconds_left.unwrap() <= 10);
        assert_eq!(st.doors[1].owner, Some("10.213.0.33".parse().unwrap()));
        assert_eq!(st.doors[2].owner, Some("fd13:213:0:4::10".parse().unwrap()));
        let allowed: Vec<String> = st.allowed.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(allowed, vec!["10.213.0.33", "fd13:213:0:4::10"]);
        assert!(st.allowed.iter().all(|s| s.seconds_left.unwrap() <= 30));
        let banned: Vec<(String, u8)> = st
            .banned
            .iter()
            .map(|s| (s.addr.to_string(), s.prefix_len))
            .collect();
        assert_eq!(
            banned,
            vec![
                ("10.9.0.0".into(), 16),
                ("10.213.0.34".into(), 32),
                ("fd13:213:0:5::".into(), 64)
            ]
        );
        assert_eq!(st.trusted.len(), 1);
        assert_eq!(st.attack_seconds_left, Some(120));
        assert!(st.base_settings.as_deref().unwrap().ends_with("#abcdef"));
        assert_eq!(st.windows, [900, 901, 902]);
        assert!(st
            .banned
            .iter()
            .all(|s| s.seconds_left.unwrap() <= 3600 && s.seconds_left.unwrap() >= 3000));
        assert_eq!(st.counters.opened, 2);
        assert_eq!(st.counters.bans, 2);
        assert!(st.counters.knocks >= 2 * 41 + 5);
        assert_eq!(st.counters.cancelled, 0);
        let d = &st.doors[1].door;
        assert_eq!(st.active_doors(d.valid_from).count(), 3);
        assert_eq!(st.installed_counters(), vec![900, 901, 902]);
    }

    #[test]
    fn parses_counters_listing_and_minimal_shapes() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "knocks", "table": "t", "handle": 1, "packets": 7, "bytes": 420}},
            {"counter": {"family": "inet", "name": "bans", "table": "t", "handle": 2, "packets": 1, "bytes": 60}},
            {"set": {"family": "inet", "name": "allowed4", "table": "t", "type": "ipv4_addr", "handle": 3, "size": 65535, "flags": ["timeout", "dynamic"], "timeout": 30}},
            {"set": {"family": "inet", "name": "banned_4_32", "table": "t", "type": "ipv4_addr", "handle": 4, "flags": ["timeout", "dynamic"], "elem": [{"elem": {"val": "192.0.2.1", "timeout": 60, "expires": 59}}, "192.0.2.9"]}}]}"#;
        let st = parse_status(j).unwrap();
        assert_eq!(
            st.counters,
            Counters {
                knocks: 7,
                bans: 1,
                ..Counters::default()
            }
        );
        assert!(st.allowed.is_empty() && st.doors.is_empty());
        assert_eq!(st.banned.len(), 2);
        assert_eq!(st.banned[0].seconds_left, Some(59));
        assert_eq!(st.banned[1].seconds_left, None);
    }

    #[test]
    fn a_set_listing_gives_its_comment_and_numbers() {
        let listing: Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "state", "table": "T", "type": "mark", "handle": 1, "comment": "knock-totp base v3 #abc", "size": 16, "elem": [58000431, 58000432]}}]}"#,
        )
        .unwrap();
        let set = set_elements(&listing);
        assert_eq!(set.comment.as_deref(), Some("knock-totp base v3 #abc"));
        assert_eq!(set.numbers, [58_000_431, 58_000_432]);
        assert!(!set.is_empty());
        assert!(set_elements(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_status("not json").is_err());
        assert!(parse_status("{}").is_err());
    }
}
