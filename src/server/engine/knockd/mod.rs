//! The knockd engine: knockd.conf with one door per window, validated and reloaded in knockd.

pub mod conf;
pub mod process;
