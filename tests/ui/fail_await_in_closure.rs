use durable_core::{durable, Ctx};

#[durable]
async fn in_closure(ctx: Ctx, items: Vec<u32>) -> u32 {
    let double = |n: u32| ctx.step_infallible("n", move || async move { n * 2 }).await;
    items.into_iter().map(double).sum()
}

fn main() {}
