use durable_core::{durable, Ctx};

#[durable]
async fn generic<T: Clone>(ctx: Ctx, item: T) -> T {
    ctx.step_infallible("wait", || async {}).await;
    item
}

fn main() {}
