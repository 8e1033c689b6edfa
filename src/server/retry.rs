//! Retrying a call that may fail for a while (a cloud CLI), with backoff.

use std::time::{Duration, Instant};

/// Calls `op` until it succeeds, `deadline` passes or `pause` says to stop (it sleeps and
/// returns false when the server is shutting down). Backs off 1, 2, 4, 8, 8... seconds and
/// reports each distinct failure once. A `permanent` failure is not retried.
pub fn retrying<T, E: Clone + PartialEq>(
    deadline: Instant,
    pause: &mut dyn FnMut(Duration) -> bool,
    report: &mut dyn FnMut(&E),
    permanent: fn(&E) -> bool,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut backoff = Duration::from_secs(1);
    let mut reported: Vec<E> = Vec::new();
    loop {
        match op() {
            Ok(value) => return Ok(value),
            Err(e) => {
                if !reported.contains(&e) {
                    report(&e);
                    reported.push(e.clone());
                }
                if permanent(&e) || Instant::now() + backoff > deadline || !pause(backoff) {
                    return Err(e);
                }
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    }
}
