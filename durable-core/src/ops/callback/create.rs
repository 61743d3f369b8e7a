//! [`Ctx::create_callback`]: the durable point that creates a callback.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::{id, Callback, CallbackError};
use crate::error::StoreError;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::ops::sleep::MAX_WAIT;
use crate::record::{
    Event, Expect, OperationAction, OperationChange, OperationKind, OperationRecord, OperationState,
};
use crate::time::Timestamp;

impl Ctx {
    /// Creates a callback whose result decodes into `T`: a durable point that commits
    /// the callback and gives its [`Callback`] handle, holding the id to hand out.
    ///
    /// The handle is an ordinary local (saved in frames), so the workflow can give the id
    /// to the outside in a step, do other work, and await the result at a later point with
    /// [`wait_callback`](Ctx::wait_callback). A completion that arrives before that await
    /// is kept and counts. `.await` gives the handle, or [`CallbackError::TooFar`] for a
    /// timeout longer than [`MAX_WAIT`](crate::MAX_WAIT).
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, CallbackError};
    /// # use std::time::Duration;
    /// # async fn send_email(to: String, body: String) {}
    /// #[durable]
    /// async fn approve(ctx: Ctx, manager: String) -> Result<bool, CallbackError> {
    ///     let cb = ctx
    ///         .create_callback::<bool>("approval")
    ///         .timeout(Duration::from_secs(3 * 86_400))
    ///         .await?;
    ///     let link = format!("https://example.com/callbacks/{}/complete", cb.id());
    ///     ctx.step_infallible("ask", || send_email(manager, link)).await;
    ///     ctx.wait_callback(&cb).await
    /// }
    /// ```
    pub fn create_callback<T>(&self, name: impl Into<String>) -> CreateCallback<T> {
        CreateCallback {
            options: Options::new(name.into()),
            result: PhantomData,
        }
    }
}

/// A callback's name and time limits, as the builders collect them.
#[derive(Debug, Clone)]
pub(super) struct Options {
    pub name: String,
    pub timeout: Option<Duration>,
    pub heartbeat_timeout: Option<Duration>,
}

impl Options {
    pub fn new(name: String) -> Self {
        Options {
            name,
            timeout: None,
            heartbeat_timeout: None,
        }
    }

    /// The longest limit, if it exceeds [`MAX_WAIT`], as the error that refuses it.
    fn too_far(&self) -> Option<CallbackError> {
        let longest = self.timeout.max(self.heartbeat_timeout)?;
        (longest > MAX_WAIT).then(|| CallbackError::TooFar {
            name: self.name.clone(),
            requested_ms: u64::try_from(longest.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The callback's record, created now, or the error that refuses its limits.
    pub fn record(
        &self,
        run: &PointRun,
        now: Timestamp,
    ) -> Result<Result<(OperationRecord, String), CallbackError>, Interrupt> {
        if let Some(refused) = self.too_far() {
            return Ok(Err(refused));
        }
        let id = id::generate().map_err(|e| {
            // Not the execution's fault: retry the activation later rather than fail it.
            Interrupt::Store(StoreError::Backend(
                format!("the operating system's random source failed: {e}").into(),
            ))
        })?;
        let ctx = run.ctx();
        let key = key(ctx.record().seq + 1);
        let record = OperationRecord {
            execution: ctx.execution_id().to_owned(),
            key,
            kind: OperationKind::Callback {
                timeout_at: self.timeout.map(|t| now.saturating_add(t)),
                heartbeat_timeout_ms: self
                    .heartbeat_timeout
                    .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            },
            name: self.name.clone(),
            token: Some(id.clone()),
            state: OperationState::Pending,
            heartbeat_at: None,
            created_at: now,
            updated_at: now,
        };
        Ok(Ok((record, id)))
    }
}

/// The operation key of a callback created by the commit with sequence number `seq`:
/// unique within the execution, since no two commits share a sequence number, and in
/// creation order (see `record::ordered_key`).
fn key(seq: u64) -> String {
    crate::record::ordered_key("c", seq)
}

/// The commit's change that creates `record`.
pub(super) fn put_new(record: OperationRecord) -> OperationChange {
    OperationChange {
        key: record.key.clone(),
        expect: Expect::Absent,
        action: OperationAction::Put(Box::new(record)),
    }
}

/// The history entry of a created callback.
pub(super) fn created_event(record: &OperationRecord) -> Event {
    let timeout_at = match record.kind {
        OperationKind::Callback { timeout_at, .. } => timeout_at,
        _ => None,
    };
    Event::CallbackCreated {
        name: record.name.clone(),
        timeout_at,
    }
}

/// Creating a callback, built by [`Ctx::create_callback`].
#[must_use = "a callback is created only when this is awaited in a `#[durable]` fn"]
pub struct CreateCallback<T> {
    options: Options,
    result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for CreateCallback<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateCallback")
            .field("name", &self.options.name)
            .field("timeout", &self.options.timeout)
            .field("heartbeat_timeout", &self.options.heartbeat_timeout)
            .finish()
    }
}

impl<T> CreateCallback<T> {
    /// Times the callback out `timeout` after its creation (engine clock): its await
    /// then gives [`CallbackError::TimedOut`] and later completions are refused. No
    /// timeout by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Times the callback out if neither a heartbeat
    /// ([`Engine::heartbeat_callback`](crate::Engine::heartbeat_callback)) nor a
    /// completion arrives within `timeout` of its creation or of the last heartbeat: its
    /// await then gives [`CallbackError::HeartbeatTimedOut`]. None by default.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.options.heartbeat_timeout = Some(timeout);
        self
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<T> std::future::IntoFuture for CreateCallback<T>
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

impl<T: 'static> Operation for CreateCallback<T> {
    type Output = Result<Callback<T>, CallbackError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let options = self.options;
        if let Some(state) = run.resumed_state() {
            return Err(Interrupt::Failed(format!(
                "callback `{}` resumed in a state that is not a callback creation's: {state:?}",
                options.name
            )));
        }
        let (record, id) = match options.record(&run, run.now())? {
            Ok(created) => created,
            Err(refused) => return run.complete(&Err(refused), Vec::new()).await,
        };
        let handle = Callback::new(id, record.key.clone(), options.name);
        let event = created_event(&record);
        run.complete_with(&Ok(handle), vec![event], vec![put_new(record)])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_short_and_sort_in_creation_order() {
        assert_eq!(key(2), "c02");
        assert_eq!(key(255), "c1ff");
        assert_eq!(key(u64::MAX), "cfffffffffffffffff");
        let seqs = [1, 2, 9, 15, 16, 17, 255, 256, 4095, 4096, 1 << 40, u64::MAX];
        let keys: Vec<String> = seqs.iter().map(|&s| key(s)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
