//! A local still needed after a `match` whose guarded arm rebinds its name around a point:
//! the guard sees the arm's binding before the arm's code runs, so the outer local cannot
//! be put aside there.
use durable_core::{durable, Ctx};

#[durable]
async fn pick(ctx: Ctx, v: u32, o: Option<u32>) -> u32 {
    let got = match o {
        Some(v) if v > 2 => ctx.step_infallible("big", move || async move { v }).await,
        _ => 0,
    };
    got + v
}

fn main() {}
