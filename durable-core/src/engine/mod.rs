//! Layer 5, the engine: registers workflows, starts executions, and drives them one
//! transition at a time over a [`Store`]; one module per job (builder, start, handles, the
//! ready queue, the timer service, activation, the registry, inspection).
//!
//! May use every layer below. The executions it runs see it only as the execution
//! layer's `Runtime`, which [`Shared`] implements.
//!
//! Invariants:
//! - An execution runs in at most one activation at a time in this engine (the queue's
//!   `active` set), and only while this engine holds its lease in the store; a commit
//!   after another engine took the lease over is refused, and the activation dropped.
//! - A suspended execution is not in memory: it is a record plus a timer-index entry; the
//!   timer service enqueues it when due.
//! - Every state change a caller can observe through [`Handle::result`] was committed
//!   first.

mod activation;
mod builder;
mod callbacks;
mod cancel;
mod check;
mod cluster;
mod describe;
mod handle;
mod healer;
mod health;
mod layouts;
mod observe;
mod queue;
mod redrive;
mod registry;
mod shared;
mod start;
mod timers;

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Error;
use crate::execution::WorkflowFn;
use crate::record::{ExecutionRecord, HistoryEntry, ListFilter};
use crate::store::Store;

pub use builder::EngineBuilder;
pub use callbacks::{CallbackState, CompletionError};
pub use check::Stranded;
pub use describe::{
    CallbackDescription, ChildDescription, Description, Local, PointDescription, Waiting,
    SETTLED_CALLBACKS_SHOWN, SETTLED_CHILDREN_SHOWN,
};
pub use handle::Handle;
pub use health::{Degraded, Health};
pub use layouts::{Layout, PointLayout};
pub use observe::Until;
pub use registry::called;
use shared::Shared;

pub use crate::record::MAX_ID_LEN;

/// Runs workflows over a store. Cheap to clone; clones share one engine.
///
/// Dropping the last clone stops the engine as [`Engine::shutdown`] does, without
/// waiting: executions stop at their next commit and the store is released once they
/// have. Call `shutdown().await` to know when that has happened (for example before
/// opening the same sled directory again).
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    _running: Arc<StopOnDrop>,
}

