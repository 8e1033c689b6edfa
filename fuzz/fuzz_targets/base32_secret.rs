//! Base32 secrets: parsing never panics, and accepted secrets re-encode to the same bytes.
#![no_main]

use knock_totp::core::secret::{SecretKey, MIN_SECRET_BITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = SecretKey::from_base32(text) {
        assert!(key.bits() >= MIN_SECRET_BITS);
        let again = SecretKey::from_base32(&key.to_base32()).expect("canonical form parses");
        assert_eq!(again, key);
    }
});
