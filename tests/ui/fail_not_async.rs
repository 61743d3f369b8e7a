use durable_core::{durable, Ctx};

#[durable]
fn not_async(ctx: Ctx) -> u32 {
    1
}

fn main() {}
