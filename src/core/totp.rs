//! RFC 6238 codes (six digits) for a secret at a given unix time, via totp-rs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::core::ports::{Code, PortPair};
use crate::core::secret::SecretKey;
use crate::core::window::Window;

/// Digits in every knock-totp code: ports need exactly six.
pub const DIGITS: u8 = 6;
/// RFC 6238's default step, and the only one Google Authenticator supports.
pub const DEFAULT_PERIOD: u64 = 30;

/// `DEFAULT_PERIOD` for serde's `default =`.
pub fn default_period() -> u64 {
    DEFAULT_PERIOD
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("unknown algorithm {0:?}: use SHA1, SHA256 or SHA512")]
    UnknownAlgorithm(String),
    #[error("the period must be between 1 and 86400 seconds, got {0}")]
    BadPeriod(u64),
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = TotpError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(TotpError::UnknownAlgorithm(
                input.chars().take(20).collect(),
            )),
        }
    }
}

/// Checks a period (step) in seconds.
pub fn validate_period(period: u64) -> Result<u64, TotpError> {
    if (1..=86_400).contains(&period) {
        Ok(period)
    } else {
        Err(TotpError::BadPeriod(period))
    }
}

/// A code generator for one secret; six digits, T0 = 0.
#[derive(Clone)]
pub struct Totp {
    inner: totp_rs::Totp,
    period: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.inner.algorithm())
            .field("period", &self.period)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl Totp {
    pub fn new(secret: &SecretKey, algorithm: Algorithm, period: u64) -> Result<Self, TotpError> {
        let period = validate_period(period)?;
        // build_noncompliant: totp-rs's checked build() refuses 80-bit secrets, which the
        // original knocker generates and we must keep accepting; the codes are the same.
        let inner = totp_rs::Builder::new()
            .with_algorithm(algorithm.to_totp_rs())
            .with_digits(DIGITS)
            .with_step_duration(period)
            .with_secret(secret.as_bytes())
            .build_noncompliant();
        Ok(Self { inner, period })
    }

    pub fn period(&self) -> u64 {
        self.period
    }

    pub fn window_at(&self, unix_time: u64) -> Window {
        Window::at(unix_time, self.period)
    }

    pub fn code_at(&self, unix_time: u64) -> Code {
        let token = self.inner.generate(unix_time).to_string();
        let value = token.parse().expect("totp-rs yields decimal digits");
        Code::new(value).expect("six-digit tokens are below 1,000,000")
    }

    pub fn code_for(&self, window: Window) -> Code {
        self.code_at(window.time())
    }

    pub fn ports_for(&self, window: Window) -> PortPair {
        self.code_for(window).ports()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1(secret: &str) -> Totp {
        Totp::new(
            &SecretKey::from_base32(secret).unwrap(),
            Algorithm::Sha1,
            30,
        )
        .unwrap()
    }

    #[test]
    fn spec_vectors() {
        let rfc = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let short = "LPI3UVRWMUTRNDBD";
        let vectors: [(&str, u64, &str, [u16; 2]); 12] = [
            (rfc, 59, "287082", [2870, 7082]),
            (rfc, 1111111109, "081804", [8180, 1804]),
            (rfc, 1111111111, "050471", [5040, 4710]),
            (rfc, 1234567890, "005924", [5900, 5924]),
            (rfc, 2000000000, "279037", [2790, 9037]),
            (rfc, 20000000000, "353130", [3531, 3130]),
            (short, 59, "693974", [6939, 3974]),
            (short, 20000000000, "500260", [5002, 2600]),
            (short, 1740008700, "770000", [7700, 1000]),
            (short, 1740012930, "000418", [4000, 4180]),
            (short, 1740134610, "000024", [1000, 2400]),
            ("RPFYC5FREUVZ22I7", 1764000000, "950691", [9506, 6910]),
        ];
        for (secret, time, code, ports) in vectors {
            let got = sha1(secret).code_at(time);
            assert_eq!(got.to_string(), code, "{secret} @ {time}");
            assert_eq!(got.ports(), PortPair(ports), "{secret} @ {time}");
        }
    }

    #[test]
    fn rfc6238_sha256_and_sha512_vectors_cut_to_six_digits() {
        let sha256 = SecretKey::from_bytes(b"12345678901234567890123456789012".to_vec()).unwrap();
        let sha512 = SecretKey::from_bytes(
            b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
        )
        .unwrap();
        let t256 = Totp::new(&sha256, Algorithm::Sha256, 30).unwrap();
        let t512 = Totp::new(&sha512, Algorithm::Sha512, 30).unwrap();
        // RFC 6238 appendix B, eight-digit values with the first two digits dropped.
        for (time, c256, c512) in [
            (59, "119246", "693936"),
            (1111111109, "084774", "091201"),
            (1111111111, "062674", "943326"),
            (1234567890, "819424", "441116"),
            (2000000000, "698825", "618901"),
            (20000000000, "737706", "863826"),
        ] {
            assert_eq!(t256.code_at(time).to_string(), c256, "SHA256 @ {time}");
            assert_eq!(t512.code_at(time).to_string(), c512, "SHA512 @ {time}");
        }
    }

    #[test]
    fn window_code_matches_any_time_in_window() {
        let totp = sha1("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let w = totp.window_at(1111111109);
        assert_eq!(totp.code_for(w), totp.code_at(1111111109));
        assert_eq!(totp.code_for(w.next()), totp.code_at(1111111110));
    }

    #[test]
    fn algorithm_names() {
        assert_eq!("sha1".parse::<Algorithm>().unwrap(), Algorithm::Sha1);
        assert_eq!("SHA-256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert!("MD5".parse::<Algorithm>().is_err());
    }

    #[test]
    fn period_bounds() {
        let key = SecretKey::generate();
        assert!(Totp::new(&key, Algorithm::Sha1, 0).is_err());
        assert!(Totp::new(&key, Algorithm::Sha1, 5).is_ok());
    }

    #[test]
    fn agrees_with_oathtool_on_random_secrets() {
        let Ok(version) = std::process::Command::new("oathtool")
            .arg("--version")
            .output()
        else {
            eprintln!("skipped: oathtool is not installed (apt-get install oathtool)");
            return;
        };
        assert!(version.status.success());
        for round in 0..200u64 {
            let key = SecretKey::generate();
            let bytes = key.as_bytes();
            let time = u64::from_le_bytes(bytes[..8].try_into().unwrap()) % 4_000_000_000;
            // Every third secret is 80 bits, the shortest we accept.
            let key = if round % 3 == 0 {
                SecretKey::from_bytes(bytes[..10].to_vec()).unwrap()
            } else {
                key
            };
            let ours = Totp::new(&key, Algorithm::Sha1, 30).unwrap().code_at(time);
            let out = std::process::Command::new("oathtool")
                .args(["--totp", "-b", key.to_base32().as_str(), "-N"])
                .arg(format!("@{time}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let theirs = String::from_utf8(out.stdout).unwrap();
            assert_eq!(ours.to_string(), theirs.trim(), "time {time}");
        }
    }
}
