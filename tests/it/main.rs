//! The integration tests: they drive the real `knock-totp` binary with an isolated config.

mod bad_input;
mod boundary_e2e;
mod client;
mod cloud_aws;
mod cloud_doors;
mod cloud_sweep;
mod dependencies;
mod diagnosis;
mod generated;
mod hardening;
mod hygiene;
mod keyring;
mod knock_e2e;
mod knock_local;
mod nft_e2e;
mod packaging;
mod readme;
mod readme_admin;
mod server;
mod server_e2e;
mod setup;
mod setup_e2e;
mod setup_users;
mod ssh_e2e;
mod support;
mod tty;
