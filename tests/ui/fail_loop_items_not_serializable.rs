use durable_core::{durable, Ctx};

#[durable]
async fn borrowed_items(ctx: Ctx, names: Vec<String>) -> usize {
    let mut total = 0;
    for name in &names {
        total += ctx.step_infallible("len", || async { 1usize }).await;
        total += name.len();
    }
    total
}

fn main() {}
