use durable_core::{durable, Ctx};

#[durable]
async fn shadowed(ctx: Ctx) -> u32 {
    let x = 1u32;
    {
        let x = "inner";
        ctx.step_infallible("a", move || async move { x.len() })
            .await;
    }
    x
}

fn main() {}
