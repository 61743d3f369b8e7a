use durable_core::{durable, Ctx};

#[durable(nmae = "typo", codec = yaml)]
async fn misspelt(ctx: Ctx) {
    ctx.step_infallible("a", || async {}).await;
}

fn main() {}
