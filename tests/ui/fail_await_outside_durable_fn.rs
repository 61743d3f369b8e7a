//! A durable operation awaited in a helper `async fn` (not a durable point): rustc's own
//! "is not a future" error is the only one stable Rust lets us give, with the impl's
//! comment saying where the `.await` belongs.
use durable_core::{durable, Ctx};

async fn charge(ctx: &Ctx, cents: u32) -> u32 {
    ctx.step_infallible("charge", move || async move { cents }).await
}

#[durable]
async fn checkout(ctx: Ctx, cents: u32) -> u32 {
    let total = cents + 1;
    charge(&ctx, total).await
}

fn main() {}
