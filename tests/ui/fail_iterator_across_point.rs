use durable_core::{durable, Ctx};

#[durable]
async fn walk(ctx: Ctx, names: Vec<String>) -> usize {
    let mut it = names.iter();
    ctx.step_infallible("wait", || async {}).await;
    it.next().map_or(0, |n| n.len())
}

fn main() {}
