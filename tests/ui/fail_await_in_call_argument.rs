use durable_core::{durable, Ctx};

fn double(x: u32) -> u32 {
    x * 2
}

#[durable]
async fn nested(ctx: Ctx, n: u32) -> u32 {
    // Not the first thing evaluated in its expression: must be its own statement.
    double(ctx.step_infallible("n", || async move { n }).await)
}

fn main() {}
