//! A string literal kept across a point: a `&'static str` cannot be saved (it would have to
//! be decoded from the frame as a borrow).
use durable_core::{durable, Ctx};

#[durable]
async fn status(ctx: Ctx, n: u32) -> usize {
    let label = if n > 2 { "big" } else { "small" };
    ctx.step_infallible("wait", || async {}).await;
    label.len()
}

fn main() {}
