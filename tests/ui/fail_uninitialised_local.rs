use durable_core::{durable, Ctx};

#[durable]
async fn late(ctx: Ctx) -> u32 {
    let x;
    ctx.step_infallible("wait", || async {}).await;
    x = 1;
    x
}

fn main() {}
