use durable_core::Ctx;

async fn not_durable(ctx: Ctx) -> u32 {
    ctx.step_infallible("n", || async { 1u32 }).await
}

fn main() {}
