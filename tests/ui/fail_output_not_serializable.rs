use durable_core::{durable, Ctx};

struct Receipt {
    total: u32,
}

#[durable]
async fn checkout(ctx: Ctx, total: u32) -> Result<Receipt, String> {
    let total = ctx.step_infallible("charge", move || async move { total }).await;
    Ok(Receipt { total })
}

fn main() {}
