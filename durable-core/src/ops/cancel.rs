//! Cancelling an execution and the executions it started: what a batch does to the child
//! items still in flight when it completes early, and what
//! [`Engine::cancel`](crate::Engine::cancel) does.
//!
//! Cancelling commits `Cancelled` on the execution's record, conditional on its sequence
//! number as read (an engine running it has its next commit refused, finds it
//! cancelled and runs no further workflow code), with a delivery that settles its
//! parent's operation as cancelled (skipped when the parent has settled it already, as a
//! batch does before cancelling). Then its unfinished children are cancelled the same
//! way. The record keeps its last frame, for inspection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::StoreError;
use crate::record::{
    Commit, Delivery, Event, HistoryEntry, ListFilter, OperationRef, OperationState, Settlement,
    Status,
};
use crate::store::Store;
use crate::time::Timestamp;

/// How many children are read per store call while cancelling.
const PAGE: usize = 256;

/// What cancelling did: the executions it cancelled and those its deliveries woke.
#[derive(Debug, Default)]
pub(crate) struct Cancelled {
    /// The executions now `Cancelled`, the one asked for first.
    pub cancelled: Vec<String>,
    /// Parents woken by the settlement of their operation.
    pub woken: Vec<String>,
}

/// Cancels execution `id` with `reason`, and its unfinished descendants; an execution
/// that has finished (or does not exist) is left as it is.
pub(crate) fn cancel_tree<'a>(
    store: &'a Arc<dyn Store>,
    id: &'a str,
    reason: &'a str,
    now: Timestamp,
    done: &'a mut Cancelled,
) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
    Box::pin(async move {
        cancel_one(store, id, reason, now, done).await?;
        let mut after: Option<String> = None;
        loop {
            let mut filter = ListFilter::all().parent(id).limit(PAGE);
            if let Some(after) = &after {
                filter = filter.after(after.clone());
            }
            let page = store.list(&filter).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.id.clone());
            let full = page.len() == PAGE;
            for child in page.into_iter().filter(|c| !c.status.is_terminal()) {
                let why = format!("its parent {id:?} was cancelled");
                cancel_tree(store, &child.id, &why, now, done).await?;
            }
            if !full {
                return Ok(());
            }
        }
    })
}

/// Commits `Cancelled` on execution `id` unless it has finished, retrying while an
/// engine running it commits in between.
async fn cancel_one(
    store: &Arc<dyn Store>,
    id: &str,
    reason: &str,
    now: Timestamp,
    done: &mut Cancelled,
) -> Result<(), StoreError> {
    loop {
        let Some(old) = store.load(id).await? else {
            return Ok(());
        };
        if old.status.is_terminal() {
            return Ok(());
        }
        let mut record = old.clone();
        record.seq = old.seq + 1;
        record.status = Status::Cancelled;
        record.wake_at = None;
        record.awaiting = Vec::new();
        record.message = Some(reason.to_owned());
        record.updated_at = now;
        record.history_next = old.history_next + 1;
        let mut commit = Commit::new(record, old.seq);
        commit.history.push(HistoryEntry {
            number: old.history_next,
            at: now,
            point: old.position.as_ref().map(|p| p.point),
            event: Event::Cancelled {
                reason: reason.to_owned(),
            },
        });
        if let Some(parent) = &old.parent {
            commit.deliveries.push(Delivery {
                to: OperationRef::Key {
                    execution: parent.execution.clone(),
                    key: parent.operation.clone(),
                },
                settlement: Settlement::Settle(OperationState::Cancelled),
                at: now,
            });
        }
        match store.commit(commit).await {
            Ok(committed) => {
                done.cancelled.push(id.to_owned());
                done.woken.extend(committed.woken);
                return Ok(());
            }
            // An engine running it committed first: read it again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}
