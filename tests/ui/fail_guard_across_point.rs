use std::sync::Mutex;

use durable_core::{durable, Ctx};

static COUNTER: Mutex<u32> = Mutex::new(0);

#[durable]
async fn counts(ctx: Ctx) -> u32 {
    let mut guard = COUNTER.lock().unwrap();
    ctx.step_infallible("wait", || async {}).await;
    *guard += 1;
    *guard
}

fn main() {}
