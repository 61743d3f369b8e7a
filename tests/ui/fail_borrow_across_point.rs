use durable_core::{durable, Ctx};

#[durable]
async fn first_name(ctx: Ctx, names: Vec<String>) -> usize {
    let first = &names[0];
    ctx.step_infallible("wait", || async {}).await;
    first.len()
}

fn main() {}
