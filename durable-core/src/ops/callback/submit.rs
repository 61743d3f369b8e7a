//! [`Ctx::wait_for_callback`]: create a callback, hand its id to a submitter, and wait for
//! its outcome, all at one durable point.
//!
//! The point commits in phases, so that each survives a restart:
//! 1. the callback is created, with the point in [`PointState::Submitting`] (attempt 1):
//!    the id is durable before anyone outside learns it;
//! 2. the submitter runs with the id, at least once per attempt like a step body (a crash
//!    during an attempt runs it again with the same id); a failed attempt is committed
//!    with the next one's time, following the retry policy;
//! 3. once it succeeds, the point waits as [`Ctx::wait_callback`] does
//!    ([`PointState::Awaiting`]).
//!
//! A completion that arrives while the submitter runs (or between its retries) is kept
//! and received as soon as the submitter returns. If the submitter gives up, the
//! callback is cancelled in the same commit (unless a completion won the race), so later
//! completions are refused.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::create::{created_event, put_new, Options};
use super::wait::{receive, Awaited};
use super::CallbackError;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun, Progress};
use crate::panic::panic_message;
use crate::record::{
    Event, Expect, OperationAction, OperationChange, OperationRecord, OperationState, PointState,
};
use crate::retry::RetryPolicy;

impl Ctx {
    /// Creates a callback, runs `submitter` with its id, and waits for its outcome, at
    /// one durable point: the shorthand for [`create_callback`](Ctx::create_callback), a
    /// step that hands out the id, and [`wait_callback`](Ctx::wait_callback).
    ///
    /// `submitter` gets the id and returns `Result<(), E>`; it runs at least once per
    /// attempt (a crash during an attempt runs it again with the same id), so it should
    /// be idempotent. A failed or panicking attempt is retried as
    /// [`retry`](WaitForCallback::retry) says (default: no retry); when it gives up,
    /// the callback is cancelled and `.await` gives [`CallbackError::SubmitFailed`].
    /// Otherwise `.await` gives what [`wait_callback`](Ctx::wait_callback) gives.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, CallbackError};
    /// # use std::time::Duration;
    /// # async fn register_webhook(job: u64, callback_id: String) -> Result<(), String> { Ok(()) }
    /// #[durable]
    /// async fn render(ctx: Ctx, job: u64) -> Result<String, CallbackError> {
    ///     let url = ctx
    ///         .wait_for_callback::<String, _, _, _>("rendered", |id| register_webhook(job, id))
    ///         .timeout(Duration::from_secs(3600))
    ///         .await?;
    ///     Ok(url)
    /// }
    /// ```
    pub fn wait_for_callback<T, F, Fut, E>(
        &self,
        name: impl Into<String>,
        submitter: F,
    ) -> WaitForCallback<T, F>
    where
        F: Fn(String) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send,
    {
        WaitForCallback {
            options: Options::new(name.into()),
            submitter,
            policy: RetryPolicy::none(),
            delete: false,
            result: PhantomData,
        }
    }
}

/// Creating a callback, submitting its id and waiting for it, built by
/// [`Ctx::wait_for_callback`].
#[must_use = "a wait does nothing until it is awaited in a `#[durable]` fn"]
pub struct WaitForCallback<T, F> {
    options: Options,
    submitter: F,
    policy: RetryPolicy,
    delete: bool,
    result: PhantomData<fn() -> T>,
}

impl<T, F> fmt::Debug for WaitForCallback<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCallback")
            .field("name", &self.options.name)
            .field("timeout", &self.options.timeout)
            .field("heartbeat_timeout", &self.options.heartbeat_timeout)
            .field("policy", &self.policy)
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}

