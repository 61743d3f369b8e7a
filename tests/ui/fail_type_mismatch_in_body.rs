//! Type errors point into the body, at the user's expressions, not at `#[durable]`.
use durable_core::{durable, Ctx};

#[durable]
async fn total(ctx: Ctx, n: u32) -> u32 {
    let count: u32 = ctx
        .step_infallible("count", move || async move { n.to_string() })
        .await;
    count + 1
}

fn main() {}
