//! One activation: claim an execution, load it, run its state machine from the last
//! committed point until it returns, suspends or fails, and commit the end.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::registry::Returned;
use super::Shared;
use crate::ctx::{Change, Ctx};
use crate::error::StoreError;
use crate::private::{Entry, Interrupt};
use crate::record::{Event, ExecutionRecord, Status};
use crate::step::panic_message;

/// How long to wait before retrying an activation after a store error.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);

pub(super) async fn activate(shared: &Arc<Shared>, id: &str) {
    let now = shared.clock.now();
    let until = now.saturating_add(shared.config.lease_ttl);
    match shared.store.claim(id, shared.owner, now, until).await {
        Ok(true) => {}
        // Another engine runs it. Try again later rather than never: the timer service
        // reads a due timer once, so a refused claim must not be the last word.
        Ok(false) => return enqueue_later(shared, id),
        Err(e) => return retry_later(shared, id, e),
    }
    let result = run_claimed(shared, id, until).await;
    if let Err(e) = shared.store.release(id, shared.owner).await {
        tracing::warn!(execution = id, error = %e, "could not release lease");
    }
    match result {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            tracing::warn!(
                execution = id,
                "execution advanced by someone else; activation dropped"
            );
        }
        Err(e) => retry_later(shared, id, e),
    }
}

fn retry_later(shared: &Arc<Shared>, id: &str, error: StoreError) {
    tracing::warn!(execution = id, error = %error, "store error; retrying the execution later");
    enqueue_later(shared, id);
}

fn enqueue_later(shared: &Arc<Shared>, id: &str) {
    let shared = shared.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(STORE_RETRY_DELAY).await;
        shared.enqueue(&id);
    });
}

async fn run_claimed(
    shared: &Arc<Shared>,
    id: &str,
    lease_until: crate::time::Timestamp,
) -> Result<(), StoreError> {
    let Some(record) = shared.store.load(id).await? else {
        return Ok(());
    };
    let now = shared.clock.now();
    match record.status {
        Status::Completed | Status::Failed => {
            shared.notify_done(id);
            return Ok(());
        }
        Status::Suspended if record.wake_at.is_some_and(|at| at > now) => return Ok(()),
        _ => {}
    }
    let Some(version) = shared
        .registry
        .find(&record.workflow, record.fingerprint)
        .copied()
    else {
        return park(shared, record, lease_until).await;
    };
    let entry = match &record.position {
        Some(position) => Entry::Resume {
            frame: position.frame.clone(),
        },
        None => match shared.store.load_input(id).await? {
            Some(input) => Entry::Start { input },
            None => {
                let ctx = Ctx::new(shared.clone(), record, version.codec, lease_until);
                return fail(
                    &ctx,
                    "the execution's input is missing from the store".into(),
                )
                .await;
            }
        },
    };
    let ctx = Ctx::new(shared.clone(), record, version.codec, lease_until);
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
            finish(
                &ctx,
                Change {
                    status,
                    position: None,
                    point: None,
                    wake_at: None,
                    output: Some(output),
                    message,
                    events: vec![event],
                },
            )
            .await
        }
        Err(Interrupt::Suspended) => Ok(()),
        Err(Interrupt::Yielded) => {
            shared.enqueue(id);
            Ok(())
        }
        Err(Interrupt::Store(e)) => Err(e),
        Err(Interrupt::Failed(message)) => fail(&ctx, message).await,
        Err(Interrupt::Inspected(_)) => {
            fail(
                &ctx,
                "internal error: a running machine answered as if inspected".into(),
            )
            .await
        }
    }
}

async fn fail(ctx: &Ctx, message: String) -> Result<(), StoreError> {
    tracing::error!(execution = ctx.execution_id(), %message, "execution failed");
    finish(
        ctx,
        Change {
            status: Status::Failed,
            position: ctx.record().position,
            point: None,
            wake_at: None,
            output: None,
            message: Some(message.clone()),
            events: vec![Event::Failed { message }],
        },
    )
    .await
}

/// Parks an execution whose code version is not registered; its data stays intact.
async fn park(
    shared: &Arc<Shared>,
    record: ExecutionRecord,
    lease_until: crate::time::Timestamp,
) -> Result<(), StoreError> {
    let id = record.id.clone();
    if record.status != Status::Parked {
        let available = shared.registry.fingerprints(&record.workflow);
        let message = if available.is_empty() {
            format!(
                "workflow {:?} is not registered with this engine (execution fingerprint {:016x})",
                record.workflow, record.fingerprint
            )
        } else {
            let available: Vec<String> = available.iter().map(|f| format!("{f:016x}")).collect();
            format!(
                "no registered version of workflow {:?} matches the code that wrote this execution: stored fingerprint {:016x}, registered {}",
                record.workflow,
                record.fingerprint,
                available.join(", ")
            )
        };
        tracing::warn!(execution = %id, %message, "execution parked");
        let position = record.position.clone();
        let ctx = Ctx::new(shared.clone(), record, crate::Codec::default(), lease_until);
        finish(
            &ctx,
            Change {
                status: Status::Parked,
                position,
                point: None,
                // A parked execution must not keep firing timers; it resumes when its
                // version is registered and an engine opens.
                wake_at: None,
                output: None,
                message: Some(message.clone()),
                events: vec![Event::Parked { message }],
            },
        )
        .await?;
    }
    shared.notify_done(&id);
    Ok(())
}

async fn finish(ctx: &Ctx, change: Change) -> Result<(), StoreError> {
    match ctx.commit(change).await {
        Ok(()) => {
            ctx.shared().notify_done(ctx.execution_id());
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
