//! What an engine does when other engines share its store ([`Store::is_shared`]): it
//! hears their changes through the store's signals, looks for work on a slow poll in case
//! a signal was missed, and renews the leases of the executions it runs, also while a
//! long step body runs between two commits.
//!
//! Invariants:
//! - Every signal wakes the timer service (ready work, which it claims with
//!   [`Store::acquire`]) or the result waiters of the execution that finished; signals
//!   that may have been lost wake all of them, and so does nothing worse than a reread.
//! - The lease of every running activation is renewed every third of the lease TTL, so
//!   an engine that is alive keeps what it runs; one that stops renewing (it died, or
//!   lost its connection) has its executions taken over once the TTL has run out.
//!
//! [`Store::is_shared`]: crate::Store::is_shared
//! [`Store::acquire`]: crate::Store::acquire

use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::shared::Shared;
use crate::store::StoreSignal;

/// Starts the engine's background work for a shared store.
pub(super) fn start(shared: &Arc<Shared>) {
    if let Some(signals) = shared.store.signals() {
        tokio::spawn(listen(shared.clone(), signals));
    }
    tokio::spawn(poll(shared.clone()));
    tokio::spawn(renew(shared.clone()));
}

/// Runs `future` until it ends or the engine shuts down (`None`).
async fn unless_shutdown<F: Future>(shared: &Shared, future: F) -> Option<F::Output> {
    let shutdown = shared.shutdown_signal.notified();
    tokio::pin!(shutdown);
    shutdown.as_mut().enable();
    if shared.is_shutting_down() {
        return None;
    }
    tokio::select! {
        output = future => Some(output),
        _ = shutdown => None,
    }
}

async fn listen(shared: Arc<Shared>, mut signals: Receiver<StoreSignal>) {
    while let Some(received) = unless_shutdown(&shared, signals.recv()).await {
        match received {
            Ok(StoreSignal::Ready) => shared.timers.changed.notify_one(),
            Ok(StoreSignal::Finished(id)) => shared.notify_done(&id),
            Ok(StoreSignal::Missed) | Err(RecvError::Lagged(_)) => {
                shared.notify_all_done();
                shared.timers.changed.notify_one();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn poll(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(shared.config.poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while unless_shutdown(&shared, ticks.tick()).await.is_some() {
        shared.timers.changed.notify_one();
    }
}

async fn renew(shared: Arc<Shared>) {
    let ttl = shared.config.lease_ttl;
    let period = (ttl / 3).max(std::time::Duration::from_millis(1));
    while unless_shutdown(&shared, tokio::time::sleep(period))
        .await
        .is_some()
    {
        let ids = shared.queue().running_ids();
        if ids.is_empty() {
            continue;
        }
        let now = shared.clock.now();
        let until = now.saturating_add(ttl);
        match shared.store.renew(shared.owner, &ids, now, until).await {
            Ok(lost) => {
                for id in lost {
                    // Its next commit is refused and the activation dropped: the engine
                    // that took it over runs it now.
                    tracing::warn!(execution = %id, "lease taken over by another engine");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew leases; retrying"),
        }
    }
}
