// A `for` loop whose body holds a point: the iterator and the running total are saved.
#[durable(codec = json)]
async fn sum_items(ctx: Ctx, items: Vec<u32>) -> u64 {
    let mut total = 0u64;
    for item in items {
        total += ctx
            .step_infallible("add", move || async move { u64::from(item) })
            .await;
    }
    total
}
