//! The cloud CLIs the server calls (aws today).

pub mod aws;
