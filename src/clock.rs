//! The wall clock, which TOTP codes follow: the one place that reads it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::UserError;

/// Time since the unix epoch, with sub-second precision (window edges need it).
pub fn wall_clock() -> anyhow::Result<Duration> {
    let now = SystemTime::now();
    #[cfg(feature = "test-clock")]
    let now = test_clock::shifted(now)?;
    now.duration_since(UNIX_EPOCH).map_err(|_| {
        UserError::runtime("the system clock is set before 1970")
            .with_hint("fix the clock (TOTP needs it within a few seconds of the server's)")
            .into()
    })
}

/// Builds with the `test-clock` feature (the integration tests', never a release's) move the
/// wall clock by `KNOCK_TOTP_TEST_CLOCK_OFFSET` seconds (signed), so that tests can start the
/// daemon with its clock behind or ahead without touching the machine's.
#[cfg(feature = "test-clock")]
mod test_clock {
    use std::time::{Duration, SystemTime};

    use crate::error::UserError;

    pub const OFFSET_VAR: &str = "KNOCK_TOTP_TEST_CLOCK_OFFSET";

    pub fn shifted(now: SystemTime) -> anyhow::Result<SystemTime> {
        let Some(value) = std::env::var_os(OFFSET_VAR) else {
            return Ok(now);
        };
        let offset: i64 = value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
            UserError::usage(format!("{OFFSET_VAR} is not a whole number of seconds"))
        })?;
        let by = Duration::from_secs(offset.unsigned_abs());
        let moved = if offset >= 0 {
            now.checked_add(by)
        } else {
            now.checked_sub(by)
        };
        Ok(moved.ok_or_else(|| UserError::usage(format!("{OFFSET_VAR} is out of range")))?)
    }
}

#[cfg(test)]
mod tests {
    /// Without the test-clock feature (every release build) the offset variable is never
    /// read: the clock is the system's.
    #[cfg(not(feature = "test-clock"))]
    #[test]
    fn a_build_without_the_test_clock_ignores_the_offset() {
        std::env::set_var("KNOCK_TOTP_TEST_CLOCK_OFFSET", "-100000");
        let ours = super::wall_clock().unwrap();
        std::env::remove_var("KNOCK_TOTP_TEST_CLOCK_OFFSET");
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(system.abs_diff(ours) < std::time::Duration::from_secs(60));
    }
}
