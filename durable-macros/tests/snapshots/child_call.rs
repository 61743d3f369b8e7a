// Calls of other workflows by path: registering this workflow registers them
// (`const CALLS`).
#[durable]
async fn checkout(ctx: Ctx, cents: u64) -> Result<u64, ChildError> {
    let receipt = ctx.call(billing::charge, cents).await?;
    let total = ctx.call(charge, cents + 1).await?;
    Ok(receipt.unwrap_or(0) + total.unwrap_or(0))
}
