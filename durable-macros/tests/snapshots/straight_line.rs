// Straight-line code: two steps, a `?` and a local that crosses both points.
#[durable]
async fn welcome(ctx: Ctx, user: String) -> Result<u32, StepError<String>> {
    let id = ctx
        .step("create-account", || async { Ok::<u32, String>(42) })
        .await?;
    ctx.step("send-email", || async { Ok::<(), String>(()) })
        .retry(RetryPolicy::exponential().max_attempts(5))
        .await?;
    println!("welcomed {user}");
    Ok(id)
}
