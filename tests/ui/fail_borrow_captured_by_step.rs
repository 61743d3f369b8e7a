//! A borrow that the *next* step's body captures: the step runs again after a restart,
//! so what it captures is saved with the point.
use durable_core::{durable, Ctx, StepError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Item {
    sku: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Order {
    items: Vec<Item>,
}

async fn price(sku: &str) -> Result<u32, String> {
    Ok(sku.len() as u32)
}

#[durable]
async fn quote(ctx: Ctx, order: Order) -> Result<u32, StepError<String>> {
    let sku = &order.items[0].sku;
    ctx.typed_step("price", || price(sku)).await
}

fn main() {}
