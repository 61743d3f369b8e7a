use durable_core::{durable, Ctx};

#[durable]
async fn both(ctx: Ctx) -> u32 {
    ctx.step_infallible("a", || async { 1u32 }).await
        + ctx.step_infallible("b", || async { 2u32 }).await
}

fn main() {}