impl<T, F> WaitForCallback<T, F> {
    /// Times the callback out `timeout` after its creation; see
    /// [`CreateCallback::timeout`](super::CreateCallback::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Times the callback out without heartbeats; see
    /// [`CreateCallback::heartbeat_timeout`](super::CreateCallback::heartbeat_timeout).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.options.heartbeat_timeout = Some(timeout);
        self
    }

    /// Retries a failed submitter as `policy` says (default: a single attempt).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Deletes the callback's record once its outcome is received; see
    /// [`WaitCallback::delete_when_received`](super::WaitCallback::delete_when_received).
    pub fn delete_when_received(mut self) -> Self {
        self.delete = true;
        self
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<T, F> std::future::IntoFuture for WaitForCallback<T, F>
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

impl<T, F, Fut, E> Operation for WaitForCallback<T, F>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(String) -> Fut + Send,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Serialize,
{
    type Output = Result<T, CallbackError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let WaitForCallback {
            options,
            submitter,
            policy,
            delete,
            ..
        } = self;
        let name = options.name.as_str();
        let (key, mut attempt) = match run.resumed_state() {
            None => {
                let record = match options.record(&run, run.now())? {
                    Ok((record, _)) => record,
                    Err(refused) => return run.complete(&Err(refused), Vec::new()).await,
                };
                let key = record.key.clone();
                run.commit_progress(Progress {
                    events: vec![created_event(&record)],
                    operations: vec![put_new(record)],
                    ..Progress::to(PointState::Submitting {
                        key: key.clone(),
                        attempt: 1,
                    })
                })
                .await?;
                (key, 1)
            }
            Some(PointState::Submitting { key, attempt }) => {
                if run.wake_at().is_some_and(|at| at > run.now()) {
                    // Woken early (a timer raced a commit): the retry is already committed.
                    return Err(Interrupt::Suspended);
                }
                (key.clone(), *attempt)
            }
            Some(PointState::Awaiting { key }) => {
                let key = key.clone();
                return receive(run, awaited(&key, name, delete), false).await;
            }
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "callback `{name}` resumed in a state that is not a callback wait's: {other:?}"
                )))
            }
        };
        loop {
            let ctx = run.ctx();
            let op = ctx
                .runtime()
                .store()
                .operation(ctx.execution_id(), &key)
                .await?;
            let ready = op.as_ref().is_none_or(|op| {
                !op.state.is_pending() || op.deadline().is_some_and(|(at, _)| at <= run.now())
            });
            let (Some(op), false) = (op, ready) else {
                // Settled, timed out or gone: nothing left to submit.
                return receive(run, awaited(&key, name, delete), true).await;
            };
            let id = op.token.clone().unwrap_or_default();
            // The attempt's error is turned into JSON before the next await, so that the
            // future does not hold an `E` (which need not be `Send`).
            let failure = match attempt_submitter(&submitter, id).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(Failure::Error(json(&error))),
                Err(message) => Some(Failure::Panic(message)),
            };
            let Some(failure) = failure else {
                return receive(run, awaited(&key, name, delete), true).await;
            };
            let step = format!("{name} (submitter)");
            if !policy.allows_another(attempt) {
                let event = failure.event(step, attempt, None);
                return give_up(run, op, failure, attempt, delete, event).await;
            }
            let retry_at = run
                .now()
                .saturating_add(policy.jittered_delay_after(attempt));
            let suspend = retry_at > run.now();
            run.commit_progress(Progress {
                wake_at: suspend.then_some(retry_at),
                events: vec![failure.event(step, attempt, Some(retry_at))],
                ..Progress::to(PointState::Submitting {
                    key: key.clone(),
                    attempt: attempt + 1,
                })
            })
            .await?;
            if suspend {
                return Err(Interrupt::Suspended);
            }
            if run.is_shutting_down() {
                return Err(Interrupt::Yielded);
            }
            attempt += 1;
        }
    }
}

fn awaited<'a>(key: &'a str, name: &'a str, delete: bool) -> Awaited<'a> {
    Awaited {
        id: None,
        key,
        name,
        delete,
    }
}

/// Ends the point after the submitter gave up: cancels the callback (on condition that
/// it is still pending: a completion that won the race is received instead, when the
/// engine runs the point again on what is stored).
async fn give_up<T>(
    run: PointRun,
    op: OperationRecord,
    failure: Failure,
    attempts: u32,
    delete: bool,
    event: Event,
) -> Result<Result<T, CallbackError>, Interrupt>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let name = op.name.clone();
    let key = op.key.clone();
    let action = if delete {
        OperationAction::Delete
    } else {
        OperationAction::Put(Box::new(OperationRecord {
            state: OperationState::Cancelled,
            updated_at: run.now(),
            ..op
        }))
    };
    let error = match failure {
        Failure::Error(json) => json,
        Failure::Panic(message) => format!("panicked: {message}"),
    };
    let outcome: Result<T, CallbackError> = Err(CallbackError::SubmitFailed {
        name: name.clone(),
        error,
        attempts,
    });
    let received = Event::CallbackReceived {
        name,
        outcome: "cancelled".into(),
    };
    let change = OperationChange {
        key,
        expect: Expect::Pending,
        action,
    };
    run.complete_with(&outcome, vec![event, received], vec![change])
        .await
}

/// How a submitter attempt failed.
enum Failure {
    /// It returned an error, here as JSON.
    Error(String),
    /// It panicked, with this message.
    Panic(String),
}

impl Failure {
    fn event(&self, name: String, attempt: u32, retry_at: Option<crate::Timestamp>) -> Event {
        match self {
            Failure::Error(error) => Event::StepFailed {
                name,
                attempt,
                error: error.clone(),
                retry_at,
            },
            Failure::Panic(message) => Event::StepPanicked {
                name,
                attempt,
                message: message.clone(),
                retry_at,
            },
        }
    }
}

fn json<E: Serialize>(error: &E) -> String {
    serde_json::to_string(error)
        .unwrap_or_else(|e| format!("\"<error not representable as JSON: {e}>\""))
}

/// Runs one submitter attempt; a panic, in the closure or in its future, is `Err` with
/// the panic's message. The closure is called before the returned future starts, so the
/// future does not borrow it.
fn attempt_submitter<F, Fut, E>(
    submitter: &F,
    id: String,
) -> impl Future<Output = Result<Result<(), E>, String>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let future = std::panic::catch_unwind(AssertUnwindSafe(|| submitter(id)))
        .map_err(|panic| panic_message(&*panic));
    async move {
        AssertUnwindSafe(future?)
            .catch_unwind()
            .await
            .map_err(|panic| panic_message(&*panic))
    }
}
