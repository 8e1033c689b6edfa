//! Parses `nft -j list table inet NAME` (nft 1.0.6 JSON schema 1) into the
//! engine status: doors (read from rule comments, not from the `meta time`
//! strings, which nft prints in the local time zone of the nft process),
//! their owners and staged sources, allowed and banned sources with seconds
//! left, and the named counters.
//!
//! Also accepts the output of `nft -j list counters table inet NAME` (then only
//! `counters` is filled).

use super::ruleset::{
    grants_set, opened_counter, owners_set, parse_level_set, slot_of, staged_set, Family, NftDoor,
    NftUser, ATTACK_SET, COUNTER_ATTACKED, COUNTER_BANNED, COUNTER_BANS, COUNTER_CANCELLED,
    COUNTER_DENIED, COUNTER_KNOCKS, COUNTER_LIMITED, COUNTER_OPENED, COUNTER_REFUSED,
    COUNTER_UNTRACKED, DOOR_MAP, STATE_SET, USERS_SET,
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

impl Counters {
    /// The counters among a table's named counters (as [`named_counters`] reads them); a
    /// missing one is 0.
    pub fn from_named(named: &BTreeMap<String, u64>) -> Self {
        let get = |name: &str| named.get(name).copied().unwrap_or(0);
        Self {
            knocks: get(COUNTER_KNOCKS),
            opened: get(COUNTER_OPENED),
            refused: get(COUNTER_REFUSED),
            cancelled: get(COUNTER_CANCELLED),
            bans: get(COUNTER_BANS),
            denied: get(COUNTER_DENIED),
            banned: get(COUNTER_BANNED),
            attacked: get(COUNTER_ATTACKED),
            untracked: get(COUNTER_UNTRACKED),
            limited: get(COUNTER_LIMITED),
        }
    }
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
    /// Sources that knocked a live door's A and may knock its B.
    pub staged: Vec<TimedSource>,
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
    let mut doors: Vec<NftDoor> = Vec::new();
    let mut described: BTreeMap<u16, NftUser> = BTreeMap::new();
    let mut keyed: BTreeMap<String, Vec<(u32, TimedSource)>> = BTreeMap::new();
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
                    .map(|elems| elems.iter().filter_map(number_elem).collect())
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
            let elems = s.get("elem").and_then(Value::as_array);
            if name == USERS_SET {
                for e in elems.into_iter().flatten() {
                    let Some(inner) = e.get("elem") else { continue };
                    let slot = inner.get("val").and_then(Value::as_u64);
                    let user = inner
                        .get("comment")
                        .and_then(Value::as_str)
                        .and_then(NftUser::parse_comment);
                    if let (Some(slot), Some(user)) = (slot, user) {
                        described.insert(slot as u16, user);
                    }
                }
                continue;
            }
            if s.get("type").is_some_and(Value::is_array) {
                let elems = elems.into_iter().flatten().filter_map(parse_keyed_elem);
                keyed.insert(name.to_string(), elems.collect());
                continue;
            }
            let elems = match elems {
                Some(a) => a.iter().filter_map(parse_elem).collect(),
                None => Vec::new(),
            };
            sets.insert(name.to_string(), elems);
        } else if let Some(m) = item.get("map") {
            if m.get("name").and_then(Value::as_str) != Some(DOOR_MAP) {
                continue;
            }
            for e in m
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let comment = e
                    .get(0)
                    .and_then(|k| k.get("elem"))
                    .and_then(|k| k.get("comment"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                doors.extend(NftDoor::parse_comment(comment));
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
    for family in Family::BOTH {
        st.staged.extend(take(&mut sets, &staged_set(family)));
    }
    let mut owners = Vec::new();
    let mut grants = Vec::new();
    for family in Family::BOTH {
        owners.extend(keyed.remove(&owners_set(family)).unwrap_or_default());
        grants.extend(keyed.remove(&grants_set(family)).unwrap_or_default());
    }
    for mut door in doors {
        door.user = described.get(&door.slot).cloned();
        let id = door.id();
        let owner = owners
            .iter()
            .find(|(owner_id, _)| *owner_id == id)
            .map(|(_, s)| s.addr);
        st.doors.push(DoorStatus { door, owner });
    }
    st.doors
        .sort_by_key(|d| (d.door.counter, d.door.user.clone()));
    for (slot, user) in described {
        st.users.push(UserStatus {
            opened: counters
                .get(&opened_counter(&user.tag))
                .copied()
                .unwrap_or(0),
            grants: grants
                .iter()
                .filter(|(id, _)| slot_of(*id) == slot)
                .map(|(_, g)| g.clone())
                .collect(),
            user,
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
        numbers: elems.iter().filter_map(number_elem).collect(),
        len: elems.len(),
    }
}

/// A numeric element: `7` or, with a timeout, `{"elem": {"val": 7, "timeout": 90, ...}}`.
fn number_elem(e: &Value) -> Option<u64> {
    e.as_u64().or_else(|| e.get("elem")?.get("val")?.as_u64())
}

/// The (door id . address) elements of the first set of a `nft -j list set` answer.
pub fn keyed_sources(value: &Value) -> Vec<(u32, TimedSource)> {
    value
        .get("nftables")
        .and_then(Value::as_array)
        .and_then(|items| items.iter().find_map(|item| item.get("set")))
        .and_then(|set| set.get("elem"))
        .and_then(Value::as_array)
        .map(|elems| elems.iter().filter_map(parse_keyed_elem).collect())
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

/// `{"concat": [17, "10.0.0.1"]}`, or that as the `val` of an element with a timeout: a
/// door id and an address.
fn parse_keyed_elem(e: &Value) -> Option<(u32, TimedSource)> {
    let (concat, expires) = match e.get("elem") {
        Some(inner) => (
            inner.get("val")?.get("concat")?,
            inner.get("expires").and_then(Value::as_u64),
        ),
        None => (e.get("concat")?, None),
    };
    let id = u32::try_from(concat.get(0)?.as_u64()?).ok()?;
    let addr: IpAddr = concat.get(1)?.as_str()?.parse().ok()?;
    let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
    Some((
        id,
        TimedSource {
            addr,
            prefix_len,
            seconds_left: expires,
        },
    ))
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

    /// Captured from a daemon in a network namespace (`nft -j list table inet knock_totp_lab`,
    /// kernel 6.18, nft 1.0.6; rules and empty sets left out, one ban added in the shape of
    /// the elements above it): user alice (slot 2) opened the door of window 59886999 from
    /// 127.0.0.1; 127.0.0.2 knocked that door's A and is staged.
    const SAMPLE: &str = r#"{"nftables": [
{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},
{"table":{"family":"inet","name":"knock_totp_lab","handle":2}},
{"counter":{"family":"inet","name":"knocks","table":"knock_totp_lab","handle":27,"packets":3,"bytes":180}},
{"counter":{"family":"inet","name":"opened","table":"knock_totp_lab","handle":28,"packets":1,"bytes":60}},
{"counter":{"family":"inet","name":"refused","table":"knock_totp_lab","handle":29,"packets":0,"bytes":0}},
{"counter":{"family":"inet","name":"cancelled","table":"knock_totp_lab","handle":30,"packets":0,"bytes":0}},
{"counter":{"family":"inet","name":"bans","table":"knock_totp_lab","handle":31,"packets":0,"bytes":0}},
{"counter":{"family":"inet","name":"opened_dabd1d","table":"knock_totp_lab","handle":454,"packets":1,"bytes":60}},
{"set":{"family":"inet","name":"state","table":"knock_totp_lab","type":"mark","handle":38,"comment":"knock-totp base v4 port=2222 open=30 seq=10 #b1e81f","size":16,"elem":[59886998,59886999,59887000]}},
{"set":{"family":"inet","name":"allowed4","table":"knock_totp_lab","type":"ipv4_addr","handle":40,"size":65536,"flags":["timeout"],"timeout":30,"elem":[{"elem":{"val":"127.0.0.1","expires":23}}]}},
{"set":{"family":"inet","name":"rate4","table":"knock_totp_lab","type":"ipv4_addr","handle":47,"size":65536,"flags":["timeout"],"timeout":100,"elem":[{"elem":{"val":"127.0.0.1","expires":93,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}},{"elem":{"val":"127.0.0.2","expires":93,"limit":{"rate":60,"burst":40,"per":"minute","inv":true}}}]}},
{"set":{"family":"inet","name":"trusted4","table":"knock_totp_lab","type":"ipv4_addr","handle":49,"size":65536,"flags":["timeout"],"timeout":604800,"elem":[{"elem":{"val":"127.0.0.1","expires":604793}}]}},
{"set":{"family":"inet","name":"staged4","table":"knock_totp_lab","type":"ipv4_addr","handle":50,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_1","table":"knock_totp_lab","type":"ipv4_addr","handle":52,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_3","table":"knock_totp_lab","type":"ipv4_addr","handle":54,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_5","table":"knock_totp_lab","type":"ipv4_addr","handle":56,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_8","table":"knock_totp_lab","type":"ipv4_addr","handle":59,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_9","table":"knock_totp_lab","type":"ipv4_addr","handle":60,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"abit4_10","table":"knock_totp_lab","type":"ipv4_addr","handle":61,"size":65536,"flags":["timeout"],"timeout":10,"elem":[{"elem":{"val":"127.0.0.1","expires":3}},{"elem":{"val":"127.0.0.2","expires":3}}]}},
{"set":{"family":"inet","name":"owners4","table":"knock_totp_lab","type":["mark","ipv4_addr"],"handle":65,"size":65536,"flags":["timeout"],"timeout":600,"elem":[{"elem":{"val":{"concat":[484012034,"127.0.0.1"]},"expires":593}}]}},
{"set":{"family":"inet","name":"grants4","table":"knock_totp_lab","type":["mark","ipv4_addr"],"handle":66,"size":65536,"flags":["timeout"],"timeout":300,"elem":[{"elem":{"val":{"concat":[484012034,"127.0.0.1"]},"timeout":30,"expires":23}}]}},
{"set":{"family":"inet","name":"allowed6","table":"knock_totp_lab","type":"ipv6_addr","handle":67,"size":65536,"flags":["timeout"],"timeout":30}},
{"set":{"family":"inet","name":"staged6","table":"knock_totp_lab","type":"ipv6_addr","handle":77,"size":65536,"flags":["timeout"],"timeout":10}},
{"set":{"family":"inet","name":"owners6","table":"knock_totp_lab","type":["mark","ipv6_addr"],"handle":92,"size":65536,"flags":["timeout"],"timeout":600}},
{"set":{"family":"inet","name":"grants6","table":"knock_totp_lab","type":["mark","ipv6_addr"],"handle":93,"size":65536,"flags":["timeout"],"timeout":300}},
{"set":{"family":"inet","name":"used","table":"knock_totp_lab","type":"mark","handle":94,"size":65536,"flags":["timeout"],"timeout":600,"elem":[{"elem":{"val":484012034,"expires":593}}]}},
{"set":{"family":"inet","name":"starts","table":"knock_totp_lab","type":"inet_service","handle":95,"flags":["timeout"],"elem":[{"elem":{"val":1834,"timeout":50,"expires":46}},{"elem":{"val":3721,"timeout":80,"expires":76}},{"elem":{"val":8473,"timeout":20,"expires":16}}]}},
{"map":{"family":"inet","name":"pairs","table":"knock_totp_lab","type":["mark","inet_service"],"handle":96,"map":"mark","flags":["timeout"],"elem":[[{"elem":{"val":{"concat":[1834,3421]},"timeout":50,"expires":46}},484012034],[{"elem":{"val":{"concat":[3721,2191]},"timeout":80,"expires":76}},484016130],[{"elem":{"val":{"concat":[8473,7369]},"timeout":20,"expires":16}},484007938]]}},
{"map":{"family":"inet","name":"door_grant","table":"knock_totp_lab","type":"mark","handle":97,"map":"verdict","elem":[[{"elem":{"val":484007938,"comment":"knock-totp door c=59886998 a=8473 b=7369 from=1796609910 until=1796610000 slot=2"}},{"goto":{"target":"grant_30"}}],[{"elem":{"val":484012034,"comment":"knock-totp door c=59886999 a=1834 b=3421 from=1796609940 until=1796610030 slot=2"}},{"goto":{"target":"grant_30"}}],[{"elem":{"val":484016130,"comment":"knock-totp door c=59887000 a=3721 b=2191 from=1796609970 until=1796610060 slot=2"}},{"goto":{"target":"grant_30"}}]]}},
{"set":{"family":"inet","name":"users","table":"knock_totp_lab","type":"mark","handle":98,"elem":[{"elem":{"val":2,"comment":"knock-totp user name=alice tag=dabd1d open=30"}}]}},
{"map":{"family":"inet","name":"user_opened","table":"knock_totp_lab","type":"mark","handle":99,"map":"counter","elem":[[2,"opened_dabd1d"]]}},
{"set":{"family":"inet","name":"banned_4_32","table":"knock_totp_lab","type":"ipv4_addr","handle":90,"size":65536,"flags":["timeout","dynamic"],"timeout":3600,"elem":[{"elem":{"val":"127.0.0.9","expires":3599}}]}}
]}"#;

    #[test]
    fn parses_captured_sample() {
        let st = parse_status(SAMPLE).unwrap();
        let counters: Vec<u64> = st.doors.iter().map(|d| d.door.counter).collect();
        assert_eq!(counters, vec![59_886_998, 59_886_999, 59_887_000]);
        assert!(st.doors.iter().all(|d| d.door.ports[0] != d.door.ports[1]));
        assert!(st
            .doors
            .iter()
            .all(|d| d.door.user.as_ref().is_some_and(|u| u.name == "alice")));
        assert_eq!(st.doors[0].owner, None);
        assert_eq!(st.doors[1].owner, Some("127.0.0.1".parse().unwrap()));
        let staged: Vec<String> = st.staged.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(staged, ["127.0.0.2"]);
        let allowed: Vec<String> = st.allowed.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(allowed, ["127.0.0.1"]);
        assert_eq!(st.users.len(), 1);
        let alice = &st.users[0];
        assert_eq!((alice.user.name.as_str(), alice.opened), ("alice", 1));
        assert_eq!(alice.grants.len(), 1);
        assert_eq!(alice.grants[0].addr.to_string(), "127.0.0.1");
        assert_eq!(alice.last_opened_ago(), Some(7));
        let banned: Vec<(String, u8)> = st
            .banned
            .iter()
            .map(|s| (s.addr.to_string(), s.prefix_len))
            .collect();
        assert_eq!(banned, vec![("127.0.0.9".into(), 32)]);
        assert_eq!(st.trusted.len(), 1);
        assert!(st.base_settings.as_deref().unwrap().ends_with("#b1e81f"));
        assert_eq!(st.windows, [59_886_998, 59_886_999, 59_887_000]);
        assert_eq!(st.counters.opened, 1);
        assert_eq!(st.counters.knocks, 3);
        let d = &st.doors[1].door;
        assert_eq!(st.active_doors(d.valid_from).count(), 2);
        assert_eq!(st.active_doors(d.valid_from + 30).count(), 3);
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
        let named = named_counters(&serde_json::from_str(j).unwrap());
        assert_eq!(Counters::from_named(&named), st.counters);
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
