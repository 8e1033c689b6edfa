//! knock-totp: time-based port knocking, in four layers whose arrows point down only:
//! [`cli`] (the command line) uses [`server`] (the daemon and its engines) and [`client`]
//! (profiles, secret stores, knocking), which use [`core`] (pure codes, ports, windows,
//! secrets, URIs). [`error`], [`log`], [`clock`] and [`fsutil`] serve every layer.

pub mod cli;
pub mod client;
pub mod clock;
pub mod core;
pub mod error;
pub mod fsutil;
pub mod log;
pub mod server;
