//! Knock engines: what turns the doors of a window into something that opens the port.

pub mod knockd;

use crate::core::window::Window;
use crate::server::doors::ActiveDoor;
use crate::server::rotation::StopSignal;

/// A knock engine, driven by the rotation loop.
pub trait Engine {
    /// Checks what must hold before anything changes (in a dry run, only reports).
    fn preflight(&mut self, dry_run: bool) -> anyhow::Result<()>;

    /// Puts `doors`, the doors of `window`, in place. `first` is the daemon's first rotation,
    /// which reconciles with what an earlier run left.
    fn apply(
        &mut self,
        window: Window,
        doors: &[ActiveDoor],
        stop: &mut StopSignal,
        first: bool,
    ) -> anyhow::Result<()>;

    /// Prints what `apply` would do, changing nothing.
    fn dry_run(&mut self, window: Window, doors: &[ActiveDoor]) -> anyhow::Result<()>;

    /// Whether `error` from `apply` must end the daemon (otherwise it retries next window).
    fn is_fatal(&self, _error: &anyhow::Error) -> bool {
        false
    }

    /// Leaves the firewall safe when the daemon stops or fails.
    fn shut_down(&mut self) -> anyhow::Result<()>;
}