/// Stops the engine's background work when the last [`Engine`] clone goes away;
/// [`Handle`]s do not keep an engine running.
pub(crate) struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.begin_shutdown();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder over `store`.
    pub fn builder(store: impl Store) -> EngineBuilder {
        EngineBuilder::new(store)
    }

    /// A handle on the execution `id` of `workflow`, e.g. to await its result after a
    /// restart. Reads nothing: the handle's `result` and `status` check that the
    /// execution exists ([`Error::NotFound`]) and runs `workflow`
    /// ([`Error::WrongWorkflow`], rather than decoding another workflow's output).
    pub fn handle<F: WorkflowFn>(
        &self,
        _workflow: F,
        id: impl Into<String>,
    ) -> Handle<F::Workflow> {
        Handle {
            shared: self.shared.clone(),
            id: id.into(),
            workflow: PhantomData,
        }
    }

    /// The execution's record, `None` if there is none.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, Error> {
        Ok(self.shared.store.load(id).await?)
    }

    /// The executions that pass `filter`, in id order: a page of at most `filter.limit`
    /// from after `filter.after` (see [`ListFilter`]).
    pub async fn executions(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, Error> {
        Ok(self.shared.store.list(filter).await?)
    }

    /// Deletes a finished execution (`Completed` or `Failed`) with everything stored for
    /// it; returns whether there was one. An unfinished execution is not deleted:
    /// [`Error::Invalid`] says so.
    ///
    /// Durable: when this returns `Ok(true)`, the deletion survives a crash.
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let Some(record) = self.shared.store.load(id).await? else {
            return Ok(false);
        };
        if !record.status.is_terminal() {
            return Err(Error::Invalid {
                message: format!(
                    "execution {id:?} is {} and cannot be deleted until it finishes",
                    record.status.as_str()
                ),
            });
        }
        // A finished execution never changes again, so nothing can race this.
        let deleted = self.shared.store.delete(id).await;
        self.shared
            .health
            .observe(self.shared.clock.now(), &deleted);
        Ok(deleted?)
    }

    /// Re-drives a `Failed` execution: resumes it from its last committed durable point
    /// on the registered version that can read its state (the same layout), so that a
    /// fix to the code after that point reaches it. Nothing before the point runs again:
    /// steps that completed keep their recorded outcomes. Returns once the execution is
    /// `Running` again (durably) and queued; [`Handle::result`] waits for its new end.
    ///
    /// An execution that failed before its first durable point has no frame and is
    /// re-driven only on its own code (same code fingerprint), like any execution without
    /// a layout.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id, [`Error::NotFailed`] if it has not failed,
    /// [`Error::NoCompatibleVersion`] if no registered version has its layout (the message
    /// says what differs), a store error if the change cannot be committed.
    ///
    /// # Example
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Engine, MemoryStore, Error, Status};
    /// #[durable]
    /// async fn job(ctx: Ctx, n: u32) -> u32 {
    ///     let n = ctx.step_infallible("double", move || async move { n * 2 }).await;
    ///     n + 1
    /// }
    /// # async fn demo() -> Result<(), Error> {
    /// let engine = Engine::builder(MemoryStore::new()).register(job).open().await?;
    /// // After deploying a fix for whatever made "job-7" fail:
    /// match engine.redrive("job-7").await {
    ///     Ok(()) => {}
    ///     Err(Error::NotFound { .. } | Error::NotFailed { .. }) => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn redrive(&self, id: &str) -> Result<(), Error> {
        redrive::redrive(&self.shared, id).await
    }

    /// Cancels an unfinished execution and the unfinished executions it started (its
    /// children, theirs, and so on): each becomes [`Status::Cancelled`](crate::Status),
    /// runs no further workflow code (a step running at that moment finishes, but its
    /// outcome is not recorded), keeps its last frame for inspection, and says `reason`
    /// in its message and history. A caller waiting for one of them
    /// ([`Handle::result`](crate::Handle::result)) gets [`Error::Cancelled`]; a parent
    /// waiting for a cancelled child gets the child's failure ([`ChildError::Failed`](crate::ChildError)).
    ///
    /// Returns whether the execution was cancelled now: `false` if it had already
    /// finished (completed, failed or cancelled). [`Error::NotFound`] for an unknown id.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<bool, Error> {
        cancel::cancel(&self.shared, id, reason).await
    }

    /// Shows an execution like a paused debugger: status, the current durable point
    /// (operation and source line), every live local of its frame decoded to JSON by
    /// name, what it waits for, attempt counts and its history. Works for running,
    /// suspended, parked, failed and completed executions; unreadable stored state is
    /// [`Error::Corrupt`], never a panic.
    pub async fn describe(&self, id: &str) -> Result<Description, Error> {
        describe::describe(&self.shared, id).await
    }

    /// Whether the store accepts this engine's writes: ok, or degraded since when, why
    /// (the last failure's error with its cause) and after how many failed writes, with
    /// a counter of every failed write to export as a metric. Cheap: reads memory only,
    /// so an application can serve it from a health endpoint.
    ///
    /// While writes fail, nothing is lost or failed: every execution whose commit failed
    /// keeps it and retries it with backoff on the engine's clock, after asking the store
    /// to [`recover`](Store::recover); [`describe`](Engine::describe) shows it as
    /// [`Waiting::Store`]. `start` and callback completions return the store's error.
    /// The first write that succeeds turns the health back to ok.
    ///
    /// ```
    /// # use durable_core::{Engine, MemoryStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), durable_core::Error> {
    /// let engine = Engine::builder(MemoryStore::new()).open().await?;
    /// let health = engine.health();
    /// assert!(health.is_ok());
    /// assert_eq!(health.failed_writes, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        self.shared.health.health()
    }

    /// The execution's retained operation history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, Error> {
        Ok(self.shared.store.history(id).await?)
    }

    /// Stops the engine gracefully: no new activations start, running ones stop at their
    /// next durable point (after its commit), timers stop, and the store is closed (so a
    /// sled directory can be opened again). Executions that have not stopped within the
    /// shutdown timeout are dropped mid-transition; their last commit stands, so nothing
    /// is half-committed, and a later engine resumes them.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.begin_shutdown();
        let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
            loop {
                let idle = shared.idle.notified();
                if shared.queue().running() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            shared.queue().abort_all();
        }
        if let Err(e) = shared.store.close().await {
            tracing::error!(error = %e, "closing the store failed");
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<EngineBuilder>();
    assert_send_sync::<crate::Ctx>();
};
