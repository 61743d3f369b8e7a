//! Child items: creating their children, and settling the items whose children have
//! finished.

use super::{failed, settle, Pending, Setup};
use crate::execution::{Interrupt, PointRun};
use crate::ops::batch::ItemError;
use crate::ops::child::{child_id, start_child, ChildError};
use crate::record::{BatchState, Expect, OperationKind, OperationState, ParentLink, Status};

/// Creates the children whose operation records are committed; a child that cannot
/// start fails its item.
pub(super) async fn create_children<B, T>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    pending: &mut Pending<T>,
) -> Result<(), Interrupt> {
    for (index, child) in std::mem::take(&mut pending.to_create) {
        let key = state.item_key(index);
        let id = child_id(run.execution_id(), &key);
        let started = if run.ctx().runtime().runs(child.workflow, child.fingerprint) {
            match child.input {
                Ok(input) => {
                    let link = ParentLink {
                        execution: run.execution_id().to_owned(),
                        operation: key.clone(),
                    };
                    start_child(
                        run.ctx(),
                        &id,
                        child.workflow,
                        child.fingerprint,
                        input,
                        link,
                    )
                    .await?
                }
                Err(e) => Err(ChildError::Failed {
                    workflow: child.workflow.to_owned(),
                    id: id.clone(),
                    message: format!("its input cannot be encoded: {e}"),
                }),
            }
        } else {
            Err(ChildError::NotRegistered {
                workflow: child.workflow.to_owned(),
            })
        };
        let Some(pos) = state.in_flight.iter().position(|s| s.index == index) else {
            continue;
        };
        match started {
            Ok(()) => state.in_flight[pos].created = true,
            Err(error) => {
                let stored = run
                    .ctx()
                    .runtime()
                    .store()
                    .operation(run.execution_id(), &key);
                let stored = stored.await?;
                let settled = failed(setup, ItemError::Child(error), None)?;
                settle(
                    run,
                    setup,
                    state,
                    pos,
                    stored,
                    settled,
                    Expect::Pending,
                    pending,
                );
            }
        }
    }
    Ok(())
}

/// Settles the child items whose children have finished.
pub(super) async fn observe_children<B, T>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    pending: &mut Pending<T>,
) -> Result<(), Interrupt> {
    let store = run.ctx().runtime().store().clone();
    let children: Vec<u64> = state
        .in_flight
        .iter()
        .filter(|s| s.attempt == 0)
        .map(|s| s.index)
        .collect();
    for index in children {
        let key = state.item_key(index);
        let Some(op) = store.operation(run.execution_id(), &key).await? else {
            return Err(Interrupt::Failed(format!(
                "batch `{}`: the record of item {index} is missing from the store",
                setup.name
            )));
        };
        if op.state.is_pending() {
            continue;
        }
        let (id, workflow) = match &op.kind {
            OperationKind::Item {
                execution: Some(id),
                workflow,
                ..
            } => (id.clone(), workflow.clone().unwrap_or_default()),
            other => {
                return Err(Interrupt::Failed(format!(
                    "batch `{}`: item {index} is not a child item: {other:?}",
                    setup.name
                )))
            }
        };
        let child_error = |message: String| {
            ItemError::Child(ChildError::Failed {
                workflow: workflow.clone(),
                id: id.clone(),
                message,
            })
        };
        let settled = match &op.state {
            OperationState::Succeeded { payload } => {
                // A child that returned `Err` gave an output and failed.
                match store.load(&id).await? {
                    Some(child) if child.status == Status::Failed => {
                        let message = child.message.unwrap_or_default();
                        failed(setup, child_error(message), Some(payload.clone()))?
                    }
                    _ => op.state.clone(),
                }
            }
            OperationState::Failed { error } => {
                let message = String::from_utf8_lossy(error).into_owned();
                failed(setup, child_error(message), None)?
            }
            other => failed(
                setup,
                child_error(format!("the child ended as {other:?}")),
                None,
            )?,
        };
        let Some(pos) = state.in_flight.iter().position(|s| s.index == index) else {
            continue;
        };
        settle(
            run,
            setup,
            state,
            pos,
            Some(op),
            settled,
            Expect::Settled,
            pending,
        );
    }
    Ok(())
}
