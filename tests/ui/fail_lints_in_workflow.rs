//! rustc's lints work inside a workflow as in a plain `async fn`: an unused local, a
//! needless `mut`, an unused `Result` (with a suggestion that is valid code).
#![deny(unused_variables, unused_mut, unused_must_use)]

use durable_core::{durable, Ctx};

#[durable]
pub async fn linted(ctx: Ctx, n: u32) -> u32 {
    let unused = n * 2;
    let mut total = n;
    ctx.typed_step("charge", || async { Ok::<u32, String>(1) }).await;
    total + ctx.step_infallible("more", || async { 1u32 }).await
}

fn main() {}
