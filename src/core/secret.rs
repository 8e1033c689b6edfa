//! Shared TOTP secrets: Base32 parsing and normalisation, generation, and a redacting holder.

use std::fmt;

use zeroize::Zeroizing;

/// Fewest secret bits we accept: what the original knocker generates (16 Base32 characters).
pub const MIN_SECRET_BITS: usize = 80;

/// Bits in a secret that `setup` generates (RFC 4226's recommendation).
pub const GENERATED_SECRET_BITS: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error(
        "the secret is not valid Base32 (RFC 4648): only letters A-Z and digits 2-7 are allowed, \
         spaces, dashes and '=' padding are ignored"
    )]
    InvalidBase32,
    #[error("the secret is too short: {bits} bits, at least {MIN_SECRET_BITS} (16 Base32 characters) are needed")]
    TooShort { bits: usize },
}

/// A TOTP shared secret. Its bytes are wiped on drop and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl SecretKey {
    /// Parses a Base32 secret the way authenticator apps show it: case-insensitive, with spaces,
    /// dashes and `=` padding ignored.
    pub fn from_base32(input: &str) -> Result<Self, SecretError> {
        let normalised = normalise_base32(input);
        if normalised.is_empty() {
            return Err(SecretError::Empty);
        }
        if !normalised
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        {
            return Err(SecretError::InvalidBase32);
        }
        // Lengths 1, 3 and 6 (mod 8) cannot come from any whole number of bytes.
        if matches!(normalised.len() % 8, 1 | 3 | 6) {
            return Err(SecretError::InvalidBase32);
        }
        let secret = totp_rs::Secret::try_from_base32(normalised.as_str())
            .map_err(|_| SecretError::InvalidBase32)?;
        Self::from_bytes(secret.as_bytes().to_vec())
    }

    /// Wraps raw secret bytes, enforcing the minimum length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(bytes);
        let bits = bytes.len() * 8;
        if bits < MIN_SECRET_BITS {
            return Err(SecretError::TooShort { bits });
        }
        Ok(Self { bytes })
    }

    /// A fresh 160-bit secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let secret = totp_rs::Secret::generate();
        Self {
            bytes: Zeroizing::new(secret.as_bytes().to_vec()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bits(&self) -> usize {
        self.bytes.len() * 8
    }

    /// Canonical Base32: uppercase, no padding.
    pub fn to_base32(&self) -> Zeroizing<String> {
        let secret = totp_rs::Secret::from(self.bytes.as_slice());
        Zeroizing::new(secret.to_base32())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

fn normalise_base32(input: &str) -> Zeroizing<String> {
    Zeroizing::new(
        input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn decodes_rfc_secret() {
        let key = SecretKey::from_base32(RFC_SECRET).unwrap();
        assert_eq!(key.as_bytes(), b"12345678901234567890");
        assert_eq!(key.bits(), 160);
        assert_eq!(key.to_base32().as_str(), RFC_SECRET);
    }

    #[test]
    fn normalises_case_spaces_dashes_and_padding() {
        let forms = [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
            " GEZDGNBVGY3TQOJQ\tGEZDGNBVGY3TQOJQ\n",
        ];
        for form in forms {
            let key = SecretKey::from_base32(form).unwrap();
            assert_eq!(key.as_bytes(), b"12345678901234567890", "{form:?}");
        }
    }

    #[test]
    fn accepts_exactly_80_bits() {
        let key = SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap();
        assert_eq!(key.bits(), 80);
    }

    #[test]
    fn rejects_short_secret_saying_how_short() {
        assert_eq!(
            SecretKey::from_base32("LPI3UVRWMUTRNDBA"[..8].as_ref()),
            Err(SecretError::TooShort { bits: 40 })
        );
    }

    #[test]
    fn rejects_invalid_base32() {
        for bad in [
            "LPI3UVRWMUTRNDB1",
            "LPI3UVRWMUTRNDB!",
            "ÄPI3UVRWMUTRNDBD",
            "ABCDEFGHI",
        ] {
            assert_eq!(
                SecretKey::from_base32(bad),
                Err(SecretError::InvalidBase32),
                "{bad:?}"
            );
        }
        assert_eq!(SecretKey::from_base32("  - = "), Err(SecretError::Empty));
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let key = SecretKey::from_base32(RFC_SECRET).unwrap();
        assert!(!format!("{key:?}").contains("GEZD"));
        let err = SecretKey::from_base32("GEZDGNBVGY3TQOJ1").unwrap_err();
        assert!(!err.to_string().contains("GEZD"));
    }

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        assert_eq!(a.bits(), GENERATED_SECRET_BITS);
        assert_ne!(a, b);
        assert_eq!(a.to_base32().len(), 32);
    }
}
