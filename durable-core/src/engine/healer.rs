//! The healer: the one task that waits out a store's failure. After a failure it waits
//! a backoff on the engine's clock, asks the store to [`recover`](crate::Store::recover),
//! and ends a round, which every waiting commit, activation and result waiter then
//! retries (see `health`).
//!
//! Invariants:
//! - One round per batch of failures: failures reported while a round is under way ask
//!   for exactly one more.
//! - The backoff doubles while rounds follow each other with no write succeeding in
//!   between, from [`FIRST_DELAY`] to [`MAX_DELAY`], and starts again from
//!   [`FIRST_DELAY`] after a success.

use std::sync::Arc;
use std::time::Duration;

use super::health::error_chain;
use super::shared::Shared;

/// The first retry of a failed write waits this long.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The longest wait between retries of failed writes: how long a store that healed may
/// stay unused at most.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The backoff before round `n` (counted from 0) of a run of failures.
fn delay(n: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(MAX_DELAY)
}

/// The healer: one round per batch of failures, each after a backoff on the engine's
/// clock, each asking the store to recover before the waiting writes retry.
pub(super) async fn heal(shared: Arc<Shared>) {
    let monitor = &shared.health;
    let mut streak = 0u32;
    let mut runs = monitor.runs();
    loop {
        let shutdown = shared.shutdown_signal.notified();
        tokio::pin!(shutdown);
        shutdown.as_mut().enable();
        if shared.is_shutting_down() {
            return;
        }
        tokio::select! {
            _ = monitor.round_asked() => {}
            _ = &mut shutdown => return,
        }
        // A new run of failures began since the last round: a write succeeded between.
        let now_runs = monitor.runs();
        if now_runs != runs {
            streak = 0;
            runs = now_runs;
        }
        let at = shared.clock.now().saturating_add(delay(streak));
        streak = streak.saturating_add(1);
        // With an auto-advancing test clock, move time on when every running activation
        // waits for this round: nothing else can happen before it.
        if shared.queue().running() <= monitor.waiting() {
            shared.clock.skip_idle_to(at);
        }
        tokio::select! {
            _ = shared.clock.sleep_until(at) => {}
            _ = &mut shutdown => return,
        }
        if let Err(e) = shared.store.recover().await {
            tracing::error!(error = %error_chain(&e), "the store could not recover; trying again later");
        }
        monitor.round_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_limit() {
        assert_eq!(delay(0), FIRST_DELAY);
        assert_eq!(delay(1), FIRST_DELAY * 2);
        assert_eq!(delay(3), FIRST_DELAY * 8);
        assert_eq!(delay(40), MAX_DELAY);
    }
}
