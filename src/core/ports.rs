//! The knock sequence: a six-digit code turned into two ports in 1000..=9999.

use std::fmt;
use std::str::FromStr;

/// Lowest port a knock can use; `widen` never yields less.
pub const MIN_KNOCK_PORT: u16 = 1000;
/// Highest port a knock can use.
pub const MAX_KNOCK_PORT: u16 = 9999;

/// The knock range as firewalls and messages write it: `1000-9999`.
pub fn knock_range_text() -> String {
    format!("{MIN_KNOCK_PORT}-{MAX_KNOCK_PORT}")
}

/// How many distinct knock pairs the scheme gives (B's first two digits are A's last two).
pub const DISTINCT_PAIRS: u64 = 996_948;

/// The odds that `pairs` guessed pairs open one of `live_doors` doors: 1 - (1 - p)^pairs with
/// p = live_doors / [`DISTINCT_PAIRS`].
pub fn guessing_odds(pairs: u64, live_doors: u64) -> f64 {
    let p = (live_doors as f64 / DISTINCT_PAIRS as f64).min(1.0);
    1.0 - (1.0 - p).powf(pairs as f64)
}

/// What clients say when a window's pair is weak (`PortPair::is_weak`).
pub const WEAK_PAIR: &str = "this window's knock ports are one port twice or two adjacent \
     ports, for which servers open no door (a retransmitted SYN or a port sweep would open it)";

/// A six-digit TOTP code, shown zero-padded as authenticator apps do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "a code has exactly six digits (as the authenticator app shows it, e.g. 081804), got {0:?}"
    )]
    NotSixDigits(String),
}

impl Code {
    /// Wraps a number below 1,000,000.
    pub fn new(value: u32) -> Option<Self> {
        (value < 1_000_000).then_some(Self(value))
    }

    pub fn value(self) -> u32 {
        self.0
    }

    pub fn ports(self) -> PortPair {
        port_pair(self.0)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl FromStr for Code {
    type Err = CodeError;

    /// Accepts six ASCII digits, optionally split in two groups of three by a space
    /// (`081 804`, as some apps display it).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let digits: String = input.trim().chars().filter(|c| *c != ' ').collect();
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::NotSixDigits(input.chars().take(20).collect()));
        }
        Ok(Self(digits.parse().expect("six ASCII digits fit in u32")))
    }
}

/// The two ports of one window's knock, in knock order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair(pub [u16; 2]);

impl PortPair {
    pub fn first(self) -> u16 {
        self.0[0]
    }

    pub fn second(self) -> u16 {
        self.0[1]
    }

    /// Whether a door with this pair would open without the code (about 640 codes in a
    /// million): A == B (979797), which one ordinary connect's retransmitted SYN completes, or
    /// B = A ± 1 (003001 -> 3000 3001), which a port sweep up or down completes, as no port
    /// lies between them to cancel the attempt. Servers never install such a door and clients
    /// knock the next window's pair instead.
    pub fn is_weak(self) -> bool {
        self.0[0].abs_diff(self.0[1]) <= 1
    }
}

impl fmt::Display for PortPair {
    /// `A B`: the form scripts read (`knock host $(knock-totp ports web)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0[0], self.0[1])
    }
}

/// Scales a four-digit group into 1000..=9999: values below 1000 are multiplied by ten until
/// they reach it, and 0 (which would never get there) is defined as 1000.
pub fn widen(group: u32) -> u16 {
    debug_assert!(group <= 9999);
    let mut port = group;
    if port == 0 {
        return MIN_KNOCK_PORT;
    }
    while port < u32::from(MIN_KNOCK_PORT) {
        port *= 10;
    }
    port as u16
}

