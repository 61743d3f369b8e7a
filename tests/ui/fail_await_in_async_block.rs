use durable_core::{durable, Ctx};

#[durable]
async fn in_closure(ctx: Ctx, n: u32) -> u32 {
    let run = async { ctx.step_infallible("n", || async move { n }).await };
    run.await
}

fn main() {}
