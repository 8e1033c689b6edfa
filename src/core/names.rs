//! Names users give hosts and servers, and addresses: what is accepted and why not.

use std::net::IpAddr;

/// Longest host or server name: a DNS label's limit. The name goes into file names, unit
/// names and cloud rule names, which all have limits of their own.
pub const MAX_HOST_NAME_LEN: usize = 63;

pub fn validate_host_name(name: &str) -> Result<(), String> {
    let shown = || name.chars().take(MAX_HOST_NAME_LEN + 1).collect::<String>();
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(format!(
            "invalid host name {:?}...: longer than {MAX_HOST_NAME_LEN} characters",
            shown()
        ));
    }
    if name.starts_with('-') {
        // It would read as an option to the programs the name is passed to (ssh, systemctl).
        return Err(format!(
            "invalid host name {:?}: it must not start with '-'",
            shown()
        ));
    }
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid host name {:?}: use letters, digits, '.', '_' and '-' only",
            shown()
        ))
    }
}

/// An IP literal (v4, or v6 with or without brackets) or a DNS name.
pub fn validate_address(address: &str) -> Result<(), String> {
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = address.strip_suffix('.').unwrap_or(address);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid address {:?}: give a DNS name or an IPv4/IPv6 address",
            address.chars().take(64).collect::<String>()
        ))
    }
}

pub fn validate_user(user: &str) -> Result<(), String> {
    // The user goes to ssh's -l: nothing that ssh could read as an option or a second word.
    if user.is_empty()
        || user.starts_with('-')
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Err(format!(
            "invalid user name {:?}",
            user.chars().take(64).collect::<String>()
        ))
    } else {
        Ok(())
    }
}

/// Six hex digits of the SHA-256 of `name`: appended to a shortened name (cloud rule names,
/// iptables chains) so that two names that shorten to the same text never share rules.
pub fn name_hash(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    format!("{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let longest = "a".repeat(MAX_HOST_NAME_LEN);
        for ok in ["web", "web-1.example_a", "A.B", "web-", &longest] {
            assert!(validate_host_name(ok).is_ok(), "{ok}");
        }
        let too_long = "a".repeat(MAX_HOST_NAME_LEN + 1);
        for bad in [
            "", "a/b", "..", ".", "a b", "ü", "a:b", "-web", "-", &too_long,
        ] {
            assert!(validate_host_name(bad).is_err(), "{bad}");
        }
        let err = validate_host_name(&"a".repeat(240)).unwrap_err();
        assert!(err.contains("longer than 63"), "{err}");
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "::1",
            "[2001:db8::1]",
            "example.com",
            "web",
            "a-b.example.com.",
        ] {
            assert!(validate_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a b",
            "http://x",
            "a/b",
            "999.1.1.1..",
        ] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_hashes_tell_apart_names_that_share_a_beginning() {
        assert_eq!(name_hash("web"), name_hash("web"));
        assert_ne!(
            name_hash("production-web-01"),
            name_hash("production-web-02")
        );
        assert_eq!(name_hash("production-web-01").len(), 6);
    }
}
