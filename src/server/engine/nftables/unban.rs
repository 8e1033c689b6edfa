//! `server unban ADDRESS`: which elements of the table hold an address's bans and debts, and
//! the transaction that deletes them.
//!
//! A source is banned in `banned_F_L` under its address masked to `L` bits, for every prefix
//! length `L` of the config, and its wrong knocks are counted in `wrong_F_L` under the same
//! keys (its rate in `rateF` under the narrowest one). Lifting only the ban would let the next
//! wrong knock ban it again, so the meters go too. nft 1.0.6 has no `destroy element` and a
//! `delete element` of an absent element fails the whole transaction: the caller reads the
//! few sets concerned (`nft -j list set`) and deletes only what they hold.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

use super::ruleset::{level_set, Family, NftParams};
use super::status::parse_elem;
use crate::error::UserError;

/// What an element of the table does to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A ban (`banned_F_L`).
    Ban,
    /// The wrong-knock meter of a prefix level (`wrong_F_L`).
    Wrong,
    /// The per-source rate meter (`rateF`).
    Rate,
}

/// One element of the table that may hold the address (or a network around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub set: String,
    pub kind: EntryKind,
    pub family: Family,
    pub prefix_len: u8,
    /// The element's key: the address masked to `prefix_len` bits.
    pub key: IpAddr,
}

impl Entry {
    /// `10.213.0.0/24`, or the bare address for a full-length key.
    pub fn network(&self) -> String {
        if self.prefix_len >= self.family.full_len() {
            self.key.to_string()
        } else {
            format!("{}/{}", self.key, self.prefix_len)
        }
    }
}

/// An entry the table holds, with the seconds its element has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub entry: Entry,
    pub seconds_left: Option<u64>,
}

/// `addr` with only its first `len` bits kept.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) if len < 32 => {
            IpAddr::V4((u32::from(a) & !(u32::MAX.checked_shr(u32::from(len)).unwrap_or(0))).into())
        }
        IpAddr::V6(a) if len < 128 => IpAddr::V6(
            (u128::from(a) & !(u128::MAX.checked_shr(u32::from(len)).unwrap_or(0))).into(),
        ),
        other => other,
    }
}

/// The operator's ADDRESS: one IPv4 or IPv6 address. A network is refused: every ban level
/// is keyed by the network that holds the address, so any address inside a banned network
/// lifts that network's ban, and a prefix length would only leave open which levels it meant.
pub fn parse_address(text: &str) -> Result<IpAddr, UserError> {
    let shown: String = text.chars().take(60).collect();
    let trimmed = text.trim();
    if let Some((addr, _)) = trimmed.split_once('/') {
        if addr.parse::<IpAddr>().is_ok() {
            return Err(UserError::usage(format!(
                "{shown:?} is a network; server unban takes one address"
            ))
            .with_hint(format!(
                "give an address inside it (server unban {addr}): every banned network that \
                 holds that address is lifted"
            )));
        }
    }
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(trimmed);
    unbracketed.parse::<IpAddr>().map_err(|_| {
        UserError::usage(format!("{shown:?} is not an IPv4 or IPv6 address"))
            .with_hint("give the address as `--status` lists it, e.g. 192.0.2.7 or 2001:db8::7")
    })
}

/// The elements that may hold `addr`'s bans and debts, with the config's prefix levels.
pub fn entries(p: &NftParams, addr: IpAddr) -> Vec<Entry> {
    let family = if addr.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let prefixes = p.prefixes(family);
    let mut entries = Vec::new();
    for kind in [EntryKind::Ban, EntryKind::Wrong] {
        let name = if kind == EntryKind::Ban {
            "banned"
        } else {
            "wrong"
        };
        for &len in prefixes {
            entries.push(Entry {
                set: level_set(name, family, len),
                kind,
                family,
                prefix_len: len,
                key: mask(addr, len),
            });
        }
    }
    if let Some(&narrowest) = prefixes.first() {
        entries.push(Entry {
            set: format!("rate{}", family.digit()),
            kind: EntryKind::Rate,
            family,
            prefix_len: narrowest,
            key: mask(addr, narrowest),
        });
    }
    entries
}

