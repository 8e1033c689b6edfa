//! One module per subcommand, each with a `run(ctx, args)`.

pub mod add;
pub mod code;
pub mod completions;
pub mod knock;
pub mod list;
pub mod ports;
pub mod proxy;
pub mod remove;
pub mod server;
pub mod setup;
pub mod show;
pub mod ssh;
