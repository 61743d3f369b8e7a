//! Three mistakes of different kinds in one workflow, all reported in one build.
use durable_core::{durable, Ctx};

struct Report {
    count: u32,
}

#[durable]
async fn careless(ctx: Ctx, n: Option<u32>) -> Report {
    let later = || async { ctx.step_infallible("a", || async { 1u32 }).await };
    let count = match n {
        Some(k) if ctx.step_infallible("b", || async { true }).await => k,
        _ => 0,
    };
    drop(later);
    Report { count }
}

fn main() {}
