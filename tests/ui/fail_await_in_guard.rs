use durable_core::{durable, Ctx};

#[durable]
async fn guarded(ctx: Ctx, n: Option<u32>) -> u32 {
    match n {
        Some(k) if ctx.step_infallible("check", || async { true }).await => k,
        _ => 0,
    }
}

fn main() {}
