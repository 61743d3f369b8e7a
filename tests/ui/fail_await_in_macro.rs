use durable_core::{durable, Ctx};

#[durable]
async fn printed(ctx: Ctx) {
    println!("{}", ctx.step_infallible("a", || async { 1u32 }).await);
}

fn main() {}
