//! The protocol that [`Ctx::call`](crate::Ctx::call) and [`Ctx::invoke`](crate::Ctx::invoke)
//! share: create the operation, create (or find) the execution, wait for its result.

use std::time::Duration;

use super::{create_reporting, outcome, ChildError, Creation};
use crate::canonical::same_value;
use crate::execution::{Interrupt, PointRun, Progress, Workflow};
use crate::record::{
    Event, ExecutionRecord, Expect, OperationAction, OperationChange, OperationKind,
    OperationRecord, OperationState, ParentLink, PointState, Status, MAX_ID_LEN,
};

/// Which execution a point runs.
pub(super) enum Target {
    /// A child of `call`, whose id is derived from the caller's and the operation key.
    Child,
    /// The execution with this id (`invoke`).
    Id(String),
}

/// What a child point gives.
type ChildOutcome<W> = Result<<W as Workflow>::Output, ChildError>;

/// Runs the point: on a fresh entry commits the operation (step 1), then attaches.
pub(super) async fn run_child<W: Workflow>(
    run: PointRun,
    target: Target,
    input: W::Input,
) -> Result<ChildOutcome<W>, Interrupt> {
    let key = match run.resumed_state() {
        None => {
            if !run.ctx().runtime().runs(W::NAME, W::FINGERPRINT) {
                let refused: ChildOutcome<W> = Err(ChildError::NotRegistered {
                    workflow: W::NAME.to_owned(),
                });
                return run.complete(&refused, Vec::new()).await;
            }
            let key = key(run.seq());
            let child = match &target {
                Target::Child => child_id(run.execution_id(), &key),
                Target::Id(id) => id.clone(),
            };
            if child.is_empty() || child.len() > MAX_ID_LEN {
                let refused: ChildOutcome<W> = Err(ChildError::InvalidId {
                    message: format!(
                        "an execution id must be 1 to {MAX_ID_LEN} bytes long, got {}",
                        child.len()
                    ),
                });
                return run.complete(&refused, Vec::new()).await;
            }
            let now = run.now();
            let record = OperationRecord {
                execution: run.execution_id().to_owned(),
                key: key.clone(),
                kind: OperationKind::Child {
                    execution: child.clone(),
                    workflow: W::NAME.to_owned(),
                },
                name: W::NAME.to_owned(),
                token: None,
                state: OperationState::Pending,
                heartbeat_at: None,
                created_at: now,
                updated_at: now,
            };
            // Step 1: the operation the child reports to exists before the child.
            run.commit_progress(Progress {
                events: vec![Event::ChildStarted {
                    name: W::NAME.to_owned(),
                    execution: child,
                }],
                operations: vec![change(&key, Expect::Absent, put(record))],
                ..Progress::to(PointState::Awaiting { key: key.clone() })
            })
            .await?;
            key
        }
        Some(PointState::Awaiting { key }) => key.clone(),
        Some(other) => {
            return Err(Interrupt::Failed(format!(
                "the call of workflow `{}` resumed in a state that is not a call's: {other:?}",
                W::NAME
            )))
        }
    };
    attach::<W>(run, &key, &target, input).await
}

/// How the point relates to the execution it runs.
enum Found {
    /// Started by this point, reporting to it: wait for its delivery.
    Reporting,
    /// Started elsewhere: watch its status on a timer.
    Watched(Box<ExecutionRecord>),
}

