use durable_core::{durable, Ctx};

#[durable]
async fn positions(ctx: Ctx, n: u32) -> Option<u32> {
    let a = ctx.step_infallible("let", || async move { n }).await;
    let mut b = 0;
    b = ctx.step_infallible("assign", || async { 2u32 }).await;
    b += ctx.step_infallible("compound", || async { 3u32 }).await;
    ctx.step_infallible("statement", || async {}).await;
    if ctx.step_infallible("cond", || async { true }).await {
        b += 1;
    }
    match ctx.step_infallible("scrutinee", || async { Some(4u32) }).await {
        Some(x) if x > 3 => b += x,
        _ => {}
    }
    let c = ctx.step_infallible("opt", || async { Some(1u32) }).await?;
    if a > 100 {
        return ctx.step_infallible("return", || async { None }).await;
    }
    let d = ctx.step_infallible("tail", || async move { a + b + c }).await;
    Some(d)
}

fn main() {}
