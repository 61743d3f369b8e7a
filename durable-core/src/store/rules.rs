//! The rules every store applies to operations and deliveries, as pure functions over
//! records, so that each store (in memory, sled, a database) applies them the same way
//! inside its own transaction.

use crate::error::StoreError;
use crate::record::{
    Delivered, Delivery, ExecutionRecord, Expect, OperationAction, OperationChange,
    OperationRecord, OperationState, Settlement, Status,
};
use crate::time::Timestamp;

/// Whether an operation whose current record is `current` meets `expect`.
pub fn expect_holds(expect: Expect, current: Option<&OperationRecord>) -> bool {
    match expect {
        Expect::Absent => current.is_none(),
        Expect::Pending => current.is_some_and(|op| op.state.is_pending()),
        Expect::Settled => current.is_some_and(|op| !op.state.is_pending()),
        Expect::Any => true,
    }
}

/// Checks one operation change of a commit of execution `id` against the operation's
/// current record: its condition, and that a `Put` writes a record of this execution
/// under this key. A store calls it for each change in order, with the record as the
/// earlier changes of the same commit left it.
pub fn check_change(
    id: &str,
    change: &OperationChange,
    current: Option<&OperationRecord>,
) -> Result<(), StoreError> {
    if !expect_holds(change.expect, current) {
        return Err(StoreError::OperationConflict {
            id: id.to_owned(),
            key: change.key.clone(),
            expected: change.expect,
        });
    }
    if let OperationAction::Put(op) = &change.action {
        if op.execution != id || op.key != change.key {
            return Err(StoreError::Invalid {
                message: format!(
                    "a commit of execution {id:?} writes operation {:?} of execution {:?} under key {:?}",
                    op.key, op.execution, change.key
                ),
            });
        }
    }
    Ok(())
}

/// Why a delivery at time `at` cannot apply to `op` of `execution`, as the [`Delivered`]
/// answer; `None` when it can.
///
/// In this order, so that a late sender learns the most useful thing: how the operation
/// was settled, also once its execution has finished; that its deadline passed, also if
/// its execution has not noticed yet (the answer must not depend on when it does); only
/// then that the execution has finished.
pub fn refusal(
    op: Option<&OperationRecord>,
    execution: Option<&ExecutionRecord>,
    at: Timestamp,
) -> Option<Delivered> {
    let Some(op) = op else {
        return Some(Delivered::Unknown);
    };
    let Some(execution) = execution else {
        // An operation outlives its execution only in a damaged store; treat it as unknown
        // rather than settle something nobody can await.
        return Some(Delivered::Unknown);
    };
    if !op.state.is_pending() {
        return Some(Delivered::AlreadySettled(Box::new(op.clone())));
    }
    if op.deadline().is_some_and(|(deadline, _)| deadline <= at) {
        return Some(Delivered::DeadlinePassed(Box::new(op.clone())));
    }
    if execution.status.is_terminal() {
        return Some(Delivered::ExecutionFinished {
            execution: execution.id.clone(),
            status: execution.status,
        });
    }
    None
}

/// Applies `delivery` to the pending `op` and its `execution` (for which [`refusal`] said
/// `None`): settles the operation or records a heartbeat, and wakes the execution if it is
/// suspended awaiting the operation. Returns the answer; the caller writes both records
/// (the execution only if it woke) and, if it woke, removes its timer-index entry for the
/// old `wake_at`, which the caller reads before calling.
pub fn apply(
    delivery: &Delivery,
    op: &mut OperationRecord,
    execution: &mut ExecutionRecord,
) -> Delivered {
    let at = delivery.at;
    op.updated_at = at;
    let mut woke = false;
    match &delivery.settlement {
        Settlement::Heartbeat => op.heartbeat_at = Some(at),
        Settlement::Settle(state) => {
            op.state = state.clone();
            if execution.status == Status::Suspended && execution.awaiting.contains(&op.key) {
                wake(execution, at);
                woke = true;
            }
        }
    }
    Delivered::Applied {
        execution: op.execution.clone(),
        key: op.key.clone(),
        woke,
    }
}

/// Makes a suspended execution runnable: the store's own commit on it.
fn wake(execution: &mut ExecutionRecord, at: Timestamp) {
    execution.status = Status::Running;
    execution.wake_at = None;
    execution.awaiting.clear();
    execution.seq += 1;
    execution.updated_at = at;
}

/// Checks that a delivery's settlement is one a delivery may make.
pub fn check_delivery(delivery: &Delivery) -> Result<(), StoreError> {
    if let Settlement::Settle(OperationState::Pending) = delivery.settlement {
        return Err(StoreError::Invalid {
            message: "a delivery must settle an operation, not make it pending".into(),
        });
    }
    Ok(())
}