/// Port A is the first four digits of the zero-padded code, port B the last four, each widened.
pub fn port_pair(code: u32) -> PortPair {
    let code = code % 1_000_000;
    PortPair([widen(code / 100), widen(code % 10_000)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_a_retransmitted_syn_or_a_sweep_would_complete() {
        assert!(port_pair(979797).is_weak());
        // The README's figures: 260 pairs against 3 doors, 3,120 against 3 (and 3 x 1,000).
        assert!((guessing_odds(260, 3) - 0.000_782).abs() < 0.000_01);
        assert!((guessing_odds(3120, 3) - 0.009_346).abs() < 0.000_01);
        assert!(guessing_odds(3, 3000) <= guessing_odds(3120, 3));
        assert!(port_pair(3200).is_weak(), "0032|3200 -> 3200 3200");
        assert!(port_pair(0).is_weak());
        assert!(port_pair(3001).is_weak(), "0030|3001 -> 3000 3001");
        assert!(port_pair(434344).is_weak(), "4343 4344");
        assert!(!port_pair(970113).is_weak());
        assert!(!port_pair(300302).is_weak(), "3003 0302 -> 3003 3020");
        let count = (0..1_000_000).filter(|c| port_pair(*c).is_weak()).count();
        assert!((600..700).contains(&count), "{count} weak codes");
    }

    #[test]
    fn spec_derivation_vectors() {
        let vectors = [
            (970113, [9701, 1130]),
            (0, [1000, 1000]),
            (100000, [1000, 1000]),
            (1000, [1000, 1000]),
            (111111, [1111, 1111]),
            (999999, [9999, 9999]),
            (287082, [2870, 7082]),
            (81804, [8180, 1804]),
            (50471, [5040, 4710]),
            (5924, [5900, 5924]),
            (770000, [7700, 1000]),
            (418, [4000, 4180]),
            (24, [1000, 2400]),
        ];
        for (code, ports) in vectors {
            assert_eq!(port_pair(code), PortPair(ports), "code {code:06}");
        }
    }

    #[test]
    fn widen_edges() {
        assert_eq!(widen(0), 1000);
        assert_eq!(widen(1), 1000);
        assert_eq!(widen(9), 9000);
        assert_eq!(widen(10), 1000);
        assert_eq!(widen(99), 9900);
        assert_eq!(widen(999), 9990);
        assert_eq!(widen(1000), 1000);
        assert_eq!(widen(9999), 9999);
    }

    #[test]
    fn every_code_gives_ports_in_range() {
        for code in 0..1_000_000 {
            let PortPair([a, b]) = port_pair(code);
            assert!((MIN_KNOCK_PORT..=MAX_KNOCK_PORT).contains(&a), "{code}");
            assert!((MIN_KNOCK_PORT..=MAX_KNOCK_PORT).contains(&b), "{code}");
        }
    }

    #[test]
    fn code_parses_and_displays_zero_padded() {
        let code: Code = "081804".parse().unwrap();
        assert_eq!(code.value(), 81804);
        assert_eq!(code.to_string(), "081804");
        assert_eq!("970 113".parse::<Code>().unwrap().value(), 970113);
        for bad in ["81804", "0818045", "08180a", "", "-81804", "+81804"] {
            assert!(bad.parse::<Code>().is_err(), "{bad:?}");
        }
        assert_eq!(Code::new(1_000_000), None);
    }

    #[test]
    fn pair_displays_for_scripts() {
        assert_eq!(port_pair(970113).to_string(), "9701 1130");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The SPEC formula, written the slow and obvious way on the six-character string.
    fn by_spec(code: u32) -> [u16; 2] {
        let digits = format!("{code:06}");
        let widen_text = |group: &str| -> u16 {
            let mut value: u32 = group.parse().unwrap();
            if value == 0 {
                return 1000;
            }
            while value < 1000 {
                value *= 10;
            }
            value as u16
        };
        [widen_text(&digits[0..4]), widen_text(&digits[2..6])]
    }

    proptest! {
        #[test]
        fn port_pair_follows_the_spec_and_stays_in_range(code in 0u32..1_000_000) {
            let PortPair(ports) = port_pair(code);
            prop_assert_eq!(ports, by_spec(code));
            for port in ports {
                prop_assert!((MIN_KNOCK_PORT..=MAX_KNOCK_PORT).contains(&port));
            }
        }

        #[test]
        fn code_text_round_trips(code in 0u32..1_000_000) {
            let parsed: Code = Code::new(code).unwrap().to_string().parse().unwrap();
            prop_assert_eq!(parsed.value(), code);
        }
    }
}
