//! knock-totp: time-based port knocking. A pure core (codes, ports, URIs) and thin adapters.

pub mod cli;
pub mod client;
pub mod clock;
pub mod cmd;
pub mod completions;
pub mod core;
pub mod error;
pub mod firewall;
pub mod fsutil;
pub mod knockd;
pub mod log;
pub mod manpages;
pub mod qr;
pub mod server;
pub mod server_config;
