use durable_core::{durable, Ctx};

struct Connection;

impl Connection {
    fn query(&self) -> u32 {
        1
    }
}

#[durable]
async fn holds_connection(ctx: Ctx) -> u32 {
    let conn = Connection;
    ctx.step_infallible("wait", || async {}).await;
    conn.query()
}

fn main() {}
