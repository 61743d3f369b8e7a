use durable_core::durable;

#[durable]
async fn no_context(order: u32) -> u32 {
    order + 1
}

fn main() {}
