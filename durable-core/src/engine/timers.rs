//! The timer service: enqueues executions whose wake-up time has come.
//!
//! Event-driven, never polling on an interval: it sleeps on the engine clock until the
//! store's earliest wake-up time, or until a commit sets a new one or an activation ends.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How many due executions one pass takes from the store.
const BATCH: usize = 1024;

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        let changed = shared.timers_changed.notified();
        let shutdown = shared.shutdown_signal.notified();
        if shared.is_shutting_down() {
            return;
        }
        let now = shared.clock.now();
        let next = match pass(&shared, now).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "timer service: store error, retrying in 1s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown => return,
                }
                continue;
            }
        };
        if let Some(at) = next.filter(|at| *at > now) {
            if shared.is_idle() && shared.clock.skip_idle_to(at) {
                continue;
            }
        }
        // A wake-up at or before `now` belongs to an execution that is queued or running:
        // its activation's end signals `changed`.
        let sleep = next
            .filter(|at| *at > now)
            .map(|at| shared.clock.sleep_until(at));
        tokio::select! {
            _ = changed => {}
            _ = shutdown => return,
            _ = async { match sleep { Some(s) => s.await, None => std::future::pending().await } } => {}
        }
    }
}

/// Enqueues what is due; returns the earliest wake-up time left in the store.
async fn pass(
    shared: &Shared,
    now: crate::time::Timestamp,
) -> Result<Option<crate::time::Timestamp>, crate::error::StoreError> {
    for (_, id) in shared.store.due(now, BATCH).await? {
        if !shared.is_active(&id) {
            shared.enqueue(&id);
        }
    }
    shared.store.next_wake().await
}
