//! knock-totp: time-based port knocking. A pure core (codes, ports, URIs) and thin adapters.

pub mod cli;
pub mod client;
pub mod clock;
pub mod core;
pub mod error;
pub mod fsutil;
pub mod log;
pub mod server;
