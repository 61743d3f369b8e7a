use durable_core::{durable, Ctx};

struct Order {
    id: u32,
}

#[durable]
async fn ship(ctx: Ctx, order: Order) -> u32 {
    let id = order.id;
    ctx.step_infallible("ship", move || async move { id }).await
}

fn main() {}
