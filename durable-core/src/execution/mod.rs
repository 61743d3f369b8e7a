//! Layer 3, the execution: the context a workflow runs with, the engine–machine protocol,
//! and the commit of one transition.
//!
//! May use the layers below (time, codec, record, error, retry; the store) and nothing
//! above: it knows the engine only through the narrow [`Runtime`] handle, and knows no
//! operation. The operations (layer 4) build on [`PointRun`]; the engine (layer 5) creates
//! [`Ctx`]s and drives machines through [`Entry`] and [`Interrupt`].

mod ctx;
mod point;
mod protocol;
mod runtime;
mod transition;
mod workflow;

pub use ctx::Ctx;
pub use point::PointRun;
pub(crate) use point::Progress;
pub use protocol::{
    AwaitedInDurableFn, Entered, Entry, Interrupt, Operation, SavedLocal, SavedPoint, SavedType,
};
pub(crate) use runtime::{Limits, Runtime};
pub(crate) use transition::Change;
pub use workflow::{Called, Machine, PointInfo, Select, Workflow, WorkflowFn};