/// Gives the outcome if the operation `key` is settled; otherwise makes sure the
/// execution exists (step 2) and commits the wait for it (step 3).
async fn attach<W: Workflow>(
    run: PointRun,
    key: &str,
    target: &Target,
    input: W::Input,
) -> Result<ChildOutcome<W>, Interrupt> {
    let ctx = run.ctx();
    let store = ctx.runtime().store().clone();
    let parent = ctx.execution_id().to_owned();
    let op = store.operation(&parent, key).await?.ok_or_else(|| {
        Interrupt::Failed(format!(
            "the operation {key:?} of the call of workflow `{}` is missing from the store",
            W::NAME
        ))
    })?;
    let OperationKind::Child {
        execution: child, ..
    } = &op.kind
    else {
        return Err(Interrupt::Failed(format!(
            "the operation {key:?} of the call of workflow `{}` is not a child: {:?}",
            W::NAME,
            op.kind
        )));
    };
    let child = child.clone();
    if !op.state.is_pending() {
        // A child that returned `Err` failed, though it gave an output.
        let child_failed = store
            .load(&child)
            .await?
            .is_some_and(|record| record.status == Status::Failed);
        let outcome = outcome::<W::Output>(W::NAME, &child, &op.state);
        let word = if outcome.is_err() || child_failed {
            "failed"
        } else {
            "completed"
        };
        let event = finished::<W>(&child, word);
        let condition = change(key, Expect::Settled, OperationAction::Keep);
        return run
            .complete_with(&outcome, vec![event], vec![condition])
            .await;
    }
    let encoded = W::CODEC
        .encode_value(&input)
        .map_err(|e| Interrupt::codec("cannot encode the input of a child execution", e))?;
    let limit = ctx.runtime().limits().max_value_bytes;
    if encoded.len() > limit {
        return Err(Interrupt::Failed(format!(
            "the input of child execution {child:?} is {} bytes, over the limit of {limit} \
             (EngineBuilder::max_value_bytes); keep bulky data outside the workflow",
            encoded.len()
        )));
    }
    let link = ParentLink {
        execution: parent,
        operation: key.to_owned(),
    };
    // Step 2, idempotent by id: a parent that runs this again finds its child.
    let found = match create_reporting(ctx, &child, W::NAME, W::FINGERPRINT, encoded.clone(), &link)
        .await?
    {
        Creation::Reporting => Found::Reporting,
        Creation::Held(existing) => {
            let conflict = match target {
                Target::Child => Some(format!(
                    "an execution of workflow `{}` that is not this call's child holds it",
                    existing.workflow
                )),
                Target::Id(_) if existing.workflow != W::NAME => Some(format!(
                    "it runs workflow {:?}, not {:?}",
                    existing.workflow,
                    W::NAME
                )),
                Target::Id(_) => {
                    let stored = store.load_input(&child).await?.unwrap_or_default();
                    match same_value(&stored, &encoded, &input) {
                        Ok(true) => None,
                        Ok(false) => Some("it was started with a different input".into()),
                        Err(reason) => Some(format!("its input: {reason}")),
                    }
                }
            };
            if let Some(reason) = conflict {
                let refused: ChildOutcome<W> = Err(ChildError::IdConflict {
                    id: child.clone(),
                    reason,
                });
                let settled = OperationRecord {
                    state: OperationState::Failed {
                        error: b"the execution id is taken".to_vec(),
                    },
                    updated_at: run.now(),
                    ..op
                };
                let event = finished::<W>(&child, "not started");
                let condition = change(key, Expect::Pending, put(settled));
                return run
                    .complete_with(&refused, vec![event], vec![condition])
                    .await;
            }
            Found::Watched(existing)
        }
    };
    let now = run.now();
    let wake_at = match found {
        Found::Reporting => None,
        Found::Watched(existing) if existing.status.is_terminal() => {
            return take_finished::<W>(run, key, op, &existing).await;
        }
        Found::Watched(_) => {
            Some(now.saturating_add(watch_interval(now.saturating_duration_since(op.created_at))))
        }
    };
    let record = ctx.record();
    if record.status == Status::Suspended
        && record.awaiting == [key]
        && record.wake_at.is_none_or(|at| at > now)
    {
        // Woken early: the wait is committed.
        return Err(Interrupt::Suspended);
    }
    // Step 3. A child that finished since the read makes this commit fail rather than
    // suspend on an operation that will never wake it.
    run.commit_progress(Progress {
        wake_at,
        awaiting: vec![key.to_owned()],
        operations: vec![change(key, Expect::Pending, OperationAction::Keep)],
        ..Progress::to(PointState::Awaiting {
            key: key.to_owned(),
        })
    })
    .await?;
    Err(Interrupt::Suspended)
}

/// Takes the result of a watched execution that has finished, settling the operation.
async fn take_finished<W: Workflow>(
    run: PointRun,
    key: &str,
    op: OperationRecord,
    finished_record: &ExecutionRecord,
) -> Result<ChildOutcome<W>, Interrupt> {
    let state = match &finished_record.output {
        Some(output) => OperationState::Succeeded {
            payload: output.clone(),
        },
        None => OperationState::Failed {
            error: finished_record
                .message
                .clone()
                .unwrap_or_default()
                .into_bytes(),
        },
    };
    let outcome = outcome::<W::Output>(W::NAME, &finished_record.id, &state);
    let word = if outcome.is_err() || finished_record.status == Status::Failed {
        "failed"
    } else {
        "completed"
    };
    let event = finished::<W>(&finished_record.id, word);
    let settled = OperationRecord {
        state,
        updated_at: run.now(),
        ..op
    };
    let condition = change(key, Expect::Pending, put(settled));
    run.complete_with(&outcome, vec![event], vec![condition])
        .await
}

/// How long a point that watches an execution started elsewhere waits before it looks
/// again, after watching for `waited`: a tenth of that, from one second to one minute.
fn watch_interval(waited: Duration) -> Duration {
    (waited / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The operation key of a call entered afresh after the commit with sequence number
/// `seq`: unique within the execution, since no two entries of points follow the same
/// commit, the same when the entry runs again after a crash, and in creation order (see
/// `record::ordered_key`).
fn key(seq: u64) -> String {
    crate::record::ordered_key("w", seq)
}

/// The id of the child that the call `key` of execution `parent` starts.
pub(crate) fn child_id(parent: &str, key: &str) -> String {
    format!("{parent}/{key}")
}

fn put(record: OperationRecord) -> OperationAction {
    OperationAction::Put(Box::new(record))
}

fn change(key: &str, expect: Expect, action: OperationAction) -> OperationChange {
    OperationChange {
        key: key.to_owned(),
        expect,
        action,
    }
}

fn finished<W: Workflow>(child: &str, outcome: &str) -> Event {
    Event::ChildFinished {
        name: W::NAME.to_owned(),
        execution: child.to_owned(),
        outcome: outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{child_id, key, watch_interval};

    #[test]
    fn child_ids_follow_the_parent_and_sort_in_creation_order() {
        assert_eq!(child_id("order-7", &key(5)), "order-7/w05");
        let keys: Vec<String> = [1u64, 15, 16, 255, 256, u64::MAX]
            .iter()
            .map(|&s| key(s))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn watching_slows_down_from_a_second_to_a_minute() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(watch_interval(secs(0)), secs(1));
        assert_eq!(watch_interval(secs(50)), secs(5));
        assert_eq!(watch_interval(secs(86_400)), secs(60));
    }
}
