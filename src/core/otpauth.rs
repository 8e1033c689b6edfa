//! `otpauth://totp/...` URIs (the Google Authenticator key URI format): parsing and building.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use crate::core::secret::{SecretError, SecretKey};
use crate::core::totp::{validate_period, Algorithm, DEFAULT_PERIOD, DIGITS};

/// Issuer written into the URIs `setup` builds.
pub const ISSUER: &str = "knock-totp";

/// Characters left as they are in a label or query value.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpauthError {
    #[error("not a valid URI: {0}")]
    Malformed(String),
    #[error("not an otpauth URI (scheme {0:?}): expected otpauth://totp/...")]
    NotOtpauth(String),
    #[error("HOTP (counter-based) URIs are not supported: knock-totp needs a time-based otpauth://totp/ URI")]
    Hotp,
    #[error("unknown OTP type {0:?}: expected otpauth://totp/...")]
    UnknownType(String),
    #[error("the URI has no secret= parameter")]
    NoSecret,
    #[error("the URI's secret is unusable: {0}")]
    Secret(#[from] SecretError),
    #[error("the URI asks for {0} digits; knock ports need exactly 6")]
    Digits(String),
    #[error("the URI's algorithm {0:?} is not supported: use SHA1, SHA256 or SHA512")]
    Algorithm(String),
    #[error("the URI's period {0:?} is not a whole number of seconds between 1 and 86400")]
    Period(String),
}

/// The parts of a TOTP key URI that knock-totp uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpauthUri {
    pub issuer: Option<String>,
    pub account: String,
    pub secret: SecretKey,
    pub algorithm: Algorithm,
    pub period: u64,
}

impl OtpauthUri {
    /// The URI `setup` hands out for host `name`.
    pub fn for_host(name: &str, secret: SecretKey, algorithm: Algorithm, period: u64) -> Self {
        Self {
            issuer: Some(ISSUER.to_owned()),
            account: name.to_owned(),
            secret,
            algorithm,
            period,
        }
    }

