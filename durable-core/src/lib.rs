//! Durable execution for Rust: workflows written as plain `async fn`s that survive
//! crashes, restarts and deploys, without replay.
//!
//! `#[durable]` rewrites an `async fn` into a state machine whose live locals are saved
//! at every durable point (every `.await` on the context: `ctx.step(..).await`). The
//! [`Engine`] runs it one transition at a time and commits each transition atomically to
//! a [`Store`]; resuming decodes one frame and jumps to the saved point.
//!
//! # Example
//!
//! ```
//! use durable_core::{durable, Ctx, Engine, Failure, MemoryStore, RetryPolicy};
//!
//! #[durable]
//! async fn welcome(ctx: Ctx, user: String) -> Result<u32, Failure> {
//!     let id: u32 = ctx.step("create-account", || async { Ok(42) }).await?;
//!     ctx.step("send-email", || async { Ok(()) })
//!         .retry(RetryPolicy::exponential().max_attempts(5))
//!         .await?;
//!     println!("welcomed {user}");
//!     Ok(id)
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), durable_core::Error> {
//! let engine = Engine::builder(MemoryStore::new()).register(welcome).open().await?;
//! let handle = engine.start(welcome, "welcome-ada", "ada".to_string()).await?;
//! assert_eq!(handle.result().await?, Ok(42));
//! # engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What may cross a durable point
//!
//! A local that is still used after a durable point, or that the point's operation
//! captures (a step body runs again after a restart), is saved in the frame, so it must
//! be `Serialize + DeserializeOwned + Send + 'static`: owned data, not borrows, guards,
//! connections or open files (clone or reopen them after the point). The context is
//! never saved. `#[durable]` reports a local that breaks this rule at compile time, on
//! the local. A durable `.await` may stand wherever a plain `async fn` awaits, except in
//! closures and `async` blocks (where Rust forbids it too), `match` guards and macros
//! other than the formatting ones; the macro says how to rewrite those. In debug builds
//! each saved value is also decoded once as a check, and that copy is dropped at once:
//! a `Drop` impl of a saved type runs for it.
//!
//! # Guarantees
//!
//! - Each transition (from one durable point to the next) commits atomically; resuming
//!   decodes the last frame and continues after its point. Code before the last
//!   committed point never runs again; code after it runs again if the process died
//!   before the next commit (at least once).
//! - A step's recorded outcome is returned on resume without running the body again.
//!   Bodies run at least once per attempt, or at most once per attempt with
//!   [`Step::at_most_once`].
//! - Waits and retry delays are committed wake-up times: a suspended execution holds no
//!   memory and resumes on time, also after restarts.
//! - An execution id is an idempotency key ([`Engine::start`]).
//! - An execution resumes only on the code that wrote it (the workflow's fingerprint);
//!   otherwise it is parked with its data intact. To deploy a changed workflow, keep the
//!   old version registered beside the new one under the same
//!   `#[durable(name = "...")]` until its executions drain.
//!
//! # Crates
//!
//! `durable-core` holds the engine, the [`MemoryStore`] and the macro; the embedded
//! durable default store is `durable-store-sled`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// Layer 1: values, time, records, errors, retry policies.
mod canonical;
mod codec;
mod error;
mod failure;
mod panic;
mod record;
mod retry;
mod returned_err;
mod shape;
mod time;
// Layer 2: persistence.
mod store;
// Layer 3: the context, the engine–machine protocol, committing a transition.
mod execution;
// Layer 4: the durable operations.
mod ops;
// Layer 5: the engine.
mod engine;
// The contract with generated code (re-exported below as `__private_v1`).
mod private;
// What tests of stores and engines use (feature `test-support`).
#[cfg(feature = "test-support")]
pub mod test_support;

#[doc(hidden)]
pub mod __private_v1 {
    //! Not public API: version 1 of the contract between `#[durable]`'s generated code and
    //! the engine. The version is part of the name, which the macro emits, so that a macro
    //! and a core that disagree on the contract fail to compile instead of disagreeing on
    //! what a frame means.
    pub use crate::private::*;
}

pub use codec::{decode_value, value_to_json, Codec, FrameReader, FrameWriter, FORMAT_VERSION};
pub use durable_macros::durable;
pub use engine::{
    CallbackDescription, CallbackState, ChildDescription, CompletionError, Degraded, Description,
    Engine, EngineBuilder, Handle, Health, Layout, Local, PointDescription, PointLayout, Stranded,
    Until, Waiting, MAX_ID_LEN, SETTLED_CALLBACKS_SHOWN, SETTLED_CHILDREN_SHOWN,
};
pub use error::{CodecError, Error, StepError, StoreError};
pub use execution::Ctx;
pub use execution::{Workflow, WorkflowFn};
pub use failure::{Failure, FailureExt};
pub use ops::{
    BatchError, BatchItem, BatchResult, Branch, Call, Callback, CallbackError, CheckOutput,
    ChildError, Completion, ConditionError, CreateCallback, Generated, InfallibleStep, Invoke,
    ItemBody, ItemError, ItemStatus, Itself, Map, MapBody, SleepOp, Step, StepBody, StepContext,
    WaitCallback, WaitError, WaitForCallback, WaitForCondition, DEFAULT_MAX_IN_FLIGHT,
    MAX_IN_FLIGHT, MAX_WAIT,
};
pub use record::{
    BatchState, Commit, Committed, CompletionReason, Created, Delivered, Delivery, Event,
    ExecutionRecord, Expect, HistoryEntry, InFlight, ListFilter, OperationAction, OperationChange,
    OperationKind, OperationRecord, OperationRef, OperationState, ParentLink, PointState, Position,
    Settlement, Status,
};
pub use retry::{RetryDecision, RetryPolicy};
pub use shape::{Shape, VariantShape};
pub use store::{store_rules, Acquired, LeaseTable, MemoryStore, Store, StoreSignal};
pub use time::{Clock, SleepFuture, SystemClock, TestClock, Timestamp};
