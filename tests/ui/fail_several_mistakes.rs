//! Three mistakes in one workflow, all reported in one build.
use durable_core::{durable, Ctx};

#[durable]
async fn careless(ctx: Ctx, n: Option<u32>) -> u32 {
    let later = || async { ctx.step_infallible("a", || async { 1u32 }).await };
    let k = match n {
        Some(k) if ctx.step_infallible("b", || async { true }).await => k,
        _ => 0,
    };
    println!("{}", ctx.step_infallible("c", || async { 2u32 }).await);
    drop(later);
    k
}

fn main() {}
