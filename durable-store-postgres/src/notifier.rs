//! Announcing new executions to the other engines (`r` notifications) after the
//! transaction that created them, rather than inside it.
//!
//! PostgreSQL serialises the commits of all transactions that send a notification, WAL
//! flush included (a transaction that notifies holds a database-wide lock until it has
//! committed), so a notification in every creating transaction would let only one
//! creation commit per flush. An announcement is a hint: an engine that hears it looks
//! for ready work, and engines look on a slow poll anyway. So a creation is announced
//! after it committed, by a task that sends one notification for all the creations made
//! since its last one, from a connection that does not wait for flushes.
//!
//! Invariants:
//! - An announcement is sent after the creations it announces committed, never before.
//! - Every creation is followed by an announcement (while the process lives, and unless
//!   sending fails: then the slow poll finds it): `pending` is set before the task is
//!   woken, and the task clears it before it sends.
//! - Closing sends what is pending before it returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::convert::READY_PAYLOAD;

struct Shared {
    pending: AtomicBool,
    closed: AtomicBool,
    wake: Notify,
}

/// The task that announces new executions.
pub(crate) struct Notifier {
    shared: Arc<Shared>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Notifier {
    /// Starts the task, which sends on `channel` through `pool`.
    pub fn start(pool: Pool, channel: String) -> Notifier {
        let shared = Arc::new(Shared {
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(shared.clone(), pool, channel));
        Notifier {
            shared,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Announces (soon) that executions are ready to run: call after the change committed.
    pub fn ready(&self) {
        self.shared.pending.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// Sends what is pending, then stops the task.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

async fn run(shared: Arc<Shared>, pool: Pool, channel: String) {
    loop {
        if shared.pending.swap(false, Ordering::SeqCst) {
            if let Err(e) = send(&pool, &channel).await {
                // The other engines find the new executions on their slow poll.
                tracing::debug!(error = %e, "could not announce new executions");
            }
            continue;
        }
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        shared.wake.notified().await;
    }
}

async fn send(pool: &Pool, channel: &str) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let query = client
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(|e| e.to_string())?;
    client
        .execute(&query, &[&channel, &READY_PAYLOAD])
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