/// `entry`'s element in a `nft -j list set` answer of its set, if the set holds it.
pub fn find(entry: &Entry, listing: &Value) -> Option<Found> {
    let set = listing
        .get("nftables")?
        .as_array()?
        .iter()
        .find_map(|item| item.get("set"))?;
    set.get("elem")?
        .as_array()?
        .iter()
        .filter_map(parse_elem)
        .find(|source| source.addr == entry.key)
        .map(|source| Found {
            entry: entry.clone(),
            seconds_left: source.seconds_left,
        })
}

/// One transaction that deletes every found element (all of them or none).
pub fn transaction(table: &str, found: &[Found]) -> String {
    let mut s = String::new();
    for f in found {
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            f.entry.set, f.entry.key
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NftParams {
        NftParams::with_defaults("knock_totp_web", 2222)
    }

    #[test]
    fn an_address_is_looked_for_at_every_level_of_its_family() {
        let e = entries(&params(), "10.213.7.5".parse().unwrap());
        let names: Vec<(&str, String)> = e.iter().map(|e| (e.set.as_str(), e.network())).collect();
        assert_eq!(
            names,
            [
                ("banned_4_32", "10.213.7.5".to_string()),
                ("banned_4_24", "10.213.7.0/24".into()),
                ("banned_4_16", "10.213.0.0/16".into()),
                ("wrong_4_32", "10.213.7.5".into()),
                ("wrong_4_24", "10.213.7.0/24".into()),
                ("wrong_4_16", "10.213.0.0/16".into()),
                ("rate4", "10.213.7.5".into()),
            ]
        );
        let e6 = entries(&params(), "fd13:213:1:2:3::9".parse().unwrap());
        assert_eq!(e6[0].set, "banned_6_64");
        assert_eq!(e6[0].network(), "fd13:213:1:2::/64");
        assert_eq!(e6[2].network(), "fd13:213::/32");
        assert_eq!(e6.last().unwrap().set, "rate6");
        assert_eq!(e6.last().unwrap().network(), "fd13:213:1:2::/64");
    }

    #[test]
    fn masks_keep_the_prefix() {
        let a: IpAddr = "10.213.7.5".parse().unwrap();
        assert_eq!(mask(a, 32), a);
        assert_eq!(mask(a, 16).to_string(), "10.213.0.0");
        assert_eq!(mask(a, 0).to_string(), "0.0.0.0");
        let b: IpAddr = "fd13:213::1".parse().unwrap();
        assert_eq!(mask(b, 128), b);
        assert_eq!(mask(b, 48).to_string(), "fd13:213::");
    }

    #[test]
    fn only_present_elements_are_found_and_deleted() {
        let listing: Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "banned_4_24", "table": "t", "type": "ipv4_addr", "elem": [{"elem": {"val": "10.213.9.0", "timeout": 600, "expires": 412}}, {"elem": {"val": "10.213.7.0", "timeout": 600, "expires": 552}}, "10.1.0.0"]}}]}"#,
        )
        .unwrap();
        let e = entries(&params(), "10.213.7.5".parse().unwrap());
        let found = find(&e[1], &listing).unwrap();
        assert_eq!(found.seconds_left, Some(552));
        assert_eq!(find(&e[0], &listing), None);
        assert_eq!(find(&e[1], &serde_json::json!({"nftables": []})), None);
        assert_eq!(
            transaction("t", &[found]),
            "delete element inet t banned_4_24 { 10.213.7.0 }\n"
        );
    }

    #[test]
    fn addresses_parse_and_networks_or_garbage_do_not() {
        assert_eq!(
            parse_address("10.213.0.5").unwrap().to_string(),
            "10.213.0.5"
        );
        assert_eq!(
            parse_address("[fd13:213::5]").unwrap().to_string(),
            "fd13:213::5"
        );
        let net = parse_address("10.213.0.0/24").unwrap_err();
        assert!(net.message.contains("is a network"), "{}", net.message);
        assert!(net.hint.unwrap().contains("server unban 10.213.0.0"));
        for bad in ["", "10.213.0.256", "web.example.com", "10.213.0/24"] {
            let e = parse_address(bad).unwrap_err();
            assert!(
                e.message.contains("is not an IPv4 or IPv6 address"),
                "{bad}"
            );
        }
    }
}
