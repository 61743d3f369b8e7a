// A `match` with points in its arms, used as a value, then a point after the join.
#[durable(name = "route")]
async fn route_order(ctx: Ctx, kind: u8, amount: u32) -> u32 {
    let fee = match kind {
        0 => 0,
        1 => ctx.step_infallible("express", move || async move { amount / 10 }).await,
        _ => {
            let base = ctx.step_infallible("quote", || async { 5u32 }).await;
            base + amount / 20
        }
    };
    ctx.sleep(std::time::Duration::from_secs(60)).await.ok();
    amount + fee
}
