//! The nftables engine's settings: the `[nftables]` table of a server's config.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Limits of the nftables engine. The defaults let ten ssh logins a minute through a
/// ProxyCommand (2 knocks each, 4 when the client knocks again) from one address, ban a blind
/// guesser after at most 20 wrong pairs, fast (40 SYNs over the rate) or slow (40 wrong knocks,
/// then 20 an hour), and bound every untrusted source together by one global budget (480 wrong
/// knocks, then 240 an hour): past it the server is under attack and opens doors only for
/// trusted sources. The odds per day these give are in the README. A legitimate knock is never
/// a wrong one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NftSettings {
    /// Knock-range SYNs a source (an IPv6 /64) may send per minute, sustained.
    #[serde(default = "NftSettings::default_rate")]
    pub rate_per_minute: u32,
    /// Knock-range SYNs a source may send in a burst before the rate applies.
    #[serde(default = "NftSettings::default_burst")]
    pub burst: u32,
    /// Seconds a source that exceeded the rate is banned (completes no door).
    #[serde(default = "NftSettings::default_ban")]
    pub ban_seconds: u64,
    /// Wrong knocks (SYNs into the knock range that neither start nor complete a door) a
    /// source may send per hour, sustained: a guesser that stays under `rate_per_minute` is
    /// banned all the same.
    #[serde(default = "NftSettings::default_wrong_rate")]
    pub wrong_knocks_per_hour: u32,
    /// Wrong knocks a source may send before `wrong_knocks_per_hour` applies.
    #[serde(default = "NftSettings::default_wrong_burst")]
    pub wrong_knock_burst: u32,
    /// The prefix lengths IPv4 sources are metered and banned at, narrowest first: the first is
    /// a source, each broader one gets twice the budget of the one before.
    #[serde(default = "NftSettings::default_ipv4_prefixes")]
    pub ipv4_prefixes: Vec<u8>,
    /// The same for IPv6 (a /64 is one subscriber, a /48 one site, a /32 one provider).
    #[serde(default = "NftSettings::default_ipv6_prefixes")]
    pub ipv6_prefixes: Vec<u8>,
    /// Wrong knocks all untrusted sources together may send per hour, sustained.
    #[serde(default = "NftSettings::default_global_wrong_rate")]
    pub global_wrong_knocks_per_hour: u32,
    /// Wrong knocks all untrusted sources together may send before the global rate applies.
    #[serde(default = "NftSettings::default_global_wrong_burst")]
    pub global_wrong_knock_burst: u32,
    /// Seconds the server stays under attack after the last knock over the global budget (or
    /// from a source no meter could track): only trusted sources reach a door meanwhile.
    #[serde(default = "NftSettings::default_attack")]
    pub attack_seconds: u64,
    /// Seconds a source that opened a door stays trusted: never banned, and let through while
    /// the server is under attack (0: nobody is trusted for having knocked).
    #[serde(default = "NftSettings::default_trust")]
    pub trust_seconds: u64,
    /// Sources (or networks) each meter, ban, trust and stage set holds. A full set fails
    /// closed (its untracked sources are dropped and the server is under attack), so this is
    /// a capacity: each element with a meter takes ~210 bytes of kernel memory.
    #[serde(default = "NftSettings::default_tracked_sources")]
    pub tracked_sources: u32,
    /// Networks (CIDRs such as `192.0.2.0/24` or `2001:db8::/48`) never banned and always
    /// trusted, like fail2ban's `ignoreip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never_ban: Vec<String>,
    /// Drop the knock range on the host (set where a cloud firewall opens it to the world).
    #[serde(default)]
    pub drop_knock_range: bool,
    /// Ports in the knock range that serve the public: they stay reachable, never start or
    /// cancel a knock, and no door uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_ports: Vec<u16>,
}

impl NftSettings {
    fn default_rate() -> u32 {
        60
    }
    fn default_burst() -> u32 {
        40
    }
    fn default_ban() -> u64 {
        600
    }
    fn default_wrong_rate() -> u32 {
        20
    }
    fn default_wrong_burst() -> u32 {
        40
    }
    fn default_ipv4_prefixes() -> Vec<u8> {
        vec![32, 24, 16]
    }
    fn default_ipv6_prefixes() -> Vec<u8> {
        vec![64, 48, 32]
    }
    fn default_global_wrong_rate() -> u32 {
        240
    }
    fn default_global_wrong_burst() -> u32 {
        480
    }
    fn default_attack() -> u64 {
        300
    }
    fn default_trust() -> u64 {
        7 * 86_400
    }
    fn default_tracked_sources() -> u32 {
        65_536
    }
}

