//! hosts.toml: loading never panics, and a loaded file saves and loads back equal.
#![no_main]

use std::path::Path;

use knock_totp::client::hosts::HostsFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = HostsFile::parse(text, Path::new("hosts.toml")) {
        let saved = file.to_toml().expect("a loaded file serialises");
        let again = HostsFile::parse(&saved, Path::new("hosts.toml")).expect("saved file loads");
        assert_eq!(again, file);
    }
});
