//! One activation: claim an execution, load it, run its state machine from the last
//! committed point until it returns, suspends or fails, and commit the end.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::layouts;
use super::registry::Returned;
use super::Shared;
use crate::error::StoreError;
use crate::execution::{Change, Ctx, Entry, Interrupt, Runtime};
use crate::panic::panic_message;
use crate::record::{
    Delivery, Event, ExecutionRecord, OperationRef, OperationState, Settlement, Status,
};
use crate::time::Timestamp;

/// How long to wait before retrying an activation after a store error.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);

pub(super) async fn activate(shared: &Arc<Shared>, id: &str) {
    let now = shared.clock.now();
    let until = now.saturating_add(shared.config.lease_ttl);
    match shared.store.claim(id, shared.owner, now, until).await {
        Ok(true) => {}
        // Another engine of a shared store runs it: when it leaves the execution ready
        // (or dies and its lease expires), `Store::acquire` hands it out again.
        Ok(false) if shared.store.is_shared() => return,
        // Another engine runs it. Try again later rather than never: the timer service
        // reads a due timer once, so a refused claim must not be the last word.
        Ok(false) => return enqueue_later(shared, id),
        Err(e) => return retry_later(shared, id, e),
    }
    let result = run_claimed(shared, id, until).await;
    if let Err(e) = shared.store.release(id, shared.owner).await {
        tracing::warn!(execution = id, error = %e, "could not release lease");
    }
    if !matches!(&result, Err(e) if e.is_failure()) {
        shared.health.stop_waiting(id);
    }
    match result {
        Ok(()) => {}
        // The record or one of its operations changed under this activation (a delivery
        // woke it or settled what it was about to wait for): nothing was written, so run
        // it again from what is stored now.
        Err(StoreError::Conflict { .. } | StoreError::OperationConflict { .. }) => {
            tracing::debug!(
                execution = id,
                "execution changed concurrently; running it again"
            );
            shared.enqueue(id);
        }
        // Another engine took the execution over: it is that engine's now.
        Err(StoreError::LeaseLost { .. }) => {
            tracing::warn!(
                execution = id,
                "lease lost to another engine; activation dropped"
            );
        }
        Err(e) => retry_later(shared, id, e),
    }
}

/// Runs the execution again later: after the healer's next round if the store failed
/// (see `health`), after [`STORE_RETRY_DELAY`] otherwise.
fn retry_later(shared: &Arc<Shared>, id: &str, error: StoreError) {
    if !error.is_failure() {
        tracing::warn!(execution = id, error = %error, "store error; retrying the execution later");
        return enqueue_later(shared, id);
    }
    // Waiting before reporting, so the round the report asks for cannot be missed.
    let round = shared.health.next_round();
    shared
        .health
        .activation_failed(shared.clock.now(), &error, id);
    let shared = shared.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        round.await;
        shared.enqueue(&id);
    });
}

fn enqueue_later(shared: &Arc<Shared>, id: &str) {
    let shared = shared.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(STORE_RETRY_DELAY).await;
        shared.enqueue(&id);
    });
}

/// The engine as the execution layer sees it.
fn runtime(shared: &Arc<Shared>) -> Arc<dyn Runtime> {
    shared.clone()
}