    /// The URI `setup NAME --user USER` hands out: account `NAME (USER)`, so that an app
    /// holding several users' codes (or the server's too) tells them apart.
    pub fn for_user(
        server: &str,
        user: &str,
        secret: SecretKey,
        algorithm: Algorithm,
        period: u64,
    ) -> Self {
        Self {
            account: format!("{server} ({user})"),
            ..Self::for_host(server, secret, algorithm, period)
        }
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=..&digits=6&period=..`
    /// The result holds the secret, so it is wiped on drop.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let account = utf8_percent_encode(&self.account, URI_COMPONENT).to_string();
        let mut uri = String::from("otpauth://totp/");
        if let Some(issuer) = &self.issuer {
            uri.push_str(&utf8_percent_encode(issuer, URI_COMPONENT).to_string());
            uri.push(':');
        }
        uri.push_str(&account);
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            uri.push_str("&issuer=");
            uri.push_str(&utf8_percent_encode(issuer, URI_COMPONENT).to_string());
        }
        uri.push_str(&format!(
            "&algorithm={}&digits={DIGITS}&period={}",
            self.algorithm, self.period
        ));
        Zeroizing::new(uri)
    }

    pub fn parse(input: &str) -> Result<Self, OtpauthError> {
        let url =
            url::Url::parse(input.trim()).map_err(|e| OtpauthError::Malformed(e.to_string()))?;
        if !url.scheme().eq_ignore_ascii_case("otpauth") {
            return Err(OtpauthError::NotOtpauth(url.scheme().to_owned()));
        }
        match url.host_str().map(str::to_ascii_lowercase).as_deref() {
            Some("totp") => {}
            Some("hotp") => return Err(OtpauthError::Hotp),
            other => return Err(OtpauthError::UnknownType(other.unwrap_or("").to_owned())),
        }

        let label = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        let (mut issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer.trim().to_owned()), account.trim().to_owned()),
            None => (None, label.trim().to_owned()),
        };

        let mut secret = None;
        let mut algorithm = Algorithm::Sha1;
        let mut period = DEFAULT_PERIOD;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "secret" => {
                    secret = Some(SecretKey::from_base32(&Zeroizing::new(value.into_owned()))?)
                }
                "issuer" if issuer.is_none() => issuer = Some(value.into_owned()),
                "digits" if value.trim() != "6" => {
                    return Err(OtpauthError::Digits(value.chars().take(10).collect()));
                }
                "algorithm" => {
                    algorithm = value
                        .parse()
                        .map_err(|_| OtpauthError::Algorithm(value.chars().take(20).collect()))?;
                }
                "period" => {
                    period = value
                        .trim()
                        .parse()
                        .ok()
                        .and_then(|p| validate_period(p).ok())
                        .ok_or_else(|| OtpauthError::Period(value.chars().take(20).collect()))?;
                }
                _ => {}
            }
        }
        Ok(Self {
            issuer: issuer.filter(|i| !i.is_empty()),
            account,
            secret: secret.ok_or(OtpauthError::NoSecret)?,
            algorithm,
            period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn builds_the_setup_uri_exactly() {
        let uri = OtpauthUri::for_host(
            "web",
            SecretKey::from_base32(RFC_SECRET).unwrap(),
            Algorithm::Sha1,
            30,
        );
        assert_eq!(
            uri.to_uri().as_str(),
            "otpauth://totp/knock-totp:web?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=knock-totp&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn builds_a_user_uri_with_an_encoded_label_and_parses_it_back() {
        let uri = OtpauthUri::for_user(
            "web",
            "alice",
            SecretKey::from_base32(RFC_SECRET).unwrap(),
            Algorithm::Sha256,
            60,
        );
        let text = uri.to_uri();
        assert_eq!(
            text.as_str(),
            "otpauth://totp/knock-totp:web%20%28alice%29?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=knock-totp&algorithm=SHA256&digits=6&period=60"
        );
        let parsed = OtpauthUri::parse(&text).unwrap();
        assert_eq!(parsed, uri);
        assert_eq!(parsed.account, "web (alice)");
        assert_eq!(parsed.issuer.as_deref(), Some(ISSUER));
    }

    #[test]
    fn round_trips() {
        let original = OtpauthUri {
            issuer: Some("ACME Co".into()),
            account: "alice@example.com".into(),
            secret: SecretKey::generate(),
            algorithm: Algorithm::Sha256,
            period: 60,
        };
        assert_eq!(OtpauthUri::parse(&original.to_uri()).unwrap(), original);
    }

    #[test]
    fn parses_google_authenticator_style_uris() {
        let uri = OtpauthUri::parse(
            "otpauth://totp/Example:alice@google.com?secret=jbsw y3dp-ehpk3pxp&issuer=Example",
        )
        .unwrap();
        assert_eq!(uri.issuer.as_deref(), Some("Example"));
        assert_eq!(uri.account, "alice@google.com");
        assert_eq!(uri.algorithm, Algorithm::Sha1);
        assert_eq!(uri.period, 30);
        assert_eq!(
            uri.secret,
            SecretKey::from_base32("JBSWY3DPEHPK3PXP").unwrap()
        );

        let bare = OtpauthUri::parse("otpauth://totp/web?secret=LPI3UVRWMUTRNDBD").unwrap();
        assert_eq!((bare.issuer, bare.account.as_str()), (None, "web"));
        let padded =
            OtpauthUri::parse("OTPAUTH://TOTP/a%20b?secret=LPI3UVRWMUTRNDBD%3D%3D&period=5")
                .unwrap();
        assert_eq!((padded.account.as_str(), padded.period), ("a b", 5));
    }

    #[test]
    fn rejects_what_cannot_make_ports() {
        let cases: [(&str, OtpauthError); 9] = [
            (
                "otpauth://totp/x?secret=LPI3UVRWMUTRNDBD&digits=8",
                OtpauthError::Digits("8".into()),
            ),
            (
                "otpauth://hotp/x?secret=LPI3UVRWMUTRNDBD&counter=1",
                OtpauthError::Hotp,
            ),
            ("otpauth://totp/x?issuer=a", OtpauthError::NoSecret),
            (
                "https://example.com/?secret=LPI3UVRWMUTRNDBD",
                OtpauthError::NotOtpauth("https".into()),
            ),
            (
                "otpauth://totp/x?secret=LPI3",
                OtpauthError::Secret(SecretError::TooShort { bits: 16 }),
            ),
            (
                "otpauth://totp/x?secret=LPI3UVRWMUTRNDB1",
                OtpauthError::Secret(SecretError::InvalidBase32),
            ),
            (
                "otpauth://totp/x?secret=LPI3UVRWMUTRNDBD&algorithm=MD5",
                OtpauthError::Algorithm("MD5".into()),
            ),
            (
                "otpauth://totp/x?secret=LPI3UVRWMUTRNDBD&period=0",
                OtpauthError::Period("0".into()),
            ),
            (
                "otpauth://steam/x?secret=LPI3UVRWMUTRNDBD",
                OtpauthError::UnknownType("steam".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(OtpauthUri::parse(input), Err(expected), "{input}");
        }
        assert!(matches!(
            OtpauthUri::parse("not a uri"),
            Err(OtpauthError::Malformed(_))
        ));
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let err =
            OtpauthUri::parse("otpauth://totp/x?secret=GEZDGNBVGY3TQOJ1&digits=8").unwrap_err();
        assert!(!err.to_string().contains("GEZD"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn build_then_parse_round_trips(
            bytes in proptest::collection::vec(any::<u8>(), 10..64),
            issuer in proptest::option::of("[A-Za-z0-9 ._@-]{1,20}"),
            account in "[A-Za-z0-9 ._@+-]{1,30}",
            algorithm in prop_oneof![Just(Algorithm::Sha1), Just(Algorithm::Sha256), Just(Algorithm::Sha512)],
            period in 1u64..=86_400,
        ) {
            let issuer = issuer.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty());
            let account = account.trim().to_owned();
            // A bare "." or ".." label is a dot segment that URL parsers drop, even encoded.
            prop_assume!(!account.is_empty() && account != "." && account != "..");
            let original = OtpauthUri {
                issuer,
                account,
                secret: SecretKey::from_bytes(bytes).unwrap(),
                algorithm,
                period,
            };
            prop_assert_eq!(OtpauthUri::parse(&original.to_uri()).unwrap(), original);
        }

        #[test]
        fn parser_never_panics(input in ".{0,200}") {
            let _ = OtpauthUri::parse(&input);
            let _ = SecretKey::from_base32(&input);
        }
    }
}
