use durable_core::{durable, Ctx};

struct Shop;

impl Shop {
    #[durable]
    async fn restock(&self, ctx: Ctx) -> u32 {
        ctx.step_infallible("restock", || async { 1u32 }).await
    }
}

fn main() {}
