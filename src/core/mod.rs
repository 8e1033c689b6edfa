//! The pure core: codes, ports, windows, secrets, URIs and names (no I/O, no clock, no CLI).

pub mod names;
pub mod otpauth;
pub mod ports;
pub mod secret;
pub mod totp;
pub mod window;
