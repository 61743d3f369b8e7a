//! Three values that cannot be stored, all reported in one build.
use durable_core::{durable, Ctx};

struct Connection;

struct Customer {
    name: String,
}

#[durable]
async fn careless(ctx: Ctx, customer: Customer, names: Vec<String>) -> usize {
    let conn = Connection;
    let first = &names[0];
    ctx.step_infallible("wait", || async {}).await;
    let _ = (&conn, &customer.name);
    first.len()
}

fn main() {}
