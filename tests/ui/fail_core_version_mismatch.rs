//! A macro and a core that disagree on the generated code's contract: this stand-in core
//! re-exports `durable_core`'s public API but has the private module of another contract
//! version, as a newer or older `durable-core` would. The workflow fails to compile where
//! the contract is imported (and at the workflow fn's parameter), not at every use of it.
use durable_core::durable;

mod other_core {
    pub use durable_core::{Codec, Ctx, Workflow};

    #[doc(hidden)]
    pub mod __private_v2 {}
}

use other_core::Ctx;

#[durable(crate = crate::other_core)]
async fn checkout(ctx: Ctx, n: u32) -> u32 {
    ctx.step_infallible("charge", move || async move { n }).await
}

fn main() {}
