//! A `&'static str` the macro cannot see (returned by a function): rustc's own error,
//! that `Deserialize` is not general enough, on the local. Stable Rust offers no way to
//! attach a message to that error (it is not an unimplemented trait).
use durable_core::{durable, Ctx};

fn kind(n: u32) -> &'static str {
    if n > 2 {
        "big"
    } else {
        "small"
    }
}

#[durable]
async fn status(ctx: Ctx, n: u32) -> usize {
    let label = kind(n);
    ctx.step_infallible("wait", || async {}).await;
    label.len()
}

fn main() {}
