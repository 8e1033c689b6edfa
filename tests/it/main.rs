//! The integration tests: they drive the real `knock-totp` binary with an isolated config.

mod client;
mod generated;
mod hardening;
mod keyring;
mod knock_e2e;
mod knock_local;
mod packaging;
mod server;
mod setup;
mod support;
