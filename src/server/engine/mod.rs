//! Knock engines: what turns the doors of a window into something that opens the port.

pub mod knockd;
