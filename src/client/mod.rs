//! The client: host profiles, secret stores, and knocking a target.

pub mod handoff;
pub mod hosts;
pub mod knock;
pub mod store;
pub mod wire;
