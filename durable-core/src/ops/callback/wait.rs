//! [`Ctx::wait_callback`]: the durable point that receives a callback's outcome, and the
//! receiving logic that [`Ctx::wait_for_callback`](crate::Ctx::wait_for_callback) shares.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{outcome, timed_out, Callback, CallbackError};
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun, Progress};
use crate::record::{
    Event, Expect, OperationAction, OperationChange, OperationKind, OperationRecord, PointState,
    Status,
};

impl Ctx {
    /// Waits for the outcome of `callback`, created earlier by
    /// [`create_callback`](Ctx::create_callback): a durable point.
    ///
    /// If a completion has arrived (also before this point was reached), `.await` gives
    /// it at once. Otherwise the execution is suspended (out of memory, like a sleeping
    /// one) until a completion wakes it or its timeout or heartbeat deadline passes.
    /// `.await` gives the value decoded from the completion's JSON payload, or a
    /// [`CallbackError`]: failed by the sender, timed out, heartbeat timed out, or a
    /// payload that does not decode into `T` (with the raw payload).
    ///
    /// Awaiting the same callback again gives the same outcome.
    pub fn wait_callback<T>(&self, callback: &Callback<T>) -> WaitCallback<T> {
        WaitCallback {
            id: callback.id.clone(),
            key: callback.key.clone(),
            name: callback.name.clone(),
            delete: false,
            result: PhantomData,
        }
    }
}

/// Waiting for a callback, built by [`Ctx::wait_callback`].
#[must_use = "a wait does nothing until it is awaited in a `#[durable]` fn"]
pub struct WaitCallback<T> {
    id: String,
    key: String,
    name: String,
    delete: bool,
    result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for WaitCallback<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitCallback")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}

impl<T> WaitCallback<T> {
    /// Deletes the callback's record in the commit that records its outcome, so that a
    /// workflow that loops forever over callbacks keeps bounded storage. Later
    /// completions of its id are then unknown (not "already completed"), and awaiting it
    /// again gives [`CallbackError::NotFound`].
    pub fn delete_when_received(mut self) -> Self {
        self.delete = true;
        self
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<T> std::future::IntoFuture for WaitCallback<T>
where
    // Only a durable point can await this: directly in the body of a `#[durable]` fn.
    Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}

impl<T> Operation for WaitCallback<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<T, CallbackError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let fresh = match run.resumed_state() {
            None => true,
            Some(PointState::Awaiting { key }) if *key == self.key => false,
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "the wait for callback `{}` resumed in a state that is not a callback wait's: {other:?}",
                    self.name
                )))
            }
        };
        let callback = Awaited {
            id: Some(&self.id),
            key: &self.key,
            name: &self.name,
            delete: self.delete,
        };
        receive(run, callback, fresh).await
    }
}

/// The callback a point waits for.
pub(super) struct Awaited<'a> {
    /// Its id (the operation's token) if it came from a handle, checked so that a handle
    /// of another execution whose key happens to exist here is not taken for it.
    pub id: Option<&'a str>,
    pub key: &'a str,
    pub name: &'a str,
    pub delete: bool,
}

/// Gives the outcome of `callback` at this point, or commits the wait for it and
/// suspends. `fresh`: the point has not committed a wait yet.
///
/// The outcome is committed with a condition on the operation (settled, or still pending
/// for a timeout), so a completion that lands after the read makes the commit fail and
/// the engine runs the point again on what is stored: the first settlement wins.
pub(super) async fn receive<T>(
    run: PointRun,
    callback: Awaited<'_>,
    fresh: bool,
) -> Result<Result<T, CallbackError>, Interrupt>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let Awaited {
        id,
        key,
        name,
        delete,
    } = callback;
    let ctx = run.ctx();
    let op = ctx
        .runtime()
        .store()
        .operation(ctx.execution_id(), key)
        .await?
        .filter(|op| {
            matches!(op.kind, OperationKind::Callback { .. })
                && id.is_none_or(|id| op.token.as_deref() == Some(id))
        });
    let Some(op) = op else {
        let outcome: Result<T, CallbackError> = Err(CallbackError::NotFound {
            name: name.to_owned(),
        });
        return run
            .complete(&outcome, vec![received(name, "not found")])
            .await;
    };
    if !op.state.is_pending() {
        let (outcome, word) = outcome::<T>(name, &op.state);
        let action = if delete {
            OperationAction::Delete
        } else {
            OperationAction::Keep
        };
        let change = condition(key, Expect::Settled, action);
        return run
            .complete_with(&outcome, vec![received(name, word)], vec![change])
            .await;
    }
    let now = run.now();
    let deadline = op.deadline();
    if let Some((_, heartbeat)) = deadline.filter(|(at, _)| *at <= now) {
        let state = timed_out(heartbeat);
        let (outcome, word) = outcome::<T>(name, &state);
        let action = if delete {
            OperationAction::Delete
        } else {
            OperationAction::Put(Box::new(OperationRecord {
                state,
                updated_at: now,
                ..op
            }))
        };
        // `Pending`: a completion that landed since the read wins over the timeout.
        let change = condition(key, Expect::Pending, action);
        return run
            .complete_with(&outcome, vec![received(name, word)], vec![change])
            .await;
    }
    let wake_at = deadline.map(|(at, _)| at);
    let record = ctx.record();
    if !fresh
        && record.status == Status::Suspended
        && record.wake_at == wake_at
        && record.awaiting == [key]
    {
        // Woken early (a timer raced a commit): the wait is already committed.
        return Err(Interrupt::Suspended);
    }
    run.commit_progress(Progress {
        wake_at,
        awaiting: vec![key.to_owned()],
        // A completion that lands between the read and this commit makes it fail
        // instead of suspending on an operation that will never wake it.
        operations: vec![condition(key, Expect::Pending, OperationAction::Keep)],
        ..Progress::to(PointState::Awaiting {
            key: key.to_owned(),
        })
    })
    .await?;
    Err(Interrupt::Suspended)
}

fn condition(key: &str, expect: Expect, action: OperationAction) -> OperationChange {
    OperationChange {
        key: key.to_owned(),
        expect,
        action,
    }
}

fn received(name: &str, outcome: &str) -> Event {
    Event::CallbackReceived {
        name: name.to_owned(),
        outcome: outcome.to_owned(),
    }
}
