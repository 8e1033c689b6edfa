//! The client: host profiles, secret stores, and knocking a target.

pub mod diagnosis;
pub mod handoff;
pub mod history;
pub mod hosts;
pub mod knock;
pub mod store;
pub mod wire;
