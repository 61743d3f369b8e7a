use durable_core::{durable, Ctx};

#[durable]
async fn checked(ctx: Ctx, n: u32) {
    // `assert!` evaluates its message only when the assertion fails: the point cannot be
    // lowered inside it (a formatting macro's arguments can).
    assert!(n > 0, "{}", ctx.step_infallible("a", || async { 1u32 }).await);
}

fn main() {}
