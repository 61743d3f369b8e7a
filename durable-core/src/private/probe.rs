//! What generated code does with a path that may or may not name a `#[durable]` fn: the
//! body of `ctx.map(name, items, path)` and the paths a body calls. Rust has no
//! specialization, so the choice is made by method resolution on `(&&Probe(path))`:
//! [`ProbeWorkflow`] is implemented one reference deeper, for workflows only, so it wins
//! when the path is a workflow, and [`ProbeOther`] answers for anything else.

use super::Called;
use crate::engine::called;
use crate::execution::{Workflow, WorkflowFn};
use crate::ops::ChildCall;

/// A path under test.
#[derive(Clone, Copy, Debug)]
pub struct Probe<F>(pub F);

/// The answer for a `#[durable]` fn.
pub trait ProbeWorkflow {
    /// The batch body it stands for.
    type Body;
    /// As the body of `ctx.map`: one child execution per item.
    fn map_body(&self) -> Self::Body;
    /// Registering the caller registers it.
    fn workflow_called(&self) -> Option<Called>;
}

impl<F: WorkflowFn> ProbeWorkflow for &Probe<F> {
    type Body = fn(<F::Workflow as Workflow>::Input) -> ChildCall<F::Workflow>;

    fn map_body(&self) -> Self::Body {
        ChildCall::new
    }

    fn workflow_called(&self) -> Option<Called> {
        Some(called(self.0))
    }
}

/// The answer for anything else (a plain function, which `ctx.map` runs as a step).
pub trait ProbeOther {
    /// The batch body it stands for.
    type Body;
    /// As the body of `ctx.map`: itself.
    fn map_body(&self) -> Self::Body;
    /// Nothing to register.
    fn workflow_called(&self) -> Option<Called>;
}

impl<F: Copy> ProbeOther for Probe<F> {
    type Body = F;

    fn map_body(&self) -> F {
        self.0
    }

    fn workflow_called(&self) -> Option<Called> {
        None
    }
}
