//! otpauth URIs: parsing never panics, and what parses builds back to an equal URI.
#![no_main]

use knock_totp::core::otpauth::OtpauthUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(uri) = OtpauthUri::parse(text) {
        let again = OtpauthUri::parse(&uri.to_uri()).expect("a built URI parses");
        assert_eq!(again.secret, uri.secret);
        assert_eq!(again.algorithm, uri.algorithm);
        assert_eq!(again.period, uri.period);
    }
});
