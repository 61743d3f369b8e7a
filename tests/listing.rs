//! Listing executions a page at a time and deleting finished ones, through the engine, on
//! the memory and the sled store.

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    durable, Ctx, EngineBuilder, Error, ListFilter, MemoryStore, Status, Store, TestClock,
    Timestamp, WaitError,
};
use durable_store_sled::SledStore;

#[durable]
async fn nap(ctx: Ctx, hours: u64) -> Result<u64, WaitError> {
    ctx.sleep(Duration::from_secs(3600 * hours)).await?;
    Ok(hours)
}

async fn pages_and_deletion(store: Arc<dyn Store>) {
    let clock = TestClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine = EngineBuilder::with_store(store.clone())
        .register(nap)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    // Even ids finish at once, odd ones sleep a day.
    for n in 0..10u64 {
        let hours = if n % 2 == 0 { 0 } else { 24 };
        engine.start(nap, format!("nap-{n}"), hours).await.unwrap();
    }
    for n in (0..10).step_by(2) {
        let done = engine
            .handle(nap, format!("nap-{n}"))
            .result()
            .await
            .unwrap();
        assert_eq!(done, Ok(0));
    }
    loop {
        let sleeping = engine
            .executions(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap();
        if sleeping.len() == 5 {
            break;
        }
        tokio::task::yield_now().await;
    }

    // Pages of three, each after the last id of the one before.
    let mut seen = Vec::new();
    let mut filter = ListFilter::all().limit(3);
    loop {
        let page = engine.executions(&filter).await.unwrap();
        seen.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => filter = filter.after(last.id.clone()),
            _ => break,
        }
    }
    let all: Vec<String> = (0..10).map(|n| format!("nap-{n}")).collect();
    assert_eq!(seen, all);
    let completed = engine
        .executions(&ListFilter::all().status(Status::Completed).after("nap-2"))
        .await
        .unwrap();
    let ids: Vec<&str> = completed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["nap-4", "nap-6", "nap-8"]);

    // A finished execution is deleted with everything stored for it; an unfinished one is
    // refused and kept.
    assert!(engine.delete("nap-0").await.unwrap());
    assert_eq!(engine.execution("nap-0").await.unwrap(), None);
    assert_eq!(engine.history("nap-0").await.unwrap(), []);
    assert_eq!(store.load_input("nap-0").await.unwrap(), None);
    assert!(!engine.delete("nap-0").await.unwrap(), "already gone");
    assert!(!engine.delete("never-started").await.unwrap());
    match engine.delete("nap-1").await {
        Err(Error::Invalid { message }) => assert!(message.contains("suspended"), "{message}"),
        other => panic!("deleting a sleeping execution: {other:?}"),
    }
    assert_eq!(
        engine.execution("nap-1").await.unwrap().unwrap().status,
        Status::Suspended
    );
    // The id is free again: a new execution starts from scratch.
    let again = engine.start(nap, "nap-0", 0).await.unwrap();
    assert_eq!(again.result().await.unwrap(), Ok(0));
    assert_eq!(
        engine.execution("nap-0").await.unwrap().unwrap().status,
        Status::Completed
    );

    clock.advance(Duration::from_secs(24 * 3600));
    for n in (1..10).step_by(2) {
        let done = engine
            .handle(nap, format!("nap-{n}"))
            .result()
            .await
            .unwrap();
        assert_eq!(done, Ok(24));
    }
    assert!(engine.delete("nap-1").await.unwrap());
    assert_eq!(
        engine
            .executions(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap(),
        []
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn executions_page_and_finished_ones_delete_on_the_memory_store() {
    pages_and_deletion(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn executions_page_and_finished_ones_delete_on_the_sled_store() {
    pages_and_deletion(Arc::new(SledStore::temporary().unwrap())).await;
}