impl Default for NftSettings {
    fn default() -> Self {
        Self {
            rate_per_minute: Self::default_rate(),
            burst: Self::default_burst(),
            ban_seconds: Self::default_ban(),
            wrong_knocks_per_hour: Self::default_wrong_rate(),
            wrong_knock_burst: Self::default_wrong_burst(),
            ipv4_prefixes: Self::default_ipv4_prefixes(),
            ipv6_prefixes: Self::default_ipv6_prefixes(),
            global_wrong_knocks_per_hour: Self::default_global_wrong_rate(),
            global_wrong_knock_burst: Self::default_global_wrong_burst(),
            attack_seconds: Self::default_attack(),
            trust_seconds: Self::default_trust(),
            tracked_sources: Self::default_tracked_sources(),
            never_ban: Vec::new(),
            drop_knock_range: false,
            public_ports: Vec::new(),
        }
    }
}

/// A network in CIDR notation, host bits cleared: `192.0.2.0/24`, `2001:db8::/48`, or one
/// address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "{:?} is not a network: write it as 192.0.2.0/24, 2001:db8::/48 or one address",
                text.chars().take(60).collect::<String>()
            )
        };
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => full,
            Some(len) => len.trim().parse::<u8>().map_err(|_| bad())?,
        };
        if prefix_len == 0 || prefix_len > full {
            return Err(bad());
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                IpAddr::V4((u32::from(a) & (u32::MAX << (32 - u32::from(prefix_len)))).into())
            }
            IpAddr::V6(a) => {
                IpAddr::V6((u128::from(a) & (u128::MAX << (128 - u32::from(prefix_len)))).into())
            }
        };
        Ok(Cidr { addr, prefix_len })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl NftSettings {
    /// Checks every limit; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=1_000_000).contains(&self.rate_per_minute) {
            return Err((
                "rate_per_minute",
                "rate_per_minute must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.burst) {
            return Err(("burst", "burst must be between 1 and 1000000".into()));
        }
        if !(1..=1_000_000).contains(&self.wrong_knocks_per_hour) {
            return Err((
                "wrong_knocks_per_hour",
                "wrong_knocks_per_hour must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.wrong_knock_burst) {
            return Err((
                "wrong_knock_burst",
                "wrong_knock_burst must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=604_800).contains(&self.ban_seconds) {
            return Err((
                "ban_seconds",
                "ban_seconds must be between 1 and 604800 (a week)".into(),
            ));
        }
        check_prefixes("ipv4_prefixes", &self.ipv4_prefixes, 32)?;
        check_prefixes("ipv6_prefixes", &self.ipv6_prefixes, 128)?;
        if !(1..=10_000_000).contains(&self.global_wrong_knocks_per_hour) {
            return Err((
                "global_wrong_knocks_per_hour",
                "global_wrong_knocks_per_hour must be between 1 and 10000000".into(),
            ));
        }
        if !(1..=10_000_000).contains(&self.global_wrong_knock_burst) {
            return Err((
                "global_wrong_knock_burst",
                "global_wrong_knock_burst must be between 1 and 10000000".into(),
            ));
        }
        if !(1..=86_400).contains(&self.attack_seconds) {
            return Err((
                "attack_seconds",
                "attack_seconds must be between 1 and 86400 (a day)".into(),
            ));
        }
        if self.trust_seconds > 90 * 86_400 {
            return Err((
                "trust_seconds",
                "trust_seconds must be at most 7776000 (90 days; 0 trusts nobody)".into(),
            ));
        }
        if !(1_024..=1_048_576).contains(&self.tracked_sources) {
            return Err((
                "tracked_sources",
                "tracked_sources must be between 1024 and 1048576".into(),
            ));
        }
        for network in &self.never_ban {
            Cidr::parse(network).map_err(|e| ("never_ban", format!("never_ban: {e}")))?;
        }
        if self.public_ports.contains(&0) {
            return Err(("public_ports", "public port 0 is invalid".into()));
        }
        Ok(())
    }
}

/// Prefix lengths for meters: 1 to `full`, narrowest first, each one once.
fn check_prefixes(
    key: &'static str,
    prefixes: &[u8],
    full: u8,
) -> Result<(), (&'static str, String)> {
    let in_order = prefixes.windows(2).all(|pair| pair[0] > pair[1]);
    if prefixes.is_empty()
        || prefixes.len() > 4
        || !in_order
        || prefixes.iter().any(|p| !(1..=full).contains(p))
    {
        return Err((
            key,
            format!("{key} must list 1 to 4 prefix lengths between 1 and {full}, narrowest first (e.g. [{full}])"),
        ));
    }
    Ok(())
}