async fn run_claimed(
    shared: &Arc<Shared>,
    id: &str,
    lease_until: Timestamp,
) -> Result<(), StoreError> {
    let Some(mut record) = shared.store.load(id).await? else {
        return Ok(());
    };
    let now = shared.clock.now();
    match record.status {
        Status::Completed | Status::Failed | Status::Cancelled => {
            shared.notify_done(id);
            return Ok(());
        }
        // Not due yet: its timer or a delivery wakes it.
        Status::Suspended if record.wake_at.is_none_or(|at| at > now) => return Ok(()),
        _ => {}
    }
    let layout = layouts::stored_layout(&record);
    let Some(version) = shared
        .registry
        .resumer(&record.workflow, record.fingerprint, layout)
        .cloned()
    else {
        let message = layouts::mismatch(&*shared.store, &shared.registry, &record).await?;
        return park(shared, record, lease_until, message).await;
    };
    // The code that runs the execution now is the code its next commit records.
    record.fingerprint = version.fingerprint;
    let ctx = Ctx::new(
        runtime(shared),
        record,
        version.codec,
        version.layout_fingerprint,
        lease_until,
    );
    let entry = match &ctx.record().position {
        Some(position) => Entry::Resume {
            frame: position.frame.clone(),
        },
        None => match shared.store.load_input(id).await? {
            Some(input) => Entry::Start { input },
            None => {
                let message = "the execution's input is missing from the store".into();
                return fail(shared, &ctx, message).await;
            }
        },
    };
    let outcome = AssertUnwindSafe((version.run)(ctx.clone(), entry))
        .catch_unwind()
        .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(panic) => Err(Interrupt::Failed(format!(
            "the workflow panicked: {}",
            panic_message(&*panic)
        ))),
    };
    match outcome {
        Ok(Returned { output, error }) => {
            // A `Result` workflow that returned `Err` failed in its own terms: it is
            // listed as failed, and its output is kept for `Handle::result`.
            let (status, message, event) = match error {
                None => (Status::Completed, None, Event::Completed),
                Some(error) => {
                    let message = format!("the workflow returned an error: {error}");
                    let event = Event::Failed {
                        message: message.clone(),
                    };
                    (Status::Failed, Some(message), event)
                }
            };
            // A failed execution keeps its last frame, so that it can be re-driven from
            // there once the code is fixed; a completed one needs it no more.
            let position = match status {
                Status::Failed => ctx.record().position,
                _ => None,
            };
            let change = Change {
                position,
                output: Some(output),
                message,
                events: vec![event],
                ..Change::to(status)
            };
            finish(shared, &ctx, change).await
        }
        Err(Interrupt::Suspended) => Ok(()),
        Err(Interrupt::Yielded) => {
            shared.enqueue(id);
            Ok(())
        }
        Err(Interrupt::Store(e)) => Err(e),
        Err(Interrupt::Failed(message)) => fail(shared, &ctx, message).await,
        Err(Interrupt::Unreadable(message)) => {
            let record = ctx.record();
            let at = match record.position.as_ref().map(|p| p.point) {
                Some(point) => {
                    let label = version.layout.points.iter().find(|p| p.id == point);
                    match label {
                        Some(p) => format!(" at point {point} (`{}`, line {})", p.label, p.line),
                        None => format!(" at point {point}"),
                    }
                }
                None => String::new(),
            };
            let message = format!(
                "the stored state of this execution of workflow {:?}{at} does not decode with the registered version (code {:016x}): {message}",
                record.workflow, version.fingerprint
            );
            park(shared, record, lease_until, message).await
        }
        Err(Interrupt::Inspected(_) | Interrupt::Layout(_)) => {
            let message = "internal error: a running machine answered as if inspected".into();
            fail(shared, &ctx, message).await
        }
    }
}

async fn fail(shared: &Arc<Shared>, ctx: &Ctx, message: String) -> Result<(), StoreError> {
    tracing::error!(execution = ctx.execution_id(), %message, "execution failed");
    let change = Change {
        position: ctx.record().position,
        message: Some(message.clone()),
        events: vec![Event::Failed { message }],
        ..Change::to(Status::Failed)
    };
    finish(shared, ctx, change).await
}

/// Parks an execution that no registered version can resume, with `message` saying why;
/// its data stays intact, and an engine that registers a version that can resume it
/// does so when it opens.
async fn park(
    shared: &Arc<Shared>,
    record: ExecutionRecord,
    lease_until: Timestamp,
    message: String,
) -> Result<(), StoreError> {
    let id = record.id.clone();
    if record.status != Status::Parked || record.message.as_ref() != Some(&message) {
        tracing::warn!(execution = %id, %message, "execution parked");
        let change = Change {
            position: record.position.clone(),
            // A parked execution must not keep firing timers or wait for operations; it
            // resumes when a version that reads it is registered and an engine opens.
            message: Some(message.clone()),
            events: vec![Event::Parked { message }],
            ..Change::to(Status::Parked)
        };
        let ctx = Ctx::new(
            runtime(shared),
            record,
            crate::Codec::default(),
            0,
            lease_until,
        );
        finish(shared, &ctx, change).await?;
    }
    shared.note_parked(&id);
    shared.notify_done(&id);
    Ok(())
}

/// Commits the last transition of an activation that ends the execution (or parks it),
/// reporting a finished child's result to its parent in the same commit, and wakes the
/// callers waiting for its result.
async fn finish(shared: &Arc<Shared>, ctx: &Ctx, mut change: Change) -> Result<(), StoreError> {
    let record = ctx.record();
    if let (Some(parent), true) = (&record.parent, change.status.is_terminal()) {
        let settlement = match &change.output {
            Some(output) => OperationState::Succeeded {
                payload: output.clone(),
            },
            None => OperationState::Failed {
                error: change.message.clone().unwrap_or_default().into_bytes(),
            },
        };
        change.deliveries.push(Delivery {
            to: OperationRef::Key {
                execution: parent.execution.clone(),
                key: parent.operation.clone(),
            },
            settlement: Settlement::Settle(settlement),
            at: shared.clock.now(),
        });
    }
    match ctx.commit(change).await {
        Ok(()) => {
            shared.notify_done(ctx.execution_id());
            Ok(())
        }
        Err(Interrupt::Store(e)) => Err(e),
        Err(other) => {
            tracing::error!(
                execution = ctx.execution_id(),
                ?other,
                "could not record the end of an execution"
            );
            Ok(())
        }
    }
}
