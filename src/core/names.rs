//! Names users give hosts and servers, and addresses: what is accepted and why not.

use std::net::IpAddr;

pub fn validate_host_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
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
            name.chars().take(64).collect::<String>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["web", "web-1.example_a", "A.B"] {
            assert!(validate_host_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", ".", "a b", "ü", "a:b"] {
            assert!(validate_host_name(bad).is_err(), "{bad}");
        }
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
}
