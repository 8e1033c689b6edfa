//! The wall clock, which TOTP codes follow: the one place that reads it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::UserError;

/// Time since the unix epoch, with sub-second precision (window edges need it).
pub fn wall_clock() -> anyhow::Result<Duration> {
    SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| {
        UserError::runtime("the system clock is set before 1970")
            .with_hint("fix the clock (TOTP needs it within a few seconds of the server's)")
            .into()
    })
}
