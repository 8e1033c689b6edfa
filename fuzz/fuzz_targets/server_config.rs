//! The server configuration: loading never panics, and a loaded one saves and loads back equal.
#![no_main]

use std::path::Path;

use knock_totp::server::config::ServerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = ServerConfig::parse(text, Path::new("server.toml")) {
        let again = ServerConfig::parse(&config.to_toml(), Path::new("server.toml"))
            .expect("a saved configuration loads");
        assert_eq!(again, config);
    }
});
