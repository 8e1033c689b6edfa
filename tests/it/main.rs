//! The integration tests: they drive the real `knock-totp` binary with an isolated config.

mod client;
mod server;
mod setup;
mod support;
