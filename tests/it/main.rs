//! The integration tests: they drive the real `knock-totp` binary with an isolated config.

mod client;
mod knock_e2e;
mod knock_local;
mod support;
