//! Layer 4, the durable operations, one module each: what `ctx.<operation>(..)` builds and
//! how it runs at its durable point.
//!
//! May use the layers below (time, codec, record, error, retry; the store; the execution
//! layer's [`PointRun`](crate::execution::PointRun), through which an operation commits its
//! progress and outcome) and nothing of the engine. A new operation is a new module here
//! plus its state in the record model ([`PointState`](crate::PointState) for progress
//! kept with the frame, [`OperationRecord`](crate::OperationRecord) for what outlives the
//! point).

pub(crate) mod batch;
pub(crate) mod callback;
pub(crate) mod cancel;
pub(crate) mod child;
pub(crate) mod condition;
pub(crate) mod random;
pub(crate) mod sleep;
pub(crate) mod step;

pub use batch::{
    BatchError, BatchItem, BatchResult, Branch, Completion, ItemBody, ItemError, ItemStatus,
    Itself, Map, MapBody, DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT,
};
pub use batch::{ChildCall, ChildItem, ItemWork};
pub use callback::{Callback, CallbackError, CreateCallback, WaitCallback, WaitForCallback};
pub use child::{Call, ChildError, Invoke};
pub use condition::{CheckOutput, ConditionError, WaitForCondition};
pub use random::Generated;
pub use sleep::{SleepOp, WaitError, MAX_WAIT};
pub use step::{InfallibleStep, Step, StepBody, StepContext};
