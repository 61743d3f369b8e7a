//! Completing a batch: committing why, cancelling what is in flight, gathering the
//! result from the items' records.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{item_record, put, Pending, Setup, StoredFailure};
use crate::codec::decode_value;
use crate::execution::{Interrupt, PointRun, Progress};
use crate::ops::batch::{BatchItem, BatchResult, ItemError, ItemStatus};
use crate::ops::cancel::{cancel_tree, Cancelled};
use crate::ops::child::{child_id, ChildError};
use crate::record::{
    BatchState, CompletionReason, Event, Expect, OperationKind, OperationRecord, OperationState,
    PointState,
};

/// How many item records are read per store call when the result is gathered.
const PAGE: usize = 1024;

/// Completes the batch: commits why (cancelling the items in flight) unless that is
/// committed already, cancels the children still running, and gives the result.
pub(super) async fn finish<B, T>(
    run: PointRun,
    setup: &Setup<'_, B>,
    mut state: BatchState,
    mut pending: Pending<T>,
) -> Result<BatchResult<T>, Interrupt>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let reason = state.done.unwrap_or(CompletionReason::AllCompleted);
    let store = run.ctx().runtime().store().clone();
    let committed_done = matches!(
        run.ctx().record().position.as_ref().map(|p| &p.state),
        Some(PointState::Batch(s)) if s.done.is_some()
    );
    if !committed_done {
        for slot in &state.in_flight {
            let key = state.item_key(slot.index);
            let (stored, expect) = if slot.attempt == 0 {
                (
                    store.operation(run.execution_id(), &key).await?,
                    Expect::Pending,
                )
            } else {
                (None, Expect::Absent)
            };
            let mut record = stored.unwrap_or_else(|| {
                item_record(
                    &run,
                    setup,
                    &state,
                    slot.index,
                    None,
                    OperationState::Cancelled,
                )
            });
            record.state = OperationState::Cancelled;
            record.updated_at = run.now();
            pending.changes.push(put(record, expect));
        }
        pending.events.push(Event::BatchFinished {
            name: setup.name.clone(),
            reason,
            succeeded: state.succeeded,
            failed: state.failed,
            cancelled: state.in_flight.len() as u64,
        });
        state.done = Some(reason);
        run.commit_progress(Progress {
            operations: std::mem::take(&mut pending.changes),
            events: std::mem::take(&mut pending.events),
            ..Progress::to(PointState::Batch(state.clone()))
        })
        .await?;
    }
    // The children of items cancelled: cancelling again after a crash is harmless.
    let why = format!(
        "batch `{}` of execution {:?} completed early ({})",
        setup.name,
        run.execution_id(),
        reason.as_str()
    );
    let mut cancelled = Cancelled::default();
    for slot in state.in_flight.iter().filter(|s| s.attempt == 0) {
        let id = child_id(run.execution_id(), &state.item_key(slot.index));
        cancel_tree(&store, &id, &why, run.now(), &mut cancelled).await?;
    }
    let runtime = run.ctx().runtime();
    for id in &cancelled.cancelled {
        runtime.finished(id);
    }
    runtime.committed(run.execution_id(), None, &cancelled.woken);
    let result = gather::<T>(&run, setup, &state, reason).await?;
    run.complete(&result, Vec::new()).await
}

/// Reads every item's record, in input order, into the result.
async fn gather<T: serde::de::DeserializeOwned>(
    run: &PointRun,
    setup: &Setup<'_, impl Sized>,
    state: &BatchState,
    reason: CompletionReason,
) -> Result<BatchResult<T>, Interrupt> {
    let store = run.ctx().runtime().store();
    let prefix = format!("{}.", state.key);
    let total = usize::try_from(state.total).unwrap_or(usize::MAX);
    let mut items: Vec<BatchItem<T>> = Vec::with_capacity(total.min(1 << 20));
    let mut after = state.key.clone();
    'pages: loop {
        let page = store
            .operations(run.execution_id(), Some(&after), PAGE)
            .await?;
        let full = page.len() == PAGE;
        for op in page {
            if !op.key.starts_with(&prefix) {
                break 'pages;
            }
            after.clone_from(&op.key);
            items.push(item_of(setup, op)?);
        }
        if !full {
            break;
        }
    }
    let started = usize::try_from(state.next).unwrap_or(usize::MAX);
    let in_order = items.iter().enumerate().all(|(i, item)| item.index == i);
    if items.len() != started || !in_order {
        return Err(Interrupt::Failed(format!(
            "batch `{}`: {} item records found for {started} items started",
            setup.name,
            items.len()
        )));
    }
    items.extend((started..total).map(|index| BatchItem {
        index,
        status: ItemStatus::NotStarted,
        value: None,
        error: None,
        completion_order: None,
        execution: None,
    }));
    Ok(BatchResult::new(items, reason))
}

/// One item of the result, from its record.
fn item_of<T: serde::de::DeserializeOwned>(
    setup: &Setup<'_, impl Sized>,
    op: OperationRecord,
) -> Result<BatchItem<T>, Interrupt> {
    let OperationKind::Item {
        index,
        order,
        execution,
        workflow,
        ..
    } = op.kind
    else {
        return Err(Interrupt::Failed(format!(
            "batch `{}`: operation {:?} is not an item",
            setup.name, op.key
        )));
    };
    let index = usize::try_from(index).unwrap_or(usize::MAX);
    let undecodable = |e: crate::error::CodecError| match &execution {
        Some(id) => Ok(ItemError::Child(ChildError::Undecodable {
            workflow: workflow.clone().unwrap_or_default(),
            id: id.clone(),
            message: e.to_string(),
        })),
        None => Err(Interrupt::unreadable(
            "cannot decode the value of a batch item",
            e,
        )),
    };
    let mut item = BatchItem {
        index,
        status: ItemStatus::Succeeded,
        value: None,
        error: None,
        completion_order: order,
        execution: execution.clone(),
    };
    match op.state {
        OperationState::Succeeded { payload } => match decode_value::<T>(&payload) {
            Ok(value) => item.value = Some(value),
            Err(e) => {
                item.status = ItemStatus::Failed;
                item.error = Some(undecodable(e)?);
            }
        },
        OperationState::Failed { error } => {
            let stored: StoredFailure = decode_value(&error)
                .map_err(|e| Interrupt::unreadable("cannot decode the error of a batch item", e))?;
            item.status = ItemStatus::Failed;
            item.error = Some(stored.error);
            if let Some(output) = stored.output {
                match decode_value::<T>(&output) {
                    Ok(value) => item.value = Some(value),
                    Err(e) => item.error = Some(undecodable(e)?),
                }
            }
        }
        _ => {
            item.status = ItemStatus::Cancelled;
            item.completion_order = None;
        }
    }
    Ok(item)
}
